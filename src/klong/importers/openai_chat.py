"""OpenAI chat messages -> klong trajectories.

Accepts a JSON list of chat messages, or an object `{"messages": [...], "tools": [...]}` (the request body shape; other
keys such as `model` are kept: `model` as the trajectory's model, the rest in `meta`). Legacy `developer` messages become
`system`; legacy `function` messages become `tool` messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from klong.exceptions import ImportFormatError
from klong.importers.common import make_message, require_list, require_mapping
from klong.schema import Message, Trajectory

_OPENAI_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content")


def _convert(item: dict[str, Any], where: str, path: Path) -> Message:
    role = item.get("role")
    fields = {k: item[k] for k in _OPENAI_KEYS if item.get(k) is not None}
    meta: dict[str, Any] = {}
    if role == "developer":
        fields["role"] = "system"
        meta["original_role"] = "developer"
    elif role == "function":
        fields["role"] = "tool"
        meta["original_role"] = "function"
    elif role not in ("system", "user", "assistant", "tool"):
        raise ImportFormatError(path, f"{where}: unknown role {role!r}")
    if fields.get("role") != "tool":
        fields.pop("name", None)  # a participant name on non-tool messages carries nothing klong uses
    if meta:
        fields["meta"] = meta
    return make_message(fields, where, path)


def import_openai_chat(data: Any, path: Path) -> Trajectory:
    extra: dict[str, Any] = {}
    tools = None
    model = None
    if isinstance(data, dict):
        if "messages" not in data:
            raise ImportFormatError(path, "expected a list of chat messages or an object with `messages`")
        raw = require_list(data["messages"], "messages", path)
        if not raw:
            raise ImportFormatError(path, "`messages` is empty: nothing to import")
        if data.get("tools") is not None:
            tools = [
                require_mapping(t, f"tools[{i}]", path)
                for i, t in enumerate(require_list(data["tools"], "tools", path))
            ]
        model = data.get("model") if isinstance(data.get("model"), str) else None
        extra = {k: v for k, v in data.items() if k not in ("messages", "tools", "model")}
    else:
        raw = require_list(data, "top level", path)
    messages = [_convert(require_mapping(m, f"messages[{i}]", path), f"messages[{i}]", path) for i, m in enumerate(raw)]
    _check_tool_answers(messages, path)
    return Trajectory(model=model, tools=tools, messages=messages, meta={"source_agent": "openai", **extra})


def _check_tool_answers(messages: list[Message], path: Path) -> None:
    """Every tool message must answer a call made earlier; an orphan means a corrupted or reordered file."""
    open_calls: set[str] = set()
    for i, m in enumerate(messages):
        for call in m.tool_calls or []:
            open_calls.add(call.id)
        if m.role == "tool" and m.tool_call_id is not None and m.tool_call_id not in open_calls:
            raise ImportFormatError(
                path, f"messages[{i}]: tool message answers unknown tool_call_id {m.tool_call_id!r}"
            )
