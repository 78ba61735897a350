"""A bounded, read-only summary of the official code, for the drafting steps allowed to see it.

The summary lists the files, the head of the README, the entry points (scripts with a `__main__` block or command-line
arguments, shell scripts) with their argument lines, and the configuration files (YAML, JSON, TOML, INI) with their
contents, all under a character budget. Nothing is executed or written; symlinks and files outside the folder, binary
files and caches are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

SKIP_DIRS = {".git", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache", ".pytest_cache", "wandb",
             ".ipynb_checkpoints", "checkpoints", "outputs", "logs"}  # fmt: skip
TEXT_SUFFIXES = {".py", ".sh", ".bash", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".md", ".txt", ".rst",
                 ".ipynb", ".jl", ".r", ".m", ".c", ".cc", ".cpp", ".h", ".cu", ".js", ".ts", ".rs", ".go", ".java"}  # fmt: skip
CONFIG_SUFFIXES = {".yaml", ".yml", ".json", ".toml", ".cfg", ".ini"}
_ARG_LINE = re.compile(r"add_argument\(|flags\.DEFINE_|@click\.option|^\s*[A-Z_]{3,}\s*=|argparse")


def code_files(code_dir: str | Path, max_files: int = 5000) -> list[Path]:
    """Text files of the repository (relative paths, sorted), skipping caches, VCS folders and symlinks."""
    root = Path(code_dir)
    out: list[Path] = []
    if not root.is_dir():
        return out
    stack = [root]
    while stack and len(out) < max_files:
        folder = stack.pop()
        for p in sorted(folder.iterdir()):
            if p.is_symlink():
                continue
            if p.is_dir():
                if p.name not in SKIP_DIRS:
                    stack.append(p)
            elif p.suffix.lower() in TEXT_SUFFIXES or p.name in ("Makefile", "Dockerfile", "LICENSE"):
                out.append(p.relative_to(root))
    return sorted(out)[:max_files]


def _read(path: Path, limit: int) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return ""
    if b"\0" in data:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text[:limit] + ("\n[...]" if len(text) > limit else "")


def summarize_code(code_dir: str | Path | None, max_chars: int = 12_000, file_chars: int = 1_500) -> str:
    """The summary text (empty when there is no code folder)."""
    if code_dir is None or not Path(code_dir).is_dir():
        return ""
    root = Path(code_dir)
    files = code_files(root)
    parts = [f"Files ({len(files)}):"]
    for rel in files[:150]:
        parts.append(f"- {rel} ({(root / rel).stat().st_size} bytes)")
    if len(files) > 150:
        parts.append(f"- ... and {len(files) - 150} more")
    readme = next((f for f in files if f.parent == Path(".") and f.stem.lower() == "readme"), None)
    if readme is not None:
        parts += ["", f"README ({readme}), head:", _read(root / readme, file_chars)]
    entries = []
    for rel in files:
        if rel.suffix in (".sh", ".bash"):
            entries.append(f"## {rel}\n{_read(root / rel, file_chars // 2)}")
        elif rel.suffix == ".py":
            text = _read(root / rel, 200_000)
            if "__main__" in text or "argparse" in text:
                lines = [ln.strip() for ln in text.splitlines() if _ARG_LINE.search(ln)]
                entries.append(f"## {rel} (entry point)\n" + "\n".join(lines[:40]))
    if entries:
        parts += ["", "Entry points:", *entries]
    configs = [f"## {rel}\n{_read(root / rel, file_chars)}" for rel in files if rel.suffix.lower() in CONFIG_SUFFIXES]
    if configs:
        parts += ["", "Configs:", *configs]
    text = "\n".join(parts)
    return text if len(text) <= max_chars else text[:max_chars] + "\n[... summary cut at the budget ...]"
