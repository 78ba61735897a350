"""`docker`: one container per episode from a locally built image (no registry needed at run time), the workspace
bind-mounted at `/workspace`, no network by default, memory and process-count limits set by Docker itself."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

from klong.exceptions import SandboxError
from klong.sandbox.base import SandboxConfig, sandbox_env
from klong.sandbox.process import CommandResult, _Capture

MOUNT = "/workspace"
DOCKERFILE_DIR = Path(__file__).resolve().parents[3] / "docker"


def ensure_image(client, tag: str, context: Path = DOCKERFILE_DIR) -> None:
    """Build `tag` from `docker/Dockerfile` unless it exists locally."""
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        if not (context / "Dockerfile").exists():
            raise SandboxError(f"image {tag!r} not found and no Dockerfile at {context}") from None
        client.images.build(path=str(context), tag=tag, rm=True)


class DockerSandbox:
    kind = "docker"

    def __init__(self, workspace: Path, config: SandboxConfig):
        self.workspace = workspace
        self.root = MOUNT
        self.config = config
        self._container = None

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        try:
            import docker
        except ImportError as e:
            raise SandboxError("the docker sandbox needs the `docker` extra: pip install 'klong[docker]'") from e
        try:
            client = docker.from_env()
            ensure_image(client, self.config.docker_image)
            self.workspace.mkdir(parents=True, exist_ok=True)
            self._container = client.containers.run(
                self.config.docker_image, ["sleep", "infinity"], detach=True, remove=True,
                network_disabled=not self.config.network, mem_limit=self.config.docker_memory,
                pids_limit=self.config.max_processes, working_dir=MOUNT,
                volumes={str(self.workspace): {"bind": MOUNT, "mode": "rw"}},
            )  # fmt: skip
        except docker.errors.DockerException as e:
            raise SandboxError(f"docker: {e}") from e

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult:
        return await asyncio.to_thread(self._run, list(argv), timeout, stdin)

    def _run(self, argv: list[str], timeout: float, stdin: str | None) -> CommandResult:
        if self._container is None:
            raise SandboxError("docker sandbox not started")
        c = self.config
        command = " ".join(shlex.quote(a) for a in argv)
        if stdin is not None:
            command = f"printf %s {shlex.quote(stdin)} | {command}"
        wrapped = ["timeout", "-s", "KILL", str(max(1, int(timeout))), "bash", "-c", command]
        start = time.monotonic()
        capture = _Capture(c.output_head_bytes, c.output_tail_bytes)
        env = sandbox_env(c, MOUNT)
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        exec_id = self._container.client.api.exec_create(self._container.id, wrapped, environment=env, workdir=MOUNT)
        for chunk in self._container.client.api.exec_start(exec_id, stream=True):
            capture.add(chunk)
        code = self._container.client.api.exec_inspect(exec_id).get("ExitCode")
        timed_out = code in (124, 137) and time.monotonic() - start >= timeout - 0.5
        return CommandResult(exit_code=None if timed_out else code, output=capture.text(), output_bytes=capture.total,
                             duration=time.monotonic() - start, timed_out=timed_out,
                             killed_reason="timeout" if timed_out else None)  # fmt: skip

    async def close(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            await asyncio.to_thread(container.kill)
