"""Token-in/token-out turns, shared by the backends that sample from klong's own rendering (`hf:`, `vllm:`).

The prompt is `ChatRenderer.render_prompt` of the view: the token sequence the splitter later trains on (earlier turns
keep the ids they were sampled as). The reply is the sampled ids as they are, with their logprobs; its text is decoded
from those ids only to be parsed into content, reasoning and tool calls (`klong.chat.parsing`). Nothing is tokenised
again between what was sampled and what is trained.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from klong.chat.parsing import ToolFormat, parse_reply
from klong.chat.render import ChatRenderer, prompt_digest
from klong.schema import Message, Sampling, ToolCall, ToolFunction, Usage


class Renderers:
    """One `ChatRenderer` per (tools, system prompt): its caches of rendered pieces serve every call of an episode."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self._renderers: dict[Any, ChatRenderer] = {}

    def get(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None) -> ChatRenderer:
        system = messages[0] if messages and messages[0].role == "system" else None
        key = (repr(tools), system.content if system is not None else None)
        if key not in self._renderers:
            self._renderers[key] = ChatRenderer(self.tokenizer, list(tools) if tools else None, system)
        return self._renderers[key]


def stop_token_ids(renderer: ChatRenderer) -> list[int]:
    """The first token of each of the template's end-of-turn strings: generation stops at any of them."""
    encode = renderer.tokenizer.encode
    return sorted({i for s in renderer.end_of_turn for i in encode(s, add_special_tokens=False)[:1]})


def reply_message(renderer: ChatRenderer, prompt: Sequence[int], new_ids: list[int], logprobs: list[float],
                  stop_ids: Sequence[int], sampling: Sampling, tool_format: ToolFormat,
                  meta: dict[str, Any] | None = None) -> Message:  # fmt: skip
    """The assistant message for `new_ids` sampled after `prompt`: ids and logprobs as sampled, the text parsed."""
    finished = bool(new_ids) and new_ids[-1] in stop_ids
    text = renderer.tokenizer.decode(new_ids[:-1] if finished else new_ids, skip_special_tokens=False)
    parsed = parse_reply(text, tool_format)
    calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", function=ToolFunction(name=p.name, arguments=p.arguments))
             for p in parsed.calls]  # fmt: skip
    record: dict[str, Any] = {"prompt": {"tokens": len(prompt), "sha": prompt_digest(prompt)}, **(meta or {})}
    if parsed.errors:
        record["parse_errors"] = parsed.errors
    return Message(role="assistant", content=parsed.content, reasoning_content=parsed.reasoning,
                   tool_calls=calls or None, token_ids=new_ids, logprobs=logprobs, sampling=sampling,
                   usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(new_ids)),
                   finish_reason=("tool_calls" if calls else "stop") if finished else "length", meta=record)  # fmt: skip
