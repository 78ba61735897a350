"""Tool calls written as text, in the formats of the chat templates klong supports.

- `hermes` (Qwen2.5, Qwen3): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one block per call;
- `llama3` (Llama 3.1): the reply is a JSON object `{"name": ..., "parameters": {...}}` (optionally after `<|python_tag|>`);
- `glm45` (GLM-4.5): `<tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>`.

`auto` recognises the format. Parsing is forgiving (code fences, control characters in strings, a final block left
unclosed when generation stopped); what cannot be read becomes an error the runtime shows to the model.
A leading `<think>...</think>` becomes the message's reasoning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

ToolFormat = Literal["auto", "hermes", "llama3", "glm45"]

_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
_GLM = re.compile(r"<tool_call>\s*([^\s<]+)\s*(.*?)(?:</tool_call>|$)", re.DOTALL)
_GLM_ARG = re.compile(r"<arg_key>\s*(.*?)\s*</arg_key>\s*<arg_value>(.*?)</arg_value>", re.DOTALL)
_NAME = re.compile(r'"name"\s*:\s*"([^"]+)"')
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


@dataclass
class ParsedCall:
    name: str
    arguments: str
    """JSON text of the arguments; left raw when it is not valid JSON (the tool then reports it)."""


@dataclass
class ParsedReply:
    content: str
    reasoning: str | None = None
    calls: list[ParsedCall] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _loads(text: str) -> Any:
    return json.loads(_FENCE.sub("", text.strip()), strict=False)


def _json_call(blob: str, args_keys: tuple[str, ...]) -> tuple[ParsedCall | None, str | None]:
    try:
        obj = _loads(blob)
    except json.JSONDecodeError as e:
        name = _NAME.search(blob)
        if name:
            return ParsedCall(name.group(1), blob), None
        return None, f"could not read a tool call ({e.msg} at column {e.colno}): {blob[:200]!r}"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None, f"a tool call must be a JSON object with a string `name`: {blob[:200]!r}"
    args = next((obj[k] for k in args_keys if k in obj), {})
    if isinstance(args, str):  # some models double-encode
        return ParsedCall(obj["name"], args), None
    return ParsedCall(obj["name"], json.dumps(args, ensure_ascii=False)), None


def _split_reasoning(text: str) -> tuple[str | None, str]:
    if "</think>" in text:
        head, _, rest = text.partition("</think>")
        return head.split("<think>", 1)[-1].strip("\n"), rest.lstrip("\n")
    return None, text


def detect_format(text: str) -> ToolFormat:
    if "<arg_key>" in text or re.search(r"<tool_call>\s*[A-Za-z_][\w.\-]*\s*</tool_call>", text):
        return "glm45"
    if "<tool_call>" in text:
        return "hermes"
    return "llama3"


def parse_reply(text: str, fmt: ToolFormat = "auto") -> ParsedReply:
    reasoning, text = _split_reasoning(text)
    fmt = detect_format(text) if fmt == "auto" else fmt
    reply = ParsedReply(content=text.strip(), reasoning=reasoning)
    if fmt == "hermes":
        first = text.find("<tool_call>")
        if first < 0:
            return reply
        reply.content = text[:first].strip()
        for blob in _HERMES.findall(text[first:]):
            call, err = _json_call(blob, ("arguments", "parameters"))
            reply.calls.append(call) if call else reply.errors.append(err or "")
    elif fmt == "glm45":
        first = text.find("<tool_call>")
        if first < 0:
            return reply
        reply.content = text[:first].strip()
        for name, body in _GLM.findall(text[first:]):
            args: dict[str, Any] = {}
            for key, value in _GLM_ARG.findall(body):
                try:
                    args[key] = json.loads(value)
                except json.JSONDecodeError:
                    args[key] = value
            reply.calls.append(ParsedCall(name, json.dumps(args, ensure_ascii=False)))
    else:
        body = text.strip().removeprefix("<|python_tag|>").strip()
        start = body.find("{")
        if start < 0 or not _NAME.search(body[start:]):
            return reply
        candidates = [c for c in re.split(r"\s*;\s*(?=\{)", body[start:]) if c.strip()]
        parsed = [_json_call(c, ("parameters", "arguments")) for c in candidates]
        if all(call is not None for call, _ in parsed):
            reply.content = body[:start].strip()
            reply.calls = [call for call, _ in parsed if call is not None]
    return reply
