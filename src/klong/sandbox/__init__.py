"""Sandboxes that run the agent's commands: `local`, `bwrap` (no network, read-only system), `docker`."""

from __future__ import annotations

from pathlib import Path

from klong.exceptions import ConfigError
from klong.sandbox.base import Sandbox, SandboxConfig
from klong.sandbox.process import CommandResult

__all__ = ["KINDS", "CommandResult", "Sandbox", "SandboxConfig", "check_sandbox", "make_sandbox"]

KINDS = ("local", "bwrap", "docker")


def check_sandbox(kind: str) -> None:
    """A clear error for an unknown sandbox kind or one this machine cannot run, before anything is started."""
    import shutil

    if kind not in KINDS:
        raise ConfigError(f"unknown sandbox {kind!r}; choose local, bwrap or docker")
    if kind == "bwrap" and shutil.which("bwrap") is None:
        raise ConfigError("--sandbox bwrap: bubblewrap is not installed (Debian package `bubblewrap`)")
    if kind == "docker":
        try:
            import docker  # noqa: F401
        except ImportError:
            raise ConfigError("--sandbox docker needs the `docker` extra: pip install 'klong[docker]'") from None


def make_sandbox(kind: str, workspace: str | Path, config: SandboxConfig | None = None) -> Sandbox:
    """A sandbox for `workspace`; its processes are labelled by the workspace, so a resumed episode (same workspace)
    finds and kills what a killed klong left running."""
    config = config or SandboxConfig()
    workspace = Path(workspace).resolve()
    if kind == "local":
        from klong.sandbox.local import LocalSandbox

        return LocalSandbox(workspace, config)
    if kind == "bwrap":
        from klong.sandbox.bwrap import BwrapSandbox

        return BwrapSandbox(workspace, config)
    if kind == "docker":
        from klong.sandbox.docker import DockerSandbox

        return DockerSandbox(workspace, config)
    raise ConfigError(f"unknown sandbox {kind!r}; choose local, bwrap or docker")
