"""Import other agents' trajectories as klong trajectories.

Each importer takes the parsed JSON of one source file and returns a `Trajectory` that keeps every turn of the
source. Tool calls stay tool calls where the source recorded them; text-format actions stay the text the model wrote
(the parsed action is kept in the message's `meta`).

Before converting, the file's shape is checked against the format asked for (`sniff_format`): a file that plainly is of
another format (a SWE-agent `.traj` given as `openai`, chat messages with tool calls given as `mini-swe-agent`, a
klong trajectory) is refused with the format it looks like, instead of being converted with turns or fields lost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from klong.exceptions import ConfigError, ImportFormatError
from klong.importers.mini_swe_agent import import_mini_swe_agent
from klong.importers.openai_chat import import_openai_chat
from klong.importers.swe_agent import import_swe_agent
from klong.io import parse_json, read_text
from klong.schema import Trajectory, TrajectorySource

Importer = Callable[[Any, Path], Trajectory]

IMPORTERS: dict[str, Importer] = {
    "swe-agent": import_swe_agent,
    "mini-swe-agent": import_mini_swe_agent,
    "openai": import_openai_chat,
}


def trajectory_id_from_path(path: Path) -> str:
    """A file-name-safe id from the source file's name (`.traj`, `.json` and `.traj.json` removed)."""
    name = path.name
    for suffix in (".traj.json", ".traj", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "trajectory"


def sniff_format(data: Any) -> tuple[str, str] | None:
    """The format a parsed trajectory file plainly is, with the evidence: `swe-agent`, `mini-swe-agent`, `openai`, or
    `klong` (already a klong trajectory). None when its shape does not say (a plain list of text messages is both a
    mini-swe-agent and an OpenAI file)."""
    if isinstance(data, dict):
        if "schema_version" in data and "messages" in data:
            return "klong", "it has klong's `schema_version` and `messages`"
        if str(data.get("trajectory_format", "")).startswith("mini-swe-agent"):
            return "mini-swe-agent", f"its `trajectory_format` is {data['trajectory_format']!r}"
        if "messages" not in data and ("history" in data or "trajectory" in data):
            return "swe-agent", "it has SWE-agent's `history`/`trajectory` keys"
        if "messages" in data and data.get("tools") is not None:
            return "openai", "it is a chat request body with `tools`"
        if "choices" in data and "messages" not in data:
            return "openai chat-completion response", "it has `choices` (one answer, not a conversation)"
        return None
    tool_roles = ("tool", "function", "developer")
    if isinstance(data, list) and any(isinstance(m, dict) and (m.get("tool_calls") or m.get("role") in tool_roles)
                                      for m in data):  # fmt: skip
        return "openai", "its messages have tool calls or tool/developer roles"
    return None


def import_trajectory_file(path: str | Path, source_format: str) -> Trajectory:
    """Read one file of `source_format` and convert it. Errors name the file and what is wrong, and the format the file
    looks like when it looks like another one."""
    if source_format not in IMPORTERS:
        raise ConfigError(f"unknown trajectory format {source_format!r}; choose one of: {', '.join(IMPORTERS)}")
    path = Path(path)
    text = read_text(path)
    data = parse_json(text, path)
    sniffed = sniff_format(data)
    if sniffed is not None and sniffed[0] != source_format and sniffed[0] in (*IMPORTERS, "klong"):
        raise ImportFormatError(path, f"does not have the {source_format} format: {_looks_like(*sniffed)}")
    try:
        traj = IMPORTERS[source_format](data, path)
    except ImportFormatError as e:
        if sniffed is None:
            raise
        raise ImportFormatError(path, f"{e.problem} ({_looks_like(*sniffed)})") from None
    traj.id = trajectory_id_from_path(path)
    traj.source = TrajectorySource(
        format=source_format, path=str(path), sha256=hashlib.sha256(text.encode("utf-8")).hexdigest()
    )
    return traj


def _looks_like(fmt: str, evidence: str) -> str:
    if fmt == "klong":
        return f"it is a klong trajectory already ({evidence}): no import needed, klong commands read it as it is"
    article = "an" if fmt[0] in "aeiou" else "a"
    if fmt in IMPORTERS:
        return f"it looks like {article} {fmt} trajectory ({evidence}): import it with --from {fmt}"
    return f"it looks like {article} {fmt} ({evidence}), which is not a trajectory klong imports"
