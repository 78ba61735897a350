"""Run one command as a process group with a timeout, bounded output and a bound on the number of processes.

Shared by the sandboxes: the command runs in a new session (its own process group); on timeout, or when it spawns
more than `max_processes` processes, or when it writes more than `max_output_bytes`, or when its workspace grows past
its disk bound, the whole group is killed (bounds other than time and output are watched by `klong.sandbox.watch`). Output
(stdout and stderr interleaved) is kept as a head and a tail; what was cut in between is counted and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import sys
import time
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from klong.exceptions import SandboxError
from klong.sandbox.watch import MARKER, Watch, Watched, descendants, start_ticks


@dataclass
class CommandResult:
    exit_code: int | None
    """None when the command was killed (timeout, process or output bound)."""
    output: str
    """Head and tail of the combined output, with a note where the middle was cut."""
    output_bytes: int
    """Total bytes the command wrote."""
    duration: float
    timed_out: bool = False
    killed_reason: str | None = None
    """`timeout`, `too many processes` or `too much output` when the group was killed."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class _PidfdWatcher(asyncio.AbstractChildWatcher):
    """Python 3.12's way of waiting for a child on Python 3.11: a pidfd read by the loop that started the child
    (any loop, in any thread), instead of a thread per child. Not attached to a loop, so never detached from one."""

    def __init__(self) -> None:
        self._children: dict[int, tuple[asyncio.AbstractEventLoop, int, object, tuple]] = {}

    def add_child_handler(self, pid, callback, *args):
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        self._children[pid] = (loop, pidfd, callback, args)
        loop.add_reader(pidfd, self._exited, pid)

    def _exited(self, pid: int) -> None:
        loop, pidfd, callback, args = self._children.pop(pid)
        loop.remove_reader(pidfd)
        os.close(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere
            code = 255
        callback(pid, code, *args)

    def remove_child_handler(self, pid):
        entry = self._children.pop(pid, None)
        if entry is None:
            return False
        loop, pidfd = entry[0], entry[1]
        loop.remove_reader(pidfd)
        os.close(pidfd)
        return True

    def attach_loop(self, loop):  # children are watched by the loop that started them
        pass

    def is_active(self):
        return True

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def use_pidfd_child_watcher() -> None:
    """Before many commands run at once: on Python 3.11 asyncio's default waits for every child process in a thread
    of its own (hundreds of threads for hundreds of concurrent commands). Where Linux offers pidfds, wait on the
    event loop instead, as Python 3.12 does by default. Installed once per process, and only over asyncio's own
    default watcher (one a program set itself is kept); processes already running stay with the old watcher."""
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        current = asyncio.get_child_watcher()
        if not isinstance(current, asyncio.ThreadedChildWatcher):
            return
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:  # a kernel without pidfds (before 5.3) or a seccomp filter that refuses them
            return
        asyncio.set_child_watcher(_PidfdWatcher())  # closing the threaded watcher leaves its threads running


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """Kill the process group and any descendant that left it."""
    pids = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class _Capture:
    def __init__(self, head_bytes: int, tail_bytes: int):
        self.head = bytearray()
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.total = 0
        self.head_bytes = head_bytes
        self.tail_bytes = tail_bytes

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_bytes - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail and self.tail_size - len(self.tail[0]) >= self.tail_bytes:
                self.tail_size -= len(self.tail.popleft())

    def text(self) -> str:
        tail = b"".join(self.tail)
        if len(tail) > self.tail_bytes:
            tail = tail[-self.tail_bytes :]
        cut = self.total - len(self.head) - len(tail)
        head = self.head.decode("utf-8", errors="replace")
        if cut <= 0:
            return head + tail.decode("utf-8", errors="replace")
        note = f"\n[... {cut} bytes of output cut: showing the first {len(self.head)} and the last {len(tail)} ...]\n"
        return head + note + tail.decode("utf-8", errors="replace")


async def run_process(
    argv: Sequence[str],
    *,
    cwd: str | Path | None,
    env: Mapping[str, str],
    timeout: float,
    stdin: bytes | None = None,
    head_bytes: int = 8000,
    tail_bytes: int = 8000,
    max_output_bytes: int = 1 << 30,
    max_processes: int = 256,
    marker: str | None = None,
    workspace: Path | None = None,
    max_disk_bytes: int | None = None,
    reap: bool = True,
    max_file_bytes: int | None = None,
) -> CommandResult:
    """Run `argv` as its own process group. The shared `Watch` bounds its processes and its workspace's disk use;
    `marker` (`episode:command`, put in the environment every child inherits) finds, when the command ends, whatever
    escaped the group (`setsid`, `nohup ... & disown`), which the watch thread kills (`reap`; a sandbox with its own
    PID namespace needs none of it): no process outlives its command."""
    start = time.monotonic()
    run_env = dict(env)
    if marker is not None:
        run_env[MARKER] = marker
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(cwd) if cwd is not None else None,
            env=run_env,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as e:
        raise SandboxError(f"cannot start {argv[0]!r}: {e.strerror or e}") from e
    if max_file_bytes is not None:  # set on the new process (and so on all it starts) rather than by one more exec
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    capture = _Capture(head_bytes, tail_bytes)
    killed: str | None = None

    def kill(reason: str) -> None:  # also called from the watch thread
        nonlocal killed
        killed = killed or reason
        kill_group(proc)

    async def pump() -> None:
        assert proc.stdout is not None
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                return
            capture.add(chunk)
            if capture.total > max_output_bytes and killed is None:
                kill("too much output")

    watch = Watch.shared()
    watch.add(Watched(proc.pid, max_processes, kill, workspace, max_disk_bytes))
    started = start_ticks(proc.pid) if marker is not None and reap else None
    if stdin is not None and proc.stdin is not None:
        proc.stdin.write(stdin)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await proc.stdin.drain()
        proc.stdin.close()
    pump_task = asyncio.ensure_future(pump())
    try:
        await asyncio.wait_for(asyncio.shield(proc.wait()), timeout)
    except TimeoutError:
        kill("timeout")
        await proc.wait()
    except asyncio.CancelledError:
        kill_group(proc)
        raise
    finally:
        watch.remove(proc.pid)
    if marker is not None and reap:  # what left the group and outlived the command
        watch.reap(marker, since=started)
    # The group is gone; a detached grandchild may still hold the pipe open: bound the wait for EOF.
    try:
        await asyncio.wait_for(pump_task, 2.0)
    except TimeoutError:
        pump_task.cancel()
    return CommandResult(
        exit_code=None if killed else proc.returncode,
        output=capture.text(),
        output_bytes=capture.total,
        duration=time.monotonic() - start,
        timed_out=killed == "timeout",
        killed_reason=killed,
    )
