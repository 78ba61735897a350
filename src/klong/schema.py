"""Cross-stage records: chat messages, tool calls, trajectories and run metadata.

These are versioned pydantic models; their JSON files are the interfaces between klong's stages. Messages are in the
OpenAI chat format (so they can be sent to any OpenAI-compatible endpoint as they are, see `Message.to_openai`), with
klong's per-message bookkeeping in extra fields that `to_openai` strips: time, token usage, and for assistant turns the
sampled token ids and logprobs when the backend returned them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from klong.exceptions import InputFileError, StopReason
from klong.io import atomic_write_text, read_json, validate_record, write_model

TRAJECTORY_SCHEMA_VERSION = 1
RUN_META_SCHEMA_VERSION = 1

Role = Literal["system", "user", "assistant", "tool"]


def _now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    """Base of klong records: unknown fields are rejected, so a typo in a hand-written file is reported."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class ToolFunction(Record):
    name: str
    """The tool's name, as declared in the tool schema."""
    arguments: str = "{}"
    """The arguments as a JSON-encoded object, exactly as OpenAI's API carries them (a string, not a dict)."""

    @field_validator("arguments", mode="before")
    @classmethod
    def _encode_arguments(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return json.dumps(v, ensure_ascii=False)
        if v is None:
            return "{}"
        return v

    def parsed_arguments(self) -> dict[str, Any] | None:
        """The arguments as a dict, or None when they are not a valid JSON object (a malformed call)."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None


class ToolCall(Record):
    """One tool call of an assistant message (OpenAI format)."""

    id: str
    type: Literal["function"] = "function"
    function: ToolFunction


class Usage(Record):
    """Token usage of one model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    """Prompt tokens served from the server's prefix cache, when the server reports it."""


class Sampling(Record):
    """How an assistant turn was sampled, and what its recorded `logprobs` mean.

    The RL ratio compares the policy's log-probabilities with these, so the trainer must compute the same quantity:
    `processed` logprobs are those of the distribution the tokens were drawn from (logits / temperature, then top-p),
    `raw` ones are the model's own distribution before any processing (temperature 1; vLLM's default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float
    """Sampling temperature (0: greedy)."""
    top_p: float = 1.0
    logprobs: Literal["processed", "raw"] = "processed"

    @property
    def logprobs_temperature(self) -> float:
        """The temperature at which a trainer reproduces the recorded logprobs (1 for raw or greedy ones)."""
        return self.temperature if self.logprobs == "processed" and self.temperature > 0 else 1.0


class Message(Record):
    """One chat message in OpenAI format plus klong's per-message bookkeeping.

    Contract: an assistant message that carries `token_ids` carries exactly the ids the model sampled for it, and
    `logprobs` (when present) has the same length; training uses these ids instead of re-tokenising the text.
    """

    role: Role
    content: str | None = None
    reasoning_content: str | None = None
    """Visible reasoning ("thinking") of the turn, in the field the Qwen3 and GLM-4.5 chat templates read."""
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    """For role `tool`: the id of the call this message answers."""
    name: str | None = None
    """For role `tool`: the name of the tool that produced it."""

    # klong bookkeeping (not part of the OpenAI message)
    time: float | None = None
    """Wall-clock seconds since the episode started, when the message was added."""
    virtual_time: float | None = None
    """Virtual-clock seconds since the episode started (synthetic tasks), when the message was added."""
    usage: Usage | None = None
    """For assistant turns: usage of the model call that produced it."""
    finish_reason: str | None = None
    """For assistant turns: why generation stopped (`stop`, `tool_calls`, `length`)."""
    token_ids: list[int] | None = None
    """For assistant turns: the sampled completion token ids, when the backend returned them."""
    logprobs: list[float] | None = None
    """For assistant turns: the sampling policy's logprob of each id in `token_ids` (their meaning: `sampling`)."""
    sampling: Sampling | None = None
    """For assistant turns with `logprobs`: the sampling settings and whether the logprobs are raw or processed."""
    meta: dict[str, Any] | None = None
    """Anything else worth keeping (e.g. the source agent's parsed action); never sent to a model."""

    @field_validator("content", mode="before")
    @classmethod
    def _flatten_content(cls, v: Any) -> Any:
        # OpenAI allows a list of content parts; klong keeps text only, joined in order.
        if isinstance(v, list):
            texts = []
            for part in v:
                if isinstance(part, str):
                    texts.append(part)
                elif isinstance(part, dict) and part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif isinstance(part, dict) and "text" in part:
                    texts.append(str(part["text"]))
            return "".join(texts)
        return v

    @model_validator(mode="after")
    def _check_roles(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not {self.role!r} messages")
        if self.logprobs is not None and self.token_ids is not None and len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"logprobs has {len(self.logprobs)} entries but token_ids has {len(self.token_ids)}")
        return self

    def to_openai(self) -> dict[str, Any]:
        """The message as the OpenAI chat API expects it (klong's bookkeeping removed)."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [tc.model_dump() for tc in self.tool_calls]
        if self.role == "tool":
            if self.tool_call_id is not None:
                out["tool_call_id"] = self.tool_call_id
            if self.name is not None:
                out["name"] = self.name
        if self.reasoning_content:
            out["reasoning_content"] = self.reasoning_content
        return out


class TrajectorySource(Record):
    """Where an imported trajectory came from."""

    format: str
    path: str
    sha256: str | None = None


class Trajectory(Record):
    """One rollout: the full, append-only message history and how the episode ended.

    `stop_reason` is None while the episode is still running (a trajectory is saved after every step).
    """

    schema_version: int = TRAJECTORY_SCHEMA_VERSION
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    task_id: str | None = None
    model: str | None = None
    """The model spec that produced the assistant turns (e.g. `openai:gpt-4.1`, `hf:/models/tiny`)."""
    sandbox: str | None = None
    tools: list[dict[str, Any]] | None = None
    """The tool schemas (OpenAI `tools` format) offered to the model."""
    messages: list[Message] = Field(default_factory=list)
    stop_reason: StopReason | None = None
    stop_detail: str | None = None
    """A human-readable note on the stop (e.g. the last endpoint error), never shown to the model."""
    wall_time: float = 0.0
    """Wall-clock seconds the episode has run."""
    virtual_time: float | None = None
    """Virtual-clock seconds the episode has run (synthetic tasks)."""
    time_limit: float | None = None
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)
    source: TrajectorySource | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def assistant_turns(self) -> int:
        return sum(1 for m in self.messages if m.role == "assistant")

    def tool_call_count(self) -> int:
        return sum(len(m.tool_calls or []) for m in self.messages)

    def openai_messages(self) -> list[dict[str, Any]]:
        return [m.to_openai() for m in self.messages]


class RunMeta(Record):
    """Provenance of a run directory: what produced it, where and with which versions."""

    schema_version: int = RUN_META_SCHEMA_VERSION
    klong_version: str
    command: list[str] = Field(default_factory=list)
    python: str
    platform: str
    host: str
    packages: dict[str, str] = Field(default_factory=dict)
    """Versions of the libraries that shape results (torch, transformers, openai, ...), where installed."""
    git_revision: str | None = None
    git_dirty: bool | None = None
    started_at: datetime = Field(default_factory=_now)
    extra: dict[str, Any] = Field(default_factory=dict)


def _check_version(data: Any, path: Path, current: int, what: str) -> None:
    if not isinstance(data, dict):
        raise InputFileError(path, f"expected a JSON object for a {what}, found {type(data).__name__}")
    version = data.get("schema_version", current)
    if not isinstance(version, int) or version > current:
        raise InputFileError(
            path, f"{what} schema_version {version!r} is newer than this klong supports ({current}); upgrade klong"
        )


def read_trajectory(path: str | Path) -> Trajectory:
    """Read a klong trajectory file; errors name the file and what is wrong."""
    path = Path(path)
    data = read_json(path)
    _check_version(data, path, TRAJECTORY_SCHEMA_VERSION, "trajectory")
    return validate_record(Trajectory, data, path, what="klong trajectory")


def write_trajectory(path: str | Path, traj: Trajectory, *, fsync: bool = True) -> None:
    """Save a trajectory atomically (safe to call after every step: a reader never sees a half-written file)."""
    traj.updated_at = _now()
    write_model(path, traj, fsync=fsync)


class TrajectoryWriter:
    """Saves a growing trajectory atomically after every step, without re-serialising the messages it already wrote.

    Messages are cached by identity; the last `fresh` ones are always serialised again (the runtime may still append a
    notice to the last tool result). The file is the same as `write_trajectory` would write.

    Durability: every save is an atomic rename, so a kill of the process at any moment leaves the last saved state.
    Against a crash of the machine, the file is fsynced at most every `fsync_seconds` (and on `save(final=True)`):
    hundreds of concurrent episodes do not each wait for the disk at every step, and at most that much is lost.
    `save_async` writes from a worker thread (the event loop goes on with other episodes while the disk works) and
    returns once the file is in place, so what follows a save still happens after it.
    """

    def __init__(self, path: str | Path, *, fresh: int = 2, fsync: bool = True, fsync_seconds: float = 5.0):
        self.path = Path(path)
        self.fresh = fresh
        self.fsync = fsync
        self.fsync_seconds = fsync_seconds
        self._synced = time.monotonic()  # a fresh file lost to a machine crash is made again: no fsync at once
        self._cache: list[tuple[Message, str]] = []
        self._tools: tuple[list, int, str] | None = None

    def save(self, traj: Trajectory, *, final: bool = False) -> None:
        text, sync = self._render(traj, final)
        atomic_write_text(self.path, text, fsync=sync)

    async def save_async(self, traj: Trajectory, *, final: bool = False) -> None:
        text, sync = self._render(traj, final)  # on the loop: the trajectory may change once this returns
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(atomic_write_text, self.path, text,
                                                                                 fsync=sync))  # fmt: skip

    def _render(self, traj: Trajectory, final: bool) -> tuple[str, bool]:
        traj.updated_at = _now()
        stable = len(traj.messages) - self.fresh
        parts = []
        for i, m in enumerate(traj.messages):
            if i < len(self._cache) and i < stable and self._cache[i][0] is m:
                parts.append(self._cache[i][1])
                continue
            text = m.model_dump_json(exclude_none=True)
            if i < len(self._cache):
                self._cache[i] = (m, text)
            else:
                self._cache.append((m, text))
            parts.append(text)
        del self._cache[len(traj.messages) :]
        head = traj.model_dump_json(exclude_none=True, exclude={"messages", "tools"})
        if traj.tools is not None:  # the tools' schemas do not change during an episode: serialised once
            if self._tools is None or self._tools[0] is not traj.tools or self._tools[1] != len(traj.tools):
                self._tools = (traj.tools, len(traj.tools), json.dumps(traj.tools, ensure_ascii=False,
                                                                         separators=(",", ":")))  # fmt: skip
            head = f'{head[:-1]},"tools":{self._tools[2]}}}'
        now = time.monotonic()
        sync = self.fsync and (final or now - self._synced >= self.fsync_seconds)
        if sync:
            self._synced = now
        return f'{head[:-1]},"messages":[{",".join(parts)}]}}\n', sync


def read_run_meta(path: str | Path) -> RunMeta:
    path = Path(path)
    data = read_json(path)
    _check_version(data, path, RUN_META_SCHEMA_VERSION, "run metadata")
    return validate_record(RunMeta, data, path, what="klong run metadata")


def write_run_meta(path: str | Path, meta: RunMeta) -> None:
    write_model(path, meta, indent=2)
