"""A submission folder as the judge sees it: its files, PaperBench's file whitelist, contents, and its reproduction.

`klong reproduce` leaves `reproduce.log` and `reproduce.json` (start time, duration, exit status) in a fresh copy of
the submission. The reproduction's start time comes from `reproduce.json`, else from PaperBench's
`reproduce.log.creation_time` (Unix seconds), else from the mtime of `reproduce.log`, as PaperBench falls back.

Which files a leaf may see follows PaperBench's SimpleJudge (`whitelisted`): by extension per task category (docs and
code for Code Development and Code Execution; docs and tables for Result Analysis, where a table counts only when the
reproduction created or modified it), skipping folders whose name contains `venv`, `.git`, `wandb`, ... Paths are kept
exactly as they are relative to the submission (dotfolders such as `.hydra/` included).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
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
"""Folders never read (nor hashed) at all."""
REPRODUCE_SCRIPT = "reproduce.sh"
REPRODUCE_LOG = "reproduce.log"
REPRODUCE_META = "reproduce.json"
CREATION_TIME = "reproduce.log.creation_time"
"""PaperBench's record of when its reproduction started (Unix seconds)."""
BOOKKEEPING = {REPRODUCE_LOG, REPRODUCE_META, CREATION_TIME}
"""The reproduction's own records: shown in their own prompt sections, never as submission files."""

# PaperBench's SimpleJudge whitelist (judge/simple.py, `_get_whitelisted_files`), as data.
BLOCKED_DIR_PARTS = ("venv", ".venv", ".env", "wandb", ".egg-info", ".git", ".github", "__pycache__", "node_modules")
"""A folder whose name *contains* one of these is skipped with everything below it (PaperBench matches substrings)."""
DOC_EXTENSIONS = frozenset({".md", ".txt", ".rst"})
CODE_EXTENSIONS = frozenset({".py", ".R", ".Rmd", ".m", ".jl", ".c", ".h", ".cpp", ".hpp", ".cc", ".cxx", ".hxx",
                             ".java", ".js", ".ts", ".scala", ".go", ".rs", ".sh", ".config", ".cfg", ".json", ".yaml",
                             ".yml", ".toml", ".ini"})  # fmt: skip
TABLE_EXTENSIONS = frozenset({".csv", ".tsv", ".psv", ".json", ".jsonl", ".html", ".xml", ".yaml", ".yml", ".toml",
                              ".arff", ".tex", ".svm", ".libsvm"})  # fmt: skip


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


def relative_path(name: str) -> str:
    """A path as a model or a listing writes it, relative to the submission: surrounding blanks, a leading `./` and
    slashes removed, nothing else (`.hydra/config.yaml` stays as it is)."""
    name = name.strip().strip("`").strip()
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


class Submission:
    def __init__(self, root: str | Path, *, max_file_bytes: int = 2_000_000):
        self.root = Path(root).resolve()
        self.max_file_bytes = max_file_bytes

    @cached_property
    def files(self) -> list[SubmissionFile]:
        """Every regular file (no symlinks), sorted by path, outside `SKIP_DIRS`."""
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            for name in sorted(filenames):
                full = Path(dirpath) / name
                if full.is_symlink() or not full.is_file():
                    continue
                st = full.stat()
                out.append(SubmissionFile(full.relative_to(self.root).as_posix(), st.st_size, st.st_mtime))
        return sorted(out, key=lambda f: f.path)

    @cached_property
    def reproduction(self) -> ReproductionInfo | None:
        """`reproduce.json` as `klong reproduce` wrote it (None for a submission it did not reproduce)."""
        meta = self.root / REPRODUCE_META
        return ReproductionInfo.model_validate(read_json(meta)) if meta.exists() else None

    @cached_property
    def reproduced_at(self) -> float | None:
        """When the reproduction started (see the module doc), None when the submission was not reproduced."""
        if self.reproduction is not None:
            return self.reproduction.started_at
        stamp = self.root / CREATION_TIME
        if stamp.is_file():
            try:
                return float(int(stamp.read_text().strip()))
            except ValueError:
                pass
        log = self.root / REPRODUCE_LOG
        return log.stat().st_mtime if log.is_file() else None

    @cached_property
    def digest(self) -> str:
        """Content hash of every file (paths and bytes), and of which files the reproduction touched: the judge
        cache's notion of "unchanged"."""
        h = hashlib.sha256()
        started = self.reproduced_at
        for f in self.files:
            touched = started is not None and f.mtime >= started
            h.update(f.path.encode() + (b"\1" if touched else b"\0"))
            with open(self.root / f.path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
        return h.hexdigest()

    def is_empty(self) -> bool:
        return not self.files

    def changed_after_reproduction(self) -> list[SubmissionFile]:
        started = self.reproduced_at
        if started is None:
            return []
        return [f for f in self.files if f.mtime >= started and f.path not in BOOKKEEPING]

    def whitelisted(
        self, category: str, *, whitelist: bool = True, max_depth: int | None = None
    ) -> list[SubmissionFile]:
        """The files a leaf of `category` may see (PaperBench's rules, see the module doc). Folders deeper than
        `max_depth` are not entered (their files at depth `max_depth` still count). Without `whitelist`, any
        extension counts."""
        docs = DOC_EXTENSIONS
        allowed = docs | (TABLE_EXTENSIONS if category == "Result Analysis" else CODE_EXTENSIONS)
        started = self.reproduced_at
        out = []
        for f in self.files:
            parts = f.path.split("/")
            folders = parts[:-1]
            if f.path in BOOKKEEPING or any(b in part for part in folders for b in BLOCKED_DIR_PARTS):
                continue
            if max_depth is not None and len(folders) > max_depth:
                continue
            suffix = Path(parts[-1]).suffix
            if whitelist and suffix not in allowed:
                continue
            if math.isnan(f.mtime):
                continue
            stale = started is None or f.mtime < started
            if category == "Result Analysis" and suffix not in docs and stale:
                continue
            out.append(f)
        return out

    def reproduction_touched(self, files: list[SubmissionFile]) -> bool:
        """Whether the reproduction created or modified any of `files` (PaperBench: without that, there are no
        reproduced results and every Result Analysis leaf scores 0)."""
        started = self.reproduced_at
        return started is not None and any(f.mtime >= started for f in files)

    def tree(self, files: list[SubmissionFile] | None = None, limit: int = 2000) -> str:
        """A flat listing, `path (N bytes)` per line."""
        files = self.files if files is None else files
        lines = [f"{f.path} ({f.size} bytes)" for f in files[:limit]]
        if len(files) > limit:
            lines.append(f"[... {len(files) - limit} more files ...]")
        return "\n".join(lines) if lines else "(the submission folder is empty)"

    def read_text(self, path: str, max_chars: int) -> str | None:
        """The first `max_chars` characters of a file (UTF-8, else Latin-1, as PaperBench reads), None when it is
        not a regular file inside the submission or holds NUL bytes (binary)."""
        full = self.root / path
        try:
            resolved = full.resolve()
        except OSError:
            return None
        if self.root not in resolved.parents or full.is_symlink() or not resolved.is_file():
            return None
        with open(resolved, "rb") as fh:
            data = fh.read(max(1, max_chars) * 4)
        if b"\0" in data[:8192]:
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            # a multi-byte character cut by the byte limit is not an encoding problem
            text = data[: e.start].decode("utf-8") if e.start >= len(data) - 3 else data.decode("latin-1")
        return text[:max_chars]


def file_tree(paths: list[str]) -> str:
    """The listing PaperBench's judge shows its ranking call: a tree drawn with `├──`, `└──` and `│`."""
    root: dict[str, dict] = {}
    for path in paths:
        node = root
        for part in path.split("/"):
            node = node.setdefault(part, {})
    lines: list[str] = []

    def draw(node: dict[str, dict], prefix: str) -> None:
        names = list(node)
        for i, name in enumerate(names):
            last = i == len(names) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{name}")
            if node[name]:
                draw(node[name], prefix + ("    " if last else "│   "))

    draw(root, "")
    return "\n".join(lines)


_TREE_LINE = re.compile(r"^((?:│   |    )*)(?:├── |└── )(.*)$")


def tree_paths(tree: str) -> list[str]:
    """The file paths of a `file_tree` drawing (its leaves), in drawing order: what a fake judge reads back."""
    stack: list[str] = []
    paths: list[str] = []
    for line in tree.splitlines():
        m = _TREE_LINE.match(line)
        if m:
            depth = len(m.group(1)) // 4
            stack[depth:] = [m.group(2)]
            paths.append("/".join(stack))
    folders = {p.rsplit("/", 1)[0] for p in paths if "/" in p}
    return [p for p in paths if p not in folders]


_MASKS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ][0-9:.]+Z?"), "<TIMESTAMP>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "<IP>"),
    (re.compile(r"\b[0-9a-fA-F]{8,}\b"), "<HEX>"),
    (re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"), "<NUM>"),
]
_PROGRESS = re.compile(r"\d+%?\|[█=#>-]+|[KMG]?i?B/s|\d+%\s*\||[▏▎▍▌▋▊▉█]{2,}")


def _template(line: str) -> str:
    if _PROGRESS.search(line):
        return "<PROGRESS_BAR>"
    for pattern, mask in _MASKS:
        line = pattern.sub(mask, line)
    return line


def reduce_log(text: str) -> str:
    """Collapse each run of consecutive similar log lines into its first line and `  (repeated N times)`, as
    PaperBench does before showing `reproduce.log`. Lines are similar when drain3 (when installed) puts them in one
    cluster, as PaperBench's does; without drain3, when they are equal once times, numbers, hex ids, IPs and progress
    bars are masked."""
    try:
        from drain3 import TemplateMiner
    except ImportError:
        miner = None
    else:
        miner = TemplateMiner()
    out: list[str] = []
    previous, repeats = None, 1
    for line in text.splitlines():
        key = _template(line)
        if miner is not None:
            key = miner.add_log_message(key)["cluster_id"]
        if previous is not None and key == previous:
            repeats += 1
            continue
        if repeats > 1:
            out.append(f"  (repeated {repeats} times)")
        out.append(line)
        previous, repeats = key, 1
    if repeats > 1:
        out.append(f"  (repeated {repeats} times)")
    return "\n".join(out)
