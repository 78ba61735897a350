"""A submission folder as the judge sees it: its files, their contents under a budget, and its reproduction.

`klong reproduce` leaves `reproduce.log` and `reproduce.json` (start time, duration, exit status) in a fresh copy of
the submission; the judge shows those to execution and result leaves, and result leaves see only the files changed
after reproduction started (what `reproduce.sh` produced), as in PaperBench.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel

from klong.io import read_json

SKIP_DIRS = {
    ".git",
    "__pycache__",
    ".venv",
    "venv",
    "node_modules",
    ".mypy_cache",
    ".pytest_cache",
    ".ipynb_checkpoints",
}
REPRODUCE_SCRIPT = "reproduce.sh"
REPRODUCE_LOG = "reproduce.log"
REPRODUCE_META = "reproduce.json"


class ReproductionInfo(BaseModel):
    started_at: float
    """Unix time when `reproduce.sh` started."""
    duration: float
    exit_code: int | None
    timed_out: bool = False
    killed_reason: str | None = None
    sandbox: str = "local"


@dataclass(frozen=True)
class SubmissionFile:
    path: str
    size: int
    mtime: float


class Submission:
    def __init__(self, root: str | Path, *, max_file_bytes: int = 2_000_000):
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes

    @cached_property
    def files(self) -> list[SubmissionFile]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                if full.is_symlink() or not full.is_file():
                    continue
                st = full.stat()
                out.append(SubmissionFile(str(full.relative_to(self.root)), st.st_size, st.st_mtime))
        return out

    @cached_property
    def reproduction(self) -> ReproductionInfo | None:
        meta = self.root / REPRODUCE_META
        return ReproductionInfo.model_validate(read_json(meta)) if meta.exists() else None

    @cached_property
    def digest(self) -> str:
        """Content hash of every file (paths and bytes): the judge cache's notion of "unchanged"."""
        h = hashlib.sha256()
        for f in self.files:
            h.update(f.path.encode() + b"\0")
            with open(self.root / f.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        return h.hexdigest()

    def is_empty(self) -> bool:
        return not self.files

    def changed_after_reproduction(self) -> list[SubmissionFile]:
        info = self.reproduction
        if info is None:
            return []
        skip = {REPRODUCE_LOG, REPRODUCE_META}
        return [f for f in self.files if f.mtime >= info.started_at and f.path not in skip]

    def tree(self, files: list[SubmissionFile] | None = None, limit: int = 2000) -> str:
        files = self.files if files is None else files
        lines = [f"{f.path} ({f.size} bytes)" for f in files[:limit]]
        if len(files) > limit:
            lines.append(f"[... {len(files) - limit} more files ...]")
        return "\n".join(lines) if lines else "(the submission folder is empty)"

    def read(self, path: str, limit_chars: int) -> str | None:
        """Text of a file, head and tail kept when longer than `limit_chars`; None for binary or unreadable files."""
        full = (self.root / path).resolve()
        if self.root not in full.parents or not full.is_file():
            return None
        with open(full, "rb") as fh:
            data = fh.read(self.max_file_bytes + 1)
        if b"\0" in data[:8192]:
            return None
        text = data.decode("utf-8", errors="replace")
        if len(text) > limit_chars:
            head = limit_chars * 2 // 3
            tail = limit_chars - head
            text = text[:head] + f"\n[... {len(text) - limit_chars} characters cut ...]\n" + text[-tail:]
        return text
