"""klong trajectories -> OpenAI chat lines: one `{"messages": [...], "tools": [...], "parallel_tool_calls": ...}` per
trajectory, the per-line shape of an OpenAI chat fine-tuning file (and of a chat-completions request body without
`model`, so the same file serves as an inference data set).

Messages keep only what OpenAI's `ChatCompletionMessageParam` types carry: `role` and `content` for every message,
`tool_calls` (`{id, type: "function", function: {name, arguments}}`, arguments a JSON string) on assistant turns,
`tool_call_id` on tool results. klong's bookkeeping (times, token ids, logprobs, `meta`), a tool result's `name` and
`reasoning_content` are left out: none of them is part of those types. `parallel_tool_calls` is written when the
trajectory offers tools: true when some assistant turn made more than one call.

Checked before anything is written: every tool result answers a call of the assistant turn before it, and every call
is answered before the next assistant turn (OpenAI refuses either); the calls of the last turn may stay unanswered (a
fine-tuning example may end on the calls the model made, as a SWE-agent run ends on `submit`). A trajectory that
breaks this is an error naming the file and the message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from klong.exceptions import InputFileError
from klong.schema import Message, Trajectory


def _message(m: Message) -> dict[str, Any]:
    if m.role == "assistant":
        out: dict[str, Any] = {"role": "assistant"}
        if m.content is not None or not m.tool_calls:
            out["content"] = m.content or ""
        if m.tool_calls:
            out["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in m.tool_calls
            ]
        return out
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""}
    return {"role": m.role, "content": m.content or ""}


def _check_calls(traj: Trajectory, path: Path) -> None:
    open_calls: dict[str, int] = {}
    for i, m in enumerate(traj.messages):
        if m.role != "tool" and open_calls:
            call, at = next(iter(open_calls.items()))
            raise InputFileError(path, f"messages[{at}]: tool call {call!r} is not answered before messages[{i}] "
                                       f"({m.role})")  # fmt: skip
        if m.role == "assistant":
            open_calls = {c.id: i for c in m.tool_calls or []}
        elif m.role == "tool":
            if m.tool_call_id is None:
                raise InputFileError(path, f"messages[{i}]: tool message without tool_call_id")
            if open_calls.pop(m.tool_call_id, None) is None:
                raise InputFileError(path, f"messages[{i}]: tool message answers {m.tool_call_id!r}, which is not an "
                                           "open call of the assistant turn before it")  # fmt: skip


def _tools(traj: Trajectory, path: Path) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(traj.tools or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InputFileError(path, f"tools[{i}]: not an OpenAI function tool ({{type, function: {{name, ...}}}})")
        out.append({"type": "function", "function": fn})
    return out


def chat_line(traj: Trajectory, path: str | Path) -> dict[str, Any]:
    """The OpenAI chat line of one trajectory (see the module doc); `path` names the file in errors."""
    path = Path(path)
    if not traj.messages:
        raise InputFileError(path, "trajectory has no messages")
    _check_calls(traj, path)
    line: dict[str, Any] = {"messages": [_message(m) for m in traj.messages]}
    if traj.tools:
        line["tools"] = _tools(traj, path)
        line["parallel_tool_calls"] = any(len(m.tool_calls or []) > 1 for m in traj.messages)
    return line
