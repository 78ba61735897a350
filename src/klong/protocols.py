"""The small protocols at klong's seams. Implementations are chosen by short name (see `klong.models.load_model`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from klong.schema import Message


@runtime_checkable
class Model(Protocol):
    """A chat model that answers a conversation with one assistant message.

    Contract: `generate` returns a `Message` with role `assistant` (content and/or tool calls); when the backend knows
    them it fills `usage`, `finish_reason`, and the sampled `token_ids` with their `logprobs`. It is a coroutine so that
    hundreds of episodes can share one process; a backend that computes locally runs its work in a thread.
    """

    name: str
    """The model spec it was created from, recorded in trajectories (e.g. `scripted:plan.yaml`)."""

    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        """`json_mode` asks for a JSON object as the answer where the backend supports it (OpenAI `response_format`);
        other backends ignore it (callers parse answers robustly anyway)."""
        ...
