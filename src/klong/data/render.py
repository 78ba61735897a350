"""Messages -> tokens, through the model's own Hugging Face chat template.

This is the only module where messages become token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from klong.schema import Message


def to_template_message(message: Message) -> dict[str, Any]:
    """The message as Hugging Face chat templates expect it.

    Templates read tool-call arguments as a mapping (they apply `tojson` themselves), so JSON-encoded arguments are
    decoded; arguments that are not a JSON object (a malformed call) are passed on as the raw string.
    """
    out = message.to_openai()
    if message.content is None:
        out["content"] = ""
    if message.tool_calls:
        calls = []
        for call in message.tool_calls:
            args = call.function.parsed_arguments()
            calls.append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": call.function.name,
                        "arguments": args if args is not None else call.function.arguments,
                    },
                }
            )
        out["tool_calls"] = calls
    return out


def to_template_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [to_template_message(m) for m in messages]


def render_ids(
    tokenizer,
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = False,
) -> list[int]:
    """Token ids of the conversation exactly as `apply_chat_template` produces them."""
    encoded = tokenizer.apply_chat_template(
        to_template_messages(messages),
        tools=list(tools) if tools else None,
        tokenize=True,
        add_generation_prompt=add_generation_prompt,
        return_dict=True,
    )
    return list(encoded["input_ids"])
