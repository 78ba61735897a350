"""OpenReview through `openreview-py` (API v2): the accepted papers of a venue, with their tier.

Accepted papers of `ICLR.cc/2024/Conference` are the notes whose `content.venueid` equals the venue id; the tier is
read from `content.venue` ("ICLR 2024 oral" / "spotlight" / "poster"). Anonymous API calls are refused nowadays, so
credentials come from the configuration (`username`/`password` or `token`) or the environment
(`OPENREVIEW_USERNAME`, `OPENREVIEW_PASSWORD`, `OPENREVIEW_TOKEN`). `baseurl` points the client anywhere (a local
fixture server in tests). Paging is the package's own (`after` cursor, `page_size` notes per request).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from klong.exceptions import ConfigError
from klong.factory.records import CodeLink, PaperRecord, slugify
from klong.factory.sources.arxiv_source import normalize_arxiv_id
from klong.factory.sources.http import AccessDenied, HttpError

_CRED_HINT = (
    "credentials are needed, OpenReview refuses anonymous API calls: set collect.openreview.username/password (or token) in the factory "
    "config, or OPENREVIEW_USERNAME/OPENREVIEW_PASSWORD (or OPENREVIEW_TOKEN) in the environment"
)


class OpenReviewConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    baseurl: str = "https://api2.openreview.net"
    site_url: str = "https://openreview.net"
    """Where forum and PDF links point (`{site_url}/pdf?id=...`)."""
    username: str | None = None
    password: str | None = None
    token: str | None = None
    page_size: int = 1000


def tier_from_venue(venue: str | None) -> str:
    """`ICLR 2024 oral` -> oral; `ICML 2024 Spotlight` -> spotlight; `NeurIPS 2023 poster` -> poster; else unknown."""
    text = (venue or "").lower()
    for tier in ("oral", "spotlight", "poster"):
        if tier in text:
            return tier
    return "unknown"


def venue_name(venue_id: str) -> str:
    """`ICLR.cc/2024/Conference` -> `ICLR 2024`."""
    parts = venue_id.split("/")
    name = parts[0].split(".")[0]
    year = next((p for p in parts if re.fullmatch(r"\d{4}", p)), None)
    return f"{name} {year}" if year else name


def _value(content: dict[str, Any], key: str) -> Any:
    field = content.get(key)
    return field.get("value") if isinstance(field, dict) else field


def note_to_record(note: Any, venue_id: str, config: OpenReviewConfig) -> PaperRecord:
    content = note.content or {}
    title = re.sub(r"\s+", " ", str(_value(content, "title") or "")).strip() or f"openreview {note.id}"
    venue = _value(content, "venue")
    year = next((int(p) for p in venue_id.split("/") if re.fullmatch(r"\d{4}", p)), None)
    pdf = _value(content, "pdf")
    pdf_url = f"{config.site_url.rstrip('/')}{pdf}" if isinstance(pdf, str) and pdf.startswith("/") else pdf
    links = []
    code = _value(content, "code")
    if isinstance(code, str) and code.startswith("http"):
        links.append(CodeLink(url=code, source="openreview", official=True))
    external = note.external_ids or []
    arxiv_id = next((normalize_arxiv_id(x) for x in external if str(x).lower().startswith("arxiv")), None)
    return PaperRecord(
        key=f"openreview:{note.id}",
        slug=slugify(title),
        title=title,
        abstract=re.sub(r"\s+", " ", str(_value(content, "abstract") or "")).strip(),
        authors=list(_value(content, "authors") or []),
        venue=venue_name(venue_id),
        venue_id=venue_id,
        tier=tier_from_venue(venue),  # type: ignore[arg-type]
        year=year,
        arxiv_id=arxiv_id,
        openreview_id=note.id,
        pdf_url=pdf_url or None,
        license=getattr(note, "license", None),
        code_links=links,
        notes={"collect": f"openreview venue {venue!r}"},
    )


def openreview_client(config: OpenReviewConfig):
    """An API v2 client logged in with the configured (or environment) credentials; anonymous when there are none."""
    import openreview

    username = config.username or os.environ.get("OPENREVIEW_USERNAME")
    password = config.password or os.environ.get("OPENREVIEW_PASSWORD")
    token = config.token or os.environ.get("OPENREVIEW_TOKEN")
    if bool(username) != bool(password) and not token:
        raise ConfigError("OpenReview credentials: a username needs a password (and a password a username)")
    try:
        return openreview.api.OpenReviewClient(
            baseurl=config.baseurl, username=username, password=password, token=token
        )
    except openreview.OpenReviewException as e:
        raise _translate(e, f"{config.baseurl}/login") from None
    except OSError as e:
        raise HttpError(config.baseurl, f"OpenReview unreachable: {e}") from None


def _translate(err: Exception, url: str) -> HttpError:
    info = err.args[0] if err.args and isinstance(err.args[0], dict) else {"message": str(err)}
    status = info.get("status")
    name = str(info.get("name", ""))
    message = info.get("message") or info.get("details") or name or "error"
    if status in (401, 403) or name in ("ForbiddenError", "UnauthorizedError", "TokenExpiredError"):
        return AccessDenied(url, f"access denied ({message}); {_CRED_HINT}", status if isinstance(status, int) else 403)
    return HttpError(url, f"OpenReview API error: {message}", status if isinstance(status, int) else None)


def accepted_papers(config: OpenReviewConfig, venue_id: str, *, client: Any = None) -> Iterator[PaperRecord]:
    """Accepted papers of `venue_id`, page by page (`page_size` notes per request)."""
    import openreview

    client = client or openreview_client(config)
    url = f"{config.baseurl}/notes?content.venueid={venue_id}"
    try:
        notes = openreview.tools.efficient_iterget(
            client.get_notes, desc=f"OpenReview {venue_id}", content={"venueid": venue_id}, limit=config.page_size
        )
        for note in notes:
            yield note_to_record(note, venue_id, config)
    except openreview.OpenReviewException as e:
        raise _translate(e, url) from None
    except OSError as e:
        raise HttpError(url, f"OpenReview unreachable: {e}") from None
