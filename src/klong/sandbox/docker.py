"""`docker`: one container per episode from a locally built image (no registry needed at run time), the workspace
bind-mounted at `/workspace` (the only host path inside; `docker_mounts` folders of it are mounted elsewhere too), a
read-only root file system, a bounded `/tmp`, no file past `workspace_bytes`, no network by default, no capabilities,
an unprivileged user, memory and process-count limits set by Docker itself."""

from __future__ import annotations

import asyncio
import os
import shlex
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from klong.exceptions import SandboxError
from klong.sandbox.base import SandboxConfig, sandbox_env
from klong.sandbox.process import CommandResult, _Capture

MOUNT = "/workspace"
AGENT_UID = 1000
DOCKERFILE_DIR = Path(__file__).resolve().parents[3] / "docker"


def ensure_image(client, tag: str, context: Path = DOCKERFILE_DIR, base: str | None = None) -> None:
    """Build `tag` from `docker/Dockerfile` (FROM `base` when given) unless it exists locally."""
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        if not (context / "Dockerfile").exists():
            raise SandboxError(f"image {tag!r} not found and no Dockerfile at {context}") from None
        client.images.build(path=str(context), tag=tag, rm=True, buildargs={"BASE": base} if base else None)


class DockerSandbox:
    kind = "docker"

    def __init__(self, workspace: Path, config: SandboxConfig, label: str | None = None):
        self.workspace = workspace
        self.root = MOUNT
        self.config = config
        self._container = None
        self._user_spec = ""
        self.owner = (AGENT_UID, AGENT_UID) if os.getuid() == 0 else None

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        try:
            import docker
        except ImportError as e:
            raise SandboxError("the docker sandbox needs the `docker` extra: pip install 'klong[docker]'") from e
        try:
            client = docker.from_env()
            if self.config.docker_build:
                base = self.config.docker_base or os.environ.get("KLONG_DOCKER_BASE")
                ensure_image(client, self.config.docker_image, base=base)
            else:
                try:
                    client.images.get(self.config.docker_image)
                except docker.errors.ImageNotFound:
                    raise SandboxError(f"image {self.config.docker_image!r} not found (docker_build is off: pull or "
                                       "build it first)") from None  # fmt: skip
            self.workspace.mkdir(parents=True, exist_ok=True)
            volumes = {str(self.workspace): {"bind": MOUNT, "mode": "rw"}}
            for rel, target in self.config.docker_mounts.items():
                volumes[self._inside(rel)] = {"bind": target, "mode": "rw"}
            self._user_spec = self._user()
            c = self.config
            fsize = docker.types.Ulimit(name="fsize", soft=c.workspace_bytes, hard=c.workspace_bytes)
            # a read-only root: the agent writes only to the workspace (no file past workspace_bytes) and a bounded /tmp
            self._container = client.containers.run(
                user=self._user_spec,
                image=c.docker_image, command=["sleep", "infinity"], detach=True, remove=True, init=True,
                network_disabled=not c.network, mem_limit=c.docker_memory, memswap_limit=c.docker_memory,
                pids_limit=c.max_processes, working_dir=MOUNT, read_only=True, ulimits=[fsize],
                tmpfs={"/tmp": f"size={c.tmp_bytes},mode=1777", "/run": "size=1m"}, cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                volumes=volumes,
            )  # fmt: skip
        except docker.errors.DockerException as e:
            raise SandboxError(f"docker: {e}") from e

    def _inside(self, rel: str) -> str:
        """A folder of the workspace to mount, never a link out of it (an agent may have replaced it by one before a
        resumed episode starts)."""
        path = self.workspace / rel
        path.mkdir(parents=True, exist_ok=True)
        real = path.resolve()
        if path.is_symlink() or not real.is_relative_to(self.workspace.resolve()) or not real.is_dir():
            raise SandboxError(f"{path}: not a folder of the workspace, not mounted")
        return str(real)

    def _user(self) -> str:
        """Commands run as the host user, so the bind-mounted workspace stays writable and its files stay the host
        user's; a root host gets uid 1000 instead (the workspace is handed to it), never root in the container."""
        if os.getuid() != 0:
            return f"{os.getuid()}:{os.getgid()}"
        for path in [self.workspace, *self.workspace.rglob("*")]:
            os.lchown(path, AGENT_UID, AGENT_UID)
        return f"{AGENT_UID}:{AGENT_UID}"

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult:
        return await asyncio.to_thread(self._run, list(argv), timeout, stdin)

    def _run(self, argv: list[str], timeout: float, stdin: str | None) -> CommandResult:
        if self._container is None:
            raise SandboxError("docker sandbox not started")
        c = self.config
        command = " ".join(shlex.quote(a) for a in argv)
        if stdin is not None:
            command = f"printf %s {shlex.quote(stdin)} | {command}"
        # `timeout` puts the command in a process group of its own, whose id (= its pid) is written down so that the
        # whole group can be killed from a second exec (an output flood); the container's init reaps what is left.
        tag = uuid.uuid4().hex
        pidfile = f"/tmp/.klong-{tag}.pid"
        wrapped = [
            "bash",
            "-c",
            f'echo $$ > {pidfile}; exec timeout -s KILL {max(1, int(timeout))} bash -c "$1"',
            "_",
            command,
        ]
        start = time.monotonic()
        capture = _Capture(c.output_head_bytes, c.output_tail_bytes)
        env = sandbox_env(c, MOUNT)
        env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        env.update(c.docker_env)
        exec_id = self._container.client.api.exec_create(self._container.id, wrapped, environment=env, workdir=MOUNT)
        killed = None
        for chunk in self._container.client.api.exec_start(exec_id, stream=True):
            capture.add(chunk)
            if capture.total > c.max_output_bytes and killed is None:
                killed = "too much output"
                # from another connection, while this one keeps draining (a second exec on this client would wait)
                threading.Thread(target=self._kill_group, args=(pidfile,), daemon=True).start()
        code = self._container.client.api.exec_inspect(exec_id).get("ExitCode")
        if killed is None and code in (124, 137) and time.monotonic() - start >= timeout - 0.5:
            killed = "timeout"
        return CommandResult(exit_code=None if killed else code, output=capture.text(), output_bytes=capture.total,
                             duration=time.monotonic() - start, timed_out=killed == "timeout", killed_reason=killed)  # fmt: skip

    def _kill_group(self, pidfile: str) -> None:
        import docker

        api = docker.from_env().api
        exec_id = api.exec_create(
            self._container.id, ["bash", "-c", f"kill -9 -- -$(cat {pidfile})"], user=self._user_spec
        )
        api.exec_start(exec_id)

    async def close(self) -> None:
        if self._container is not None:
            container, self._container = self._container, None
            await asyncio.to_thread(container.kill)
