"""A replication task: PaperBench's paper folder, unchanged.

A task dir holds `paper.md`, `addendum.md`, `blacklist.txt`, `config.yaml` (`id`, `title`, anything else) and
`rubric.json`, optionally `paper.pdf` and `assets/`. The agent sees the paper, the addendum and the blacklist, never the
rubric. Everything klong adds about a task (provenance, drafting stages) lives elsewhere, so PaperBench's own tools read
klong's task dirs and klong reads PaperBench's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from klong.exceptions import InputFileError
from klong.io import atomic_write_json, atomic_write_text, read_json, read_text, read_yaml

PAPER_FILE = "paper.md"
ADDENDUM_FILE = "addendum.md"
BLACKLIST_FILE = "blacklist.txt"
CONFIG_FILE = "config.yaml"
RUBRIC_FILE = "rubric.json"
AGENT_VISIBLE_FILES = (PAPER_FILE, ADDENDUM_FILE, BLACKLIST_FILE)
"""The files an agent's workspace receives under `paper/` (never the rubric)."""


class Task(BaseModel):
    """A task dir loaded into memory. `rubric` is the raw PaperBench rubric tree (a JSON object)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str | None = None
    paper: str
    """The paper as markdown (`paper.md`)."""
    addendum: str = ""
    """Clarifications, scope and approved scale-downs (`addendum.md`); empty when the file is absent."""
    blacklist: list[str] = Field(default_factory=list)
    """Resources the agent must not fetch (URLs), from `blacklist.txt`; PaperBench writes `none` for no entries."""
    config: dict[str, Any] = Field(default_factory=dict)
    """The whole `config.yaml` (`id` and `title` included)."""
    rubric: dict[str, Any]
    path: Path | None = None
    """Where the task was read from, when it was."""


def parse_blacklist(text: str) -> list[str]:
    """Entries of a PaperBench `blacklist.txt`: one per line; blank lines, `#` comments and `none` ignored."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.lower() == "none":
            continue
        entries.append(line)
    return entries


def read_task(task_dir: str | Path, *, paper: str | None = None) -> Task:
    """Load a task dir. Missing required files or malformed contents raise `InputFileError` naming the file. `paper`
    stands in for `paper.md` (a paper given only as a PDF, converted by the caller)."""
    task_dir = Path(task_dir)
    if not task_dir.is_dir():
        raise InputFileError(task_dir, "task dir not found (expected a folder with paper.md, config.yaml, rubric.json)")
    config = read_yaml(task_dir / CONFIG_FILE)
    if not isinstance(config, dict):
        raise InputFileError(task_dir / CONFIG_FILE, "expected a YAML mapping with at least `id`")
    task_id = config.get("id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise InputFileError(task_dir / CONFIG_FILE, "missing the task `id` (a non-empty string)")
    rubric = read_json(task_dir / RUBRIC_FILE)
    if not isinstance(rubric, dict):
        raise InputFileError(
            task_dir / RUBRIC_FILE, f"expected a JSON object (the rubric root), found {type(rubric).__name__}"
        )
    addendum_path = task_dir / ADDENDUM_FILE
    blacklist_path = task_dir / BLACKLIST_FILE
    return Task(
        id=task_id,
        title=config.get("title"),
        paper=read_text(task_dir / PAPER_FILE) if paper is None else paper,
        addendum=read_text(addendum_path) if addendum_path.exists() else "",
        blacklist=parse_blacklist(read_text(blacklist_path)) if blacklist_path.exists() else [],
        config=config,
        rubric=rubric,
        path=task_dir,
    )


def write_task(task_dir: str | Path, task: Task) -> Path:
    """Write a task in PaperBench's layout (each file atomically). Returns the task dir."""
    task_dir = Path(task_dir)
    task_dir.mkdir(parents=True, exist_ok=True)
    config = {**task.config, "id": task.id}
    if task.title is not None:
        config["title"] = task.title
    atomic_write_text(task_dir / PAPER_FILE, task.paper)
    atomic_write_text(task_dir / ADDENDUM_FILE, task.addendum)
    atomic_write_text(task_dir / BLACKLIST_FILE, "\n".join(task.blacklist) + "\n" if task.blacklist else "none\n")
    atomic_write_text(task_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    atomic_write_json(task_dir / RUBRIC_FILE, task.rubric, indent=4)
    return task_dir


def find_tasks(paths: list[Path] | list[str]) -> list[Task]:
    """Task dirs named directly, or every task dir (a folder with `config.yaml` and `rubric.json`) one level below."""
    tasks = []
    for p in map(Path, paths):
        if (p / CONFIG_FILE).exists():
            tasks.append(read_task(p))
        elif p.is_dir() and any((c / CONFIG_FILE).exists() for c in p.iterdir() if c.is_dir()):
            tasks += [read_task(c) for c in sorted(p.iterdir()) if (c / CONFIG_FILE).exists()]
        else:
            raise InputFileError(p, "not a task dir (no config.yaml) nor a folder of task dirs")
    ids = [t.id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputFileError(paths[0], f"task ids appear more than once: {', '.join(dupes)}")
    return tasks
