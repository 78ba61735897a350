"""The HTTP client every factory source uses: a configurable base URL, timeouts, polite pacing and retries.

Contract:
- `429 Too Many Requests` and `503` are retried after the server's `Retry-After` (seconds or an HTTP date), other 5xx
  and transport errors after an exponential backoff; every wait is capped by `HttpConfig.max_wait_s` (tests set it
  small) and recorded in `HttpClient.waits` so callers and tests can see what happened.
- `401`/`403` raise `AccessDenied`, naming the URL and saying that credentials are needed (never retried).
- Any other status >= 400 raises `HttpError` naming the URL and the status; `get_json(..., missing_ok=True)` returns
  None on 404 instead (a paper a source does not know is not an error).
- `download` streams a body to a file atomically: a failed download never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import email.utils
import os
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from klong import __version__
from klong.exceptions import KlongError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HttpError(KlongError):
    """A request failed for good: a status >= 400 (after retries for the retryable ones) or a transport error."""

    def __init__(self, url: str, problem: str, status: int | None = None):
        self.url = url
        self.status = status
        super().__init__(f"{url}: {problem}")


class AccessDenied(HttpError):
    """401/403: the server refuses the request without (valid) credentials."""


class HttpConfig(BaseModel):
    """How a source talks HTTP. Every source section of the factory config has one (`enrich.http.max_wait_s=5`)."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: float = 30.0
    """Connect/read timeout per request."""
    retries: int = 4
    """Retries after the first try for 429, 5xx and transport errors."""
    backoff_s: float = 1.0
    """First backoff for 5xx/transport errors; doubles on each retry."""
    max_wait_s: float = 120.0
    """Cap on any single wait (a `Retry-After` longer than this is shortened to it)."""
    min_interval_s: float = 0.0
    """Polite pacing: at least this many seconds between two requests of one client."""
    user_agent: str = f"klong-factory/{__version__} (+https://github.com/klong)"


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds (`"120"`) or an HTTP date; None when absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpClient:
    """A small synchronous client over `httpx.Client` with the retry/pacing/error contract of this module.

    `base_url` is prepended to relative paths (`client.get_json("/api/papers/2310.06825")`); absolute URLs pass
    through unchanged. `sleep` is injectable so callers can observe waits; `waits` lists every wait taken (seconds).
    """

    def __init__(
        self,
        base_url: str | None = None,
        config: HttpConfig | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = (base_url or "").rstrip("/")
        self.config = config or HttpConfig()
        self.waits: list[float] = []
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_request = 0.0
        self._client = httpx.Client(
            timeout=self.config.timeout_s,
            follow_redirects=True,
            headers={"User-Agent": self.config.user_agent, **(headers or {})},
        )

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def url(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def _wait(self, seconds: float) -> None:
        seconds = min(max(seconds, 0.0), self.config.max_wait_s)
        self.waits.append(seconds)
        if seconds > 0:
            self._sleep(seconds)

    def _pace(self) -> None:
        if self.config.min_interval_s <= 0:
            return
        with self._lock:
            gap = time.monotonic() - self._last_request
            if self._last_request and gap < self.config.min_interval_s:
                self._sleep(self.config.min_interval_s - gap)
            self._last_request = time.monotonic()

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response:
        """Send a request under the retry contract; the response returned has a status < 400."""
        url = self.url(path_or_url)
        attempt = 0
        while True:
            self._pace()
            try:
                resp = self._client.request(method, url, **kwargs)
            except httpx.TransportError as e:
                if attempt >= self.config.retries:
                    raise HttpError(url, f"request failed after {attempt + 1} tries: {e!r}") from None
                self._wait(self.config.backoff_s * 2**attempt)
                attempt += 1
                continue
            if resp.status_code < 400:
                return resp
            if resp.status_code in (401, 403):
                raise AccessDenied(
                    url,
                    f"HTTP {resp.status_code} {resp.reason_phrase}: access denied; credentials are needed "
                    f"(configure an API key or login for this source){_detail(resp)}",
                    resp.status_code,
                )
            if resp.status_code in RETRY_STATUSES and attempt < self.config.retries:
                after = parse_retry_after(resp.headers.get("Retry-After"))
                self._wait(after if after is not None else self.config.backoff_s * 2**attempt)
                attempt += 1
                continue
            tries = f" after {attempt + 1} tries" if resp.status_code in RETRY_STATUSES else ""
            raise HttpError(
                url, f"HTTP {resp.status_code} {resp.reason_phrase}{tries}{_detail(resp)}", resp.status_code
            )

    def get(self, path_or_url: str, *, params: Mapping[str, Any] | None = None) -> httpx.Response:
        return self.request("GET", path_or_url, params=params)

    def get_json(self, path_or_url: str, *, params: Mapping[str, Any] | None = None, missing_ok: bool = False) -> Any:
        """GET and parse JSON; with `missing_ok`, a 404 returns None."""
        try:
            resp = self.get(path_or_url, params=params)
        except HttpError as e:
            if missing_ok and e.status == 404:
                return None
            raise
        try:
            return resp.json()
        except ValueError:
            raise HttpError(
                str(resp.url), f"expected JSON, got {resp.headers.get('content-type', 'no content type')}"
            ) from None

    def download(self, path_or_url: str, dest: str | Path, *, max_bytes: int | None = None) -> int:
        """Stream a body to `dest` atomically (temporary file + rename); returns the number of bytes written."""
        url = self.url(path_or_url)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        attempt = 0
        while True:
            self._pace()
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as f, self._client.stream("GET", url) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        retry = resp.status_code in RETRY_STATUSES and attempt < self.config.retries
                        if not retry:
                            if resp.status_code in (401, 403):
                                raise AccessDenied(url, f"HTTP {resp.status_code}: access denied; credentials are "
                                                   "needed", resp.status_code)  # fmt: skip
                            raise HttpError(url, f"HTTP {resp.status_code} {resp.reason_phrase}", resp.status_code)
                        after = parse_retry_after(resp.headers.get("Retry-After"))
                        wait = after if after is not None else self.config.backoff_s * 2**attempt
                    else:
                        size = 0
                        for chunk in resp.iter_bytes():
                            size += len(chunk)
                            if max_bytes is not None and size > max_bytes:
                                raise HttpError(url, f"body larger than the limit of {max_bytes:,} bytes")
                            f.write(chunk)
                        f.flush()
                        os.fsync(f.fileno())
                        os.replace(tmp, dest)
                        return size
            except httpx.TransportError as e:
                if attempt >= self.config.retries:
                    raise HttpError(url, f"download failed after {attempt + 1} tries: {e!r}") from None
                wait = self.config.backoff_s * 2**attempt
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            self._wait(wait)
            attempt += 1


def _detail(resp: httpx.Response) -> str:
    text = resp.text.strip().replace("\n", " ")
    return f" ({text[:200]})" if text else ""
