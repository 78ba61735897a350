"""One JSON-mode chat call per drafting step, through the `openai` SDK, recorded to the sidecar and replayable.

`DraftClient.step(number, name, messages, Schema)` sends the messages with `response_format={"type": "json_object"}`,
parses the answer and validates it as `Schema`. An answer that is not JSON or does not validate is shown back to the
model with the error (at most `validation_retries` times); endpoint errors (429, 5xx, timeouts) are retried with backoff
by the SDK itself (`max_retries`). Every request and answer is written to `steps/NN_<name>.json`; when that file exists
and holds the same request (its SHA-256), the answer is replayed from it without calling the model.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from klong.exceptions import ConfigError, KlongError, ModelError
from klong.factory.draft.prompts import PROMPT_VERSION
from klong.io import atomic_write_json, format_validation_error, read_json

M = TypeVar("M", bound=BaseModel)


class DraftError(KlongError):
    """A drafting step got no valid answer within its retries; the message names the step and its sidecar file."""


class ClientConfig(BaseModel):
    """The drafting model's endpoint and sampling settings."""

    model_config = ConfigDict(extra="forbid")

    model: str = "fake"
    """`openai:NAME` (any OpenAI-compatible endpoint), or `fake` for the built-in deterministic drafter (offline)."""
    base_url: str | None = None
    """OpenAI-compatible endpoint; default `$OPENAI_BASE_URL`, else OpenAI."""
    api_key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (the key itself is never written anywhere)."""
    temperature: float = 0.0
    max_tokens: int = 8192
    seed: int | None = 0
    max_retries: int = 4
    """Endpoint retries with exponential backoff, by the openai SDK (429, 5xx, timeouts, dropped connections)."""
    request_timeout: float = 600.0
    validation_retries: int = 2
    """Extra attempts when the answer is not JSON or fails validation (the error is fed back to the model)."""


def model_name(spec: str) -> str:
    """`openai:gpt-4.1` -> `gpt-4.1`; a bare name is used as is."""
    kind, sep, name = spec.partition(":")
    if not sep:
        return spec
    if kind != "openai" or not name:
        raise ConfigError(f"drafting model {spec!r}: use openai:NAME (any OpenAI-compatible endpoint) or fake")
    return name


def parse_answer(content: str | None, schema: type[M]) -> M:
    """Parse a JSON answer (code fences tolerated) and validate it; raises ValueError with a message for the model."""
    text = (content or "").strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"the answer is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"the answer must be a JSON object, found {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"the answer does not match the requested shape: {format_validation_error(e)}") from None


class DraftClient:
    """Drafting calls for one paper; `steps_dir` is its sidecar folder of step files. Counters: `calls` (model
    requests made), `replayed` (steps answered from files), `prompt_tokens`, `completion_tokens`."""

    def __init__(self, config: ClientConfig, steps_dir: str | Path, *, replay: bool = True):
        import openai

        self.config = config
        self.steps_dir = Path(steps_dir)
        self.replay = replay
        self.model = model_name(config.model)
        self.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
        self.client = openai.AsyncOpenAI(base_url=self.base_url, api_key=os.environ.get(config.api_key_env) or "EMPTY",
                                         max_retries=config.max_retries, timeout=config.request_timeout)  # fmt: skip
        self.calls = self.replayed = self.prompt_tokens = self.completion_tokens = 0

    async def close(self) -> None:
        await self.client.close()

    def _request(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        c = self.config
        req: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": c.temperature,
                               "max_tokens": c.max_tokens, "response_format": {"type": "json_object"}}  # fmt: skip
        if c.seed is not None:
            req["seed"] = c.seed
        return req

    @staticmethod
    def request_hash(request: dict[str, Any]) -> str:
        blob = json.dumps({"prompt_version": PROMPT_VERSION, **request}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def path(self, number: int, name: str) -> Path:
        return self.steps_dir / f"{number:02d}_{name}.json"

    def _replayed(self, path: Path, digest: str, schema: type[M]) -> M | None:
        if not self.replay or not path.exists():
            return None
        try:
            saved = read_json(path)
            if saved.get("request_sha256") != digest:
                return None  # the inputs changed since: ask again
            return schema.model_validate(saved["answer"])
        except (KlongError, KeyError, TypeError, AttributeError, ValidationError):
            return None  # a damaged step file is redone, never trusted

    async def step(self, number: int, name: str, messages: list[dict[str, str]], schema: type[M]) -> M:
        """The validated answer of one step (from its step file when the same request was answered before)."""
        import openai

        request = self._request(messages)
        digest = self.request_hash(request)
        path = self.path(number, name)
        if (hit := self._replayed(path, digest, schema)) is not None:
            self.replayed += 1
            return hit
        convo = list(messages)
        attempts: list[dict[str, Any]] = []
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        for _ in range(self.config.validation_retries + 1):
            try:
                response = await self.client.chat.completions.create(**{**request, "messages": convo})
            except openai.APIStatusError as e:
                raise ModelError(f"draft step {name} ({self.base_url or 'OpenAI'}, model {self.model}): "
                                 f"HTTP {e.status_code} after retries: {e.message}") from e  # fmt: skip
            except openai.APIError as e:
                raise ModelError(f"draft step {name} ({self.base_url or 'OpenAI'}, model {self.model}): "
                                 f"{type(e).__name__} after retries: {e}") from e  # fmt: skip
            self.calls += 1
            if response.usage is not None:
                usage["prompt_tokens"] += response.usage.prompt_tokens
                usage["completion_tokens"] += response.usage.completion_tokens
            content = response.choices[0].message.content if response.choices else None
            try:
                answer = parse_answer(content, schema)
            except ValueError as e:
                attempts.append({"content": content, "error": str(e)})
                convo = [*convo, {"role": "assistant", "content": content or ""},
                         {"role": "user", "content": f"Your answer was rejected: {e}. Answer again with one JSON "
                                                     f"object in the requested shape."}]  # fmt: skip
                continue
            attempts.append({"content": content, "error": None})
            self._account(usage)
            atomic_write_json(path, {"step": name, "schema": schema.__name__, "prompt_version": PROMPT_VERSION,
                                     "request_sha256": digest, "request": request, "attempts": attempts,
                                     "usage": usage, "answer": answer.model_dump(mode="json")}, indent=1)  # fmt: skip
            return answer
        self._account(usage)
        failed = path.with_suffix(".failed.json")
        atomic_write_json(failed, {"step": name, "request": request, "attempts": attempts, "usage": usage}, indent=1)
        raise DraftError(f"draft step {name}: no valid answer after {len(attempts)} attempts "
                         f"(last: {attempts[-1]['error']}); the attempts are in {failed}")  # fmt: skip

    def _account(self, usage: dict[str, int]) -> None:
        self.prompt_tokens += usage["prompt_tokens"]
        self.completion_tokens += usage["completion_tokens"]

    async def gather(self, *coros: Any) -> list[Any]:
        """Run steps concurrently (subtrees); the first failure is raised after all have finished."""
        results = await asyncio.gather(*coros, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return list(results)
