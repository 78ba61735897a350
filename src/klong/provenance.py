"""Collect run metadata: klong and library versions, git revision, host."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path

from klong import __version__
from klong.schema import RunMeta

TRACKED_PACKAGES = ("torch", "transformers", "tokenizers", "accelerate", "peft", "openai", "pydantic", "vllm", "trl")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Installed versions of the given distributions; those not installed are left out."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def collect_run_meta(command: list[str] | None = None, cwd: str | Path | None = None) -> RunMeta:
    """Describe the current process: versions, host, and the git revision of `cwd` (or of klong's source tree)."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    revision = _git(["rev-parse", "HEAD"], where)
    dirty = None
    if revision is not None:
        status = _git(["status", "--porcelain", "--untracked-files=no"], where)
        dirty = bool(status) if status is not None else None
    return RunMeta(
        klong_version=__version__,
        command=list(sys.argv if command is None else command),
        python=platform.python_version(),
        platform=platform.platform(),
        host=socket.gethostname(),
        packages=package_versions(),
        git_revision=revision,
        git_dirty=dirty,
    )
