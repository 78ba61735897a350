"""`local`: commands run as subprocesses in the workspace folder, as the user running klong. No isolation of files or
network: for trusted models, tests and synthetic tasks. What it does bound: time, output, processes, file size
(RLIMIT_FSIZE), the workspace's disk use, and lifetime: no process outlives its command (what left the process group,
e.g. `setsid` or `nohup ... & disown`, is found by its environment marker and killed when the command ends), and
what an earlier, killed klong left running in this workspace is killed before a resumed episode runs (`reclaim`)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections.abc import Sequence
from pathlib import Path

from klong.sandbox.base import SandboxConfig, sandbox_env
from klong.sandbox.process import CommandResult, run_process
from klong.sandbox.watch import kill_marked


class LocalSandbox:
    kind = "local"
    owner = None

    def __init__(self, workspace: Path, config: SandboxConfig, label: str | None = None):
        self.workspace = workspace
        self.root = str(workspace)
        self.config = config
        self.label = label or hashlib.sha1(str(workspace).encode()).hexdigest()[:12]
        self._instance = uuid.uuid4().hex[:8]
        self._count = itertools.count()

    async def start(self) -> None:
        self.workspace.mkdir(parents=True, exist_ok=True)

    async def reclaim(self) -> int:
        """Kill what an earlier, killed klong left running in this workspace (the episode's runtime calls it before
        a resumed episode runs anything; other users of the workspace, e.g. the judge's checks, do not)."""
        return await asyncio.to_thread(kill_marked, f"{self.label}:")

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult:
        c = self.config
        return await run_process(
            list(argv), cwd=self.workspace, env=sandbox_env(c, self.root), timeout=timeout, max_file_bytes=c.workspace_bytes,
            stdin=stdin.encode() if stdin is not None else None, head_bytes=c.output_head_bytes,
            tail_bytes=c.output_tail_bytes, max_output_bytes=c.max_output_bytes, max_processes=c.max_processes,
            marker=f"{self.label}:{self._instance}:{next(self._count)}", workspace=self.workspace, max_disk_bytes=c.workspace_bytes,
        )  # fmt: skip

    async def close(self) -> None:
        return None
