"""`bwrap`: bubblewrap. No network, the host's system read-only, the workspace the only writable place (at
`/workspace`), fresh `/tmp`, PID namespace (every process dies with the command), an unprivileged user inside, and the
paths in `hide_paths` (task and run dirs: the rubric must stay out of reach) replaced by empty folders."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from klong.exceptions import SandboxError
from klong.sandbox.base import SandboxConfig, sandbox_env
from klong.sandbox.process import CommandResult, run_process

MOUNT = "/workspace"
_SKIP = {"proc", "dev", "sys", "tmp", "run", "workspace"}
_SECRETS = (".ssh", ".aws", ".netrc", ".config/gcloud", ".docker", ".git-credentials", ".cache/huggingface/token")


class BwrapSandbox:
    kind = "bwrap"

    def __init__(self, workspace: Path, config: SandboxConfig):
        self.workspace = workspace
        self.root = MOUNT
        self.config = config
        self._bwrap = shutil.which("bwrap")

    async def start(self) -> None:
        if self._bwrap is None:
            raise SandboxError("bubblewrap (`bwrap`) is not installed; install the Debian package `bubblewrap`")
        self.workspace.mkdir(parents=True, exist_ok=True)

    def _argv(self) -> list[str]:
        args = [self._bwrap or "bwrap", "--tmpfs", "/"]
        for entry in sorted(os.scandir("/"), key=lambda e: e.name):
            if entry.name in _SKIP:
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), entry.path]
            elif entry.is_dir():
                args += ["--ro-bind", entry.path, entry.path]
        home = Path.home()
        hidden = [*self.config.hide_paths, *(str(home / s) for s in _SECRETS)]
        for path in hidden:
            if os.path.isdir(path):
                args += ["--tmpfs", path]
            elif os.path.exists(path):
                args += ["--ro-bind", "/dev/null", path]
        args += ["--dir", MOUNT, "--bind", str(self.workspace), MOUNT, "--dev", "/dev", "--proc", "/proc",
                 "--tmpfs", "/tmp", "--tmpfs", "/run", "--unshare-all", "--uid", "1000", "--gid", "1000",
                 "--die-with-parent", "--new-session", "--chdir", MOUNT, "--clearenv"]  # fmt: skip
        if self.config.network:
            args.append("--share-net")
        for key, value in sandbox_env(self.config, MOUNT).items():
            args += ["--setenv", key, value]
        return args

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult:
        c = self.config
        return await run_process(
            [*self._argv(), "--", *argv], cwd=None, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            timeout=timeout, stdin=stdin.encode() if stdin is not None else None, head_bytes=c.output_head_bytes,
            tail_bytes=c.output_tail_bytes, max_output_bytes=c.max_output_bytes, max_processes=c.max_processes,
        )  # fmt: skip

    async def close(self) -> None:
        return None
