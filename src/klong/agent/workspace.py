"""The agent's workspace: `paper/` (paper, addendum, blacklist; never the rubric) and `submission/` (what is graded).

File tools resolve every path through `Workspace.resolve`, which refuses anything outside the workspace: `..` escapes,
absolute paths elsewhere, and symlinks that lead out; `Workspace.check_readable` also refuses a file with several hard
links (one of them may be outside). Where the sandbox runs the agent as another user (klong as root), everything klong
writes here is handed to that user (`owner`), so that the agent can change what the file tools wrote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from klong.io import atomic_write_text
from klong.task import ADDENDUM_FILE, BLACKLIST_FILE, PAPER_FILE, RUBRIC_FILE, Task


class PathRefused(Exception):
    """A file tool was given a path outside the workspace (shown to the model as a tool error)."""


class Workspace:
    def __init__(self, host_root: str | Path, agent_root: str, owner: tuple[int, int] | None = None):
        self.host_root = Path(host_root).resolve()
        self.agent_root = agent_root.rstrip("/") or "/"
        self.owner = owner

    def _own(self, path: Path) -> None:
        if self.owner is not None:
            os.lchown(path, *self.owner)

    def mkdirs(self, folder: Path) -> None:
        """Create `folder` and its missing parents inside the workspace, owned by the agent's user."""
        missing = []
        while folder != self.host_root and not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            self._own(path)

    def write_text(self, path: Path, text: str, *, fsync: bool = False) -> None:
        """Atomically (re)write a file of the workspace, with its folders, owned by the agent's user."""
        self.mkdirs(path.parent)
        atomic_write_text(path, text, fsync=fsync)
        self._own(path)

    @staticmethod
    def check_readable(path: Path, shown: str) -> None:
        """Refuse what could expose a file outside the workspace: a file with several hard links."""
        if path.is_file() and path.stat().st_nlink > 1:
            raise PathRefused(f"{shown}: has {path.stat().st_nlink} hard links (one may be outside the workspace)")

    @property
    def paper_dir(self) -> Path:
        return self.host_root / "paper"

    @property
    def submission_dir(self) -> Path:
        return self.host_root / "submission"

    def prepare(self, task: Task) -> None:
        """Write the agent-visible task files (idempotent; never the rubric)."""
        self.host_root.mkdir(parents=True, exist_ok=True)
        self._own(self.host_root)
        self.mkdirs(self.paper_dir)
        self.mkdirs(self.submission_dir)
        self.write_text(self.paper_dir / PAPER_FILE, task.paper)  # made again from the task on resume: no fsync
        self.write_text(self.paper_dir / ADDENDUM_FILE, task.addendum)
        blacklist = "\n".join(task.blacklist) + "\n" if task.blacklist else "none\n"
        self.write_text(self.paper_dir / BLACKLIST_FILE, blacklist)
        self.copy_task_files(task)

    def copy_task_files(self, task: Task) -> None:
        """Files a task hands the agent (its config's `klong.workspace`: {workspace path: path in the task dir}), e.g.
        the deterministic experiment scripts of synthetic tasks. Never the rubric."""
        files = (task.config.get("klong") or {}).get("workspace") or {}
        for dst, src in files.items():
            if task.path is None or Path(src).name == RUBRIC_FILE:
                continue
            source = (task.path / src).resolve()
            target = self.resolve(dst)
            if source.is_file() and not target.exists():
                self.mkdirs(target.parent)
                shutil.copy2(source, target)
                self._own(target)

    def resolve(self, path: str) -> Path:
        """Host path for a path the agent gave (relative to the workspace, or absolute under it)."""
        if not isinstance(path, str) or not path.strip():
            raise PathRefused("a non-empty path is required")
        path = path.strip()
        for prefix in (self.agent_root, str(self.host_root)):
            if path == prefix:
                path = "."
                break
            if path.startswith(prefix.rstrip("/") + "/"):
                path = path[len(prefix.rstrip("/")) + 1 :]
                break
        if os.path.isabs(path):
            raise PathRefused(f"{path}: outside the workspace ({self.agent_root})")
        target = (self.host_root / path).resolve()
        if target != self.host_root and self.host_root not in target.parents:
            raise PathRefused(f"{path}: resolves outside the workspace")
        return target

    def display(self, host_path: Path) -> str:
        """How tool results name a path: relative to the workspace (the commands' working directory), so that the
        same action reads the same in every sandbox and run dir."""
        rel = host_path.resolve().relative_to(self.host_root)
        return str(rel)
