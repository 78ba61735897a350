"""The Sandbox protocol and its configuration."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator

from klong.sandbox.process import CommandResult

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxConfig(BaseModel):
    """Limits and environment of a sandbox."""

    model_config = ConfigDict(extra="forbid")

    env: list[str] = Field(default_factory=list)
    """Names of host environment variables passed into the sandbox (nothing else is)."""
    max_processes: int = 256
    """A command that has more live processes than this is killed with its whole group."""
    max_output_bytes: int = 1 << 30
    """A command that writes more than this is killed (its output is cut to head + tail anyway)."""
    output_head_bytes: int = 8000
    output_tail_bytes: int = 8000
    hide_paths: list[str] = Field(default_factory=list)
    """Host paths kept out of reach inside `bwrap` even where they lie in a mounted folder (task dirs, run dirs);
    `bwrap` mounts only an allowlist anyway. Ignored by `local`."""
    ro_paths: list[str] = Field(default_factory=list)
    """`bwrap`: host folders mounted read-only besides the system folders (e.g. a conda environment)."""
    mount_python: bool = True
    """`bwrap`: mount the Python installation klong runs with (read-only), so `python3` in the sandbox is the host's."""
    uid: int = 65534
    """`bwrap` under root: the unprivileged host uid the agent's commands run as (never host root); `docker` under
    root uses 1000 inside the container."""
    gid: int = 65534
    tmp_bytes: int = 1 << 30
    """Size of the sandbox's own `/tmp` (`bwrap`: a bounded tmpfs; `docker`: a tmpfs mount)."""
    workspace_bytes: int = 50 << 30
    """Disk the workspace may use: no file may grow larger (RLIMIT_FSIZE), and a command whose workspace exceeds it
    is killed (checked every `disk_check_seconds`)."""
    disk_check_seconds: float = 1.0
    docker_image: str = "klong-sandbox:latest"
    """Image for `docker`; built from `docker/Dockerfile` of the repository when missing."""
    docker_base: str | None = None
    """Base image for building `docker_image` (the Dockerfile's `BASE` argument); where no registry is reachable, an
    image already on the machine, e.g. one made with `debootstrap` + `docker import` (default: `$KLONG_DOCKER_BASE`,
    else the Dockerfile's own)."""
    docker_build: bool = True
    """Build `docker_image` from `docker/Dockerfile` when it is missing; False: use the image as it is (a benchmark's
    own image, e.g. a SWE-bench instance's), which must exist."""
    docker_mounts: dict[str, str] = Field(default_factory=dict)
    """`docker`: folders of the workspace (relative paths) also mounted read-write at these absolute container paths
    (a SWE-bench repository `repo` at `/testbed`)."""
    docker_env: dict[str, str] = Field(default_factory=dict)
    """`docker`: variables set in the container over the defaults (e.g. a PATH leading to the image's environment)."""
    docker_memory: str = "8g"
    network: bool = False
    """Allow network access (`bwrap` and `docker`; `local` has whatever the host has)."""

    @field_validator("max_processes", "max_output_bytes", "tmp_bytes", "workspace_bytes")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @field_validator("docker_mounts")
    @classmethod
    def _mounts(cls, v: dict[str, str]) -> dict[str, str]:
        for rel, target in v.items():
            if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel.strip("./"):
                raise ValueError(f"{rel!r}: expected a folder inside the workspace (a relative path)")
            if not target.startswith("/") or target.rstrip("/") in ("", "/workspace"):
                raise ValueError(f"{target!r}: expected an absolute container path other than / and /workspace")
        return v

    @field_validator("disk_check_seconds")
    @classmethod
    def _interval(cls, v: float) -> float:
        if not v > 0:
            raise ValueError("must be > 0")
        return v


@runtime_checkable
class Sandbox(Protocol):
    """Runs commands against a workspace folder on the host.

    Contract: `workspace` is the host path (file tools operate on it directly); `root` is how commands inside the
    sandbox see it. `run` never raises for a failing command (that is a `CommandResult`); it raises `SandboxError`
    only when the sandbox itself is broken.
    """

    kind: str
    workspace: Path
    root: str
    owner: tuple[int, int] | None
    """The (uid, gid) the agent's files must belong to for it to change them (when klong runs as root), or None."""

    async def start(self) -> None: ...

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult: ...

    async def close(self) -> None: ...


def sandbox_env(config: SandboxConfig, home: str) -> dict[str, str]:
    """The environment commands get: a fixed base plus only the explicitly named host variables."""
    env = {"PATH": BASE_PATH, "HOME": home, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONUNBUFFERED": "1",
           "TERM": "dumb"}  # fmt: skip
    # The host's PATH first, so the sandbox has the same interpreters and tools as the host (pyenv, venvs).
    parts = [p for p in [*os.environ.get("PATH", "").split(":"), *BASE_PATH.split(":")] if p]
    env["PATH"] = ":".join(dict.fromkeys(parts))
    for name in config.env:
        if name in os.environ:
            env[name] = os.environ[name]
    return env
