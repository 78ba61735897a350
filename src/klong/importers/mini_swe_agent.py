"""mini-swe-agent trajectories -> klong trajectories.

Two shapes exist: the older plain JSON list of messages, and `{"info": ..., "messages": [...], "trajectory_format":
"mini-swe-agent-1"}`. mini-swe-agent has no native tool calls: the model writes one fenced bash block per turn, so the
assistant text is kept as written and the parsed command goes to `meta.action`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from klong.exceptions import ImportFormatError, StopReason
from klong.importers.common import make_message, require_list, require_mapping, text_of
from klong.schema import Trajectory

_ACTION_BLOCK = re.compile(r"```(?:mswea_bash_command|bash)\s*\n(.*?)\n```", re.DOTALL)


def import_mini_swe_agent(data: Any, path: Path) -> Trajectory:
    info: dict[str, Any] = {}
    if isinstance(data, dict):
        if "messages" not in data:
            raise ImportFormatError(path, "not a mini-swe-agent trajectory: no `messages` key")
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        raw = require_list(data["messages"], "messages", path)
    else:
        raw = require_list(data, "top level", path)
    messages = []
    for i, item in enumerate(raw):
        where = f"messages[{i}]"
        item = require_mapping(item, where, path)
        role = item.get("role")
        if role not in ("system", "user", "assistant"):
            raise ImportFormatError(path, f"{where}: unknown role {role!r}")
        content = text_of(item.get("content"))
        fields: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant":
            actions = _ACTION_BLOCK.findall(content)
            if actions:
                fields["meta"] = {"action": actions[0].strip()}
        messages.append(make_message(fields, where, path))
    exit_status = info.get("exit_status")
    stop = StopReason.UNKNOWN
    if isinstance(exit_status, str) and exit_status.lower() == "submitted":
        stop = StopReason.END_TASK
    meta: dict[str, Any] = {"source_agent": "mini-swe-agent"}
    for key in ("exit_status", "submission", "model_stats", "mini_version"):
        if info.get(key) is not None:
            meta[key] = info[key]
    model = None
    config = info.get("config")
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        model = config["model"].get("model_name")
    return Trajectory(
        model=model if isinstance(model, str) else None,
        messages=messages,
        stop_reason=stop,
        stop_detail=str(exit_status) if exit_status is not None else None,
        meta=meta,
    )
