"""`local`: commands run as subprocesses in the workspace folder. No isolation beyond process-group limits: for
trusted models, tests and synthetic tasks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from klong.sandbox.base import SandboxConfig, sandbox_env
from klong.sandbox.process import CommandResult, run_process


class LocalSandbox:
    kind = "local"

    def __init__(self, workspace: Path, config: SandboxConfig):
        self.workspace = workspace
        self.root = str(workspace)
        self.config = config

    async def start(self) -> None:
        self.workspace.mkdir(parents=True, exist_ok=True)

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult:
        c = self.config
        return await run_process(
            argv, cwd=self.workspace, env=sandbox_env(c, self.root), timeout=timeout,
            stdin=stdin.encode() if stdin is not None else None, head_bytes=c.output_head_bytes,
            tail_bytes=c.output_tail_bytes, max_output_bytes=c.max_output_bytes, max_processes=c.max_processes,
        )  # fmt: skip

    async def close(self) -> None:
        return None
