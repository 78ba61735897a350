"""SWE-agent `.traj` files (text, XML and function-calling formats) -> klong trajectories.

A `.traj` holds `history` (the messages the model saw and wrote, tool calls included in function-calling mode) and
`trajectory` (one step per action: response, thought, action, observation). The two usually agree, but not always:
SWE-agent leaves some steps out of `history` (a step whose malformed edit was retried; the final `submit`, whose
observation ended the run). klong keeps every turn: history turns and steps are merged in order, matching on
their actions (a replayed run may edit the thoughts); a step missing from history is rebuilt from the step itself. In function-calling files a rebuilt
step whose action is a bare command (no arguments, e.g. `submit`) becomes that tool call with empty arguments; any
other rebuilt step keeps the model's response as text, with the action in `meta`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from klong.exceptions import ImportFormatError, StopReason
from klong.importers.common import make_message, require_list, require_mapping, text_of
from klong.schema import Message, Trajectory

_EXIT_STATUS = {
    "submitted": StopReason.END_TASK,
    "exit_context": StopReason.CONTEXT_EXHAUSTED,
    "exit_format": StopReason.ERROR,
    "exit_error": StopReason.ERROR,
    "exit_environment_error": StopReason.SANDBOX_ERROR,
    "exit_api": StopReason.MODEL_ERROR,
}


def _stop_reason(exit_status: Any) -> StopReason:
    if not isinstance(exit_status, str) or not exit_status:
        return StopReason.UNKNOWN
    return _EXIT_STATUS.get(exit_status.strip(), StopReason.UNKNOWN)


def _action_key(raw: dict[str, Any]) -> str:
    return str(raw.get("action") or "").strip()


def _history_message(raw: dict[str, Any], index: int, path: Path) -> Message:
    where = f"history[{index}]"
    role = raw.get("role")
    if role not in ("system", "user", "assistant", "tool"):
        raise ImportFormatError(path, f"{where}: unknown role {role!r}")
    fields: dict[str, Any] = {"role": role, "content": text_of(raw.get("content"))}
    meta: dict[str, Any] = {}
    for key in ("agent", "message_type", "is_demo"):
        if raw.get(key) is not None:
            meta[key] = raw[key]
    if role == "assistant":
        if raw.get("action") is not None:
            meta["action"] = raw["action"]
        if raw.get("tool_calls"):
            fields["tool_calls"] = require_list(raw["tool_calls"], f"{where}.tool_calls", path)
    if role == "tool":
        ids = raw.get("tool_call_ids") or []
        if not ids:
            raise ImportFormatError(path, f"{where}: tool message without tool_call_ids")
        fields["tool_call_id"] = ids[0]
        if len(ids) > 1:
            meta["tool_call_ids"] = ids
    if meta:
        fields["meta"] = meta
    return make_message(fields, where, path)


def _split_turns(history: list[Message]) -> tuple[list[Message], list[list[Message]]]:
    """Prefix (everything before the first assistant message) and turns (an assistant message + what follows it)."""
    prefix: list[Message] = []
    turns: list[list[Message]] = []
    for msg in history:
        if msg.role == "assistant":
            turns.append([msg])
        elif turns:
            turns[-1].append(msg)
        else:
            prefix.append(msg)
    return prefix, turns


def _rebuilt_step(step: dict[str, Any], index: int, is_last: bool, function_calling: bool, path: Path) -> list[Message]:
    where = f"trajectory[{index}]"
    action = str(step.get("action") or "")
    observation = text_of(step.get("observation"))
    meta = {"action": action, "rebuilt_from": "trajectory step (absent from history)"}
    command = action.strip()
    as_call = function_calling and command != "" and len(command.split()) == 1
    assistant: dict[str, Any] = {"role": "assistant", "content": text_of(step.get("response")), "meta": meta}
    call_id = f"klong_import_{index}"
    if as_call:
        assistant["content"] = text_of(step.get("thought")) or assistant["content"]
        assistant["tool_calls"] = [{"id": call_id, "function": {"name": command, "arguments": "{}"}}]
    out = [make_message(assistant, where, path)]
    if as_call:
        out.append(make_message({"role": "tool", "content": observation, "tool_call_id": call_id}, where, path))
    elif observation or not is_last:
        out.append(make_message({"role": "user", "content": observation}, where, path))
    return out


def import_swe_agent(data: Any, path: Path) -> Trajectory:
    data = require_mapping(data, "top level", path)
    if "history" not in data and "trajectory" not in data:
        raise ImportFormatError(path, "not a SWE-agent trajectory: no `history` or `trajectory` key")
    raw_history = require_list(data.get("history") or [], "history", path)
    steps = require_list(data.get("trajectory") or [], "trajectory", path)
    history = [_history_message(require_mapping(m, f"history[{i}]", path), i, path) for i, m in enumerate(raw_history)]
    for i, step in enumerate(steps):
        require_mapping(step, f"trajectory[{i}]", path)
    function_calling = any(m.tool_calls for m in history)

    prefix, turns = _split_turns(history)
    turn_actions = [_action_key(m) for m in raw_history if isinstance(m, dict) and m.get("role") == "assistant"]
    step_actions = [_action_key(s) for s in steps]

    messages = list(prefix)
    # Align history turns with steps on their actions (thoughts may differ: replayed runs edit them).
    matcher = difflib.SequenceMatcher(a=turn_actions, b=step_actions, autojunk=False)
    for _tag, i1, i2, j1, j2 in matcher.get_opcodes():
        paired = min(i2 - i1, j2 - j1)
        for k in range(paired):
            _attach_step_meta(turns[i1 + k][0], steps[j1 + k])
            messages.extend(turns[i1 + k])
        for i in range(i1 + paired, i2):
            messages.extend(turns[i])  # a history turn with no step: keep it as the model saw it
        for j in range(j1 + paired, j2):
            messages.extend(_rebuilt_step(steps[j], j, j == len(steps) - 1, function_calling, path))

    info = data.get("info") if isinstance(data.get("info"), dict) else {}
    exit_status = info.get("exit_status")
    meta: dict[str, Any] = {"source_agent": "swe-agent"}
    for key in ("exit_status", "submission", "model_stats"):
        if info.get(key) is not None:
            meta[key] = info[key]
    model = _model_name(data)
    return Trajectory(
        model=model,
        sandbox=str(data["environment"]) if isinstance(data.get("environment"), str) else None,
        messages=messages,
        stop_reason=_stop_reason(exit_status),
        stop_detail=str(exit_status) if exit_status is not None else None,
        wall_time=sum(float(s.get("execution_time") or 0.0) for s in steps),
        meta=meta,
    )


def _attach_step_meta(assistant: Message, step: dict[str, Any]) -> None:
    meta = dict(assistant.meta or {})
    if step.get("execution_time") is not None:
        meta["execution_time"] = step["execution_time"]
    assistant.meta = meta


def _model_name(data: dict[str, Any]) -> str | None:
    config = data.get("replay_config")
    if isinstance(config, dict):
        model = (config.get("agent") or {}).get("model") if isinstance(config.get("agent"), dict) else None
        if isinstance(model, dict) and isinstance(model.get("name"), str):
            return model["name"]
    return None
