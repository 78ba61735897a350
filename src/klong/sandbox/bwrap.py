"""`bwrap`: bubblewrap, with an allowlist of what the agent can see.

Inside: the host's system folders read-only (`/usr`, `/etc`, `/bin`, `/lib*`, `/sbin`), the Python installation klong
runs with and any `ro_paths` read-only, the workspace read-write at `/workspace`, a bounded `/tmp` of its own, a
minimal `/dev` and `/proc`, and nothing else: not the host's home folders, not task collections, not run dirs, not
credentials. No network, new PID/IPC/UTS/mount/user namespaces (every process dies with the command), all
capabilities dropped, an unprivileged user.

When klong runs as root the agent must not be host root, whatever its uid inside: `setpriv` drops to
`SandboxConfig.uid`/`gid` before `bwrap` runs, so the user namespace maps the agent to that unprivileged host uid, and
the workspace is handed to that uid. Folders that user cannot reach (e.g. a Python under `/root/.pyenv`, a run dir under
a 700 folder) are first bind-mounted, in a private mount namespace of the command (`unshare --mount`), into a staging
folder it can reach.
Without root, `bwrap` maps the agent to the user running klong.

Files are bounded too: no single file may exceed `workspace_bytes` (RLIMIT_FSIZE, through `prlimit`), `/tmp` is a tmpfs
of `tmp_bytes`, and the shared watcher kills a command whose workspace grows past `workspace_bytes`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import shlex
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path

from klong.exceptions import SandboxError
from klong.sandbox.base import BASE_PATH, SandboxConfig, sandbox_env
from klong.sandbox.process import CommandResult, run_process
from klong.sandbox.watch import kill_marked

MOUNT = "/workspace"
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""Host folders every sandbox sees, read-only (symlinks, as in merged-/usr systems, are kept as symlinks)."""
TOOLS_AS_ROOT = ("unshare", "setpriv", "mount", "prlimit")


def python_paths() -> list[str]:
    """The installation(s) of the Python klong runs with (a venv and its base interpreter), outside the system folders."""
    out = []
    for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        real = os.path.realpath(p)
        if not any(real == s or real.startswith(s + "/") for s in SYSTEM):
            out.append(real)
    return sorted(set(out))


def reachable(path: str, uid: int, gid: int) -> bool:
    """Whether `uid`/`gid` (no supplementary groups) can traverse to `path` and list it: then `bwrap`, run as that
    user, can mount it directly and no staging is needed."""
    parts = Path(path).parts
    for k in range(1, len(parts) + 1):
        try:
            st = os.stat(os.path.join(*parts[:k]))
        except OSError:
            return False
        need = 0o1 if k < len(parts) else 0o5
        bits = (st.st_mode >> 6) if st.st_uid == uid else (st.st_mode >> 3) if st.st_gid == gid else st.st_mode
        if bits & need != need:
            return False
    return True


def _inside(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


class BwrapSandbox:
    kind = "bwrap"

    def __init__(self, workspace: Path, config: SandboxConfig, label: str | None = None):
        self.workspace = workspace
        self.root = MOUNT
        self.config = config
        self.as_root = os.geteuid() == 0
        self.owner = (config.uid, config.gid) if self.as_root else None
        self.label = label or hashlib.sha1(str(workspace).encode()).hexdigest()[:12]
        self._instance = uuid.uuid4().hex[:8]
        self._bwrap = shutil.which("bwrap")
        self._stage: str | None = None
        self._count = itertools.count()
        shared = [*(python_paths() if config.mount_python else []), *config.ro_paths]
        self.ro = [os.path.realpath(p) for p in dict.fromkeys(shared) if os.path.isdir(p)]

    async def start(self) -> None:
        if self._bwrap is None:
            raise SandboxError("bubblewrap (`bwrap`) is not installed; install the Debian package `bubblewrap`")
        missing = [t for t in (TOOLS_AS_ROOT if self.as_root else ("prlimit",)) if shutil.which(t) is None]
        if missing:
            raise SandboxError(f"the bwrap sandbox needs {', '.join(missing)} (Debian: util-linux, mount)")
        self.workspace.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            uid, gid = self.config.uid, self.config.gid
            for path in [self.workspace, *self.workspace.rglob("*")]:
                os.lchown(path, uid, gid)
            # folders the sandbox user cannot reach (under /root, a 700 run dir) are staged by a private bind mount
            if not all(reachable(p, uid, gid) for p in [str(self.workspace), *self.ro]):
                self._stage = tempfile.mkdtemp(prefix="klong-bwrap-")
                os.chmod(self._stage, 0o755)
                for name in ["ws", *(f"ro{k}" for k in range(len(self.ro)))]:
                    os.mkdir(os.path.join(self._stage, name), 0o755)
        probe = await self.run(["true"], timeout=30)
        if probe.exit_code != 0:
            raise SandboxError(f"bwrap cannot start a sandbox here: {probe.output.strip()[-500:]}")

    def _bwrap_argv(self) -> list[str]:
        c = self.config
        args = [self._bwrap or "bwrap", "--tmpfs", "/"]
        for path in SYSTEM:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        stage = self._stage
        for k, path in enumerate(self.ro):
            args += ["--ro-bind", f"{stage}/ro{k}" if stage else path, path]
        for path in c.hide_paths:  # inside a mounted folder: masked
            real = os.path.realpath(path)
            if _inside(real, [*SYSTEM, *self.ro]):
                args += ["--tmpfs", real] if os.path.isdir(real) else ["--ro-bind", "/dev/null", real]
        args += ["--dir", MOUNT, "--bind", f"{stage}/ws" if stage else str(self.workspace), MOUNT,
                 "--dev", "/dev", "--proc", "/proc", "--size", str(c.tmp_bytes), "--tmpfs", "/tmp",
                 "--dir", "/var", "--symlink", "../tmp", "/var/tmp", "--size", str(1 << 20), "--tmpfs", "/run",
                 "--unshare-all", "--uid", "1000", "--gid", "1000", "--cap-drop", "ALL",
                 "--die-with-parent", "--new-session", "--chdir", MOUNT, "--clearenv"]  # fmt: skip
        if c.network:
            args.append("--share-net")
        env = sandbox_env(c, MOUNT)
        seen = [*SYSTEM, *self.ro]
        env["PATH"] = ":".join(dict.fromkeys([*(p for p in env["PATH"].split(":") if _inside(p, seen)),
                                              *BASE_PATH.split(":")]))  # fmt: skip
        for key, value in env.items():
            args += ["--setenv", key, value]
        return args

    def _argv(self, argv: Sequence[str]) -> list[str]:
        limit = ["prlimit", f"--fsize={self.config.workspace_bytes}", "--"]
        inner = [*self._bwrap_argv(), "--", *argv]
        if not self.as_root:
            return [*limit, *inner]
        drop = ["setpriv", f"--reuid={self.config.uid}", f"--regid={self.config.gid}", "--clear-groups", "--"]
        stage = self._stage
        if stage is None:
            return [*limit, *drop, *inner]
        binds = [f"mount --bind {shlex.quote(str(self.workspace))} {shlex.quote(f'{stage}/ws')}"]
        binds += [f"mount --bind {shlex.quote(p)} {shlex.quote(f'{stage}/ro{k}')}" for k, p in enumerate(self.ro)]
        script = "set -e; " + "; ".join([*binds, 'exec "$@"'])
        return [*limit, "unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "klong-sandbox",
                *drop, *inner]  # fmt: skip

    async def run(self, argv: Sequence[str], *, timeout: float, stdin: str | None = None) -> CommandResult:
        c = self.config
        return await run_process(
            self._argv(argv), cwd=None, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            timeout=timeout, stdin=stdin.encode() if stdin is not None else None, head_bytes=c.output_head_bytes,
            tail_bytes=c.output_tail_bytes, max_output_bytes=c.max_output_bytes, max_processes=c.max_processes,
            marker=f"{self.label}:{self._instance}:{next(self._count)}", workspace=self.workspace, max_disk_bytes=c.workspace_bytes,
            reap=False,  # its own PID namespace: every process dies with the command
        )  # fmt: skip

    async def reclaim(self) -> int:
        """Kill what an earlier, killed klong left running for this workspace (see `LocalSandbox.reclaim`)."""
        return await asyncio.to_thread(kill_marked, f"{self.label}:")

    async def close(self) -> None:
        if self._stage is not None:
            shutil.rmtree(
                self._stage, ignore_errors=True
            )  # empty folders: the mounts lived in the commands' namespaces
            self._stage = None
