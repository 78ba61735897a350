"""Import other agents' trajectories as klong trajectories.

Each importer takes the parsed JSON of one source file and returns a `Trajectory` that keeps every turn of the
source. Tool calls stay tool calls where the source recorded them; text-format actions stay the text the model wrote
(the parsed action is kept in the message's `meta`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from klong.exceptions import ConfigError
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


def import_trajectory_file(path: str | Path, source_format: str) -> Trajectory:
    """Read one file of `source_format` and convert it. Errors name the file and what is wrong."""
    if source_format not in IMPORTERS:
        raise ConfigError(f"unknown trajectory format {source_format!r}; choose one of: {', '.join(IMPORTERS)}")
    path = Path(path)
    text = read_text(path)
    data = parse_json(text, path)
    traj = IMPORTERS[source_format](data, path)
    traj.id = trajectory_id_from_path(path)
    traj.source = TrajectorySource(
        format=source_format, path=str(path), sha256=hashlib.sha256(text.encode("utf-8")).hexdigest()
    )
    return traj
