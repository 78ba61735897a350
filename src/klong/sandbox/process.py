"""Run one command as a process group with a timeout, bounded output and a bound on the number of processes.

Shared by the sandboxes: the command runs in a new session (its own process group); on timeout, or when it spawns
more than `max_processes` processes, or when it writes more than `max_output_bytes`, or when its workspace grows past
its disk bound, the whole group is killed (bounds other than time and output are watched by `klong.sandbox.watch`). Output
(stdout and stderr interleaved) is kept as a head and a tail; what was cut in between is counted and reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import select
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
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


def kill_group(pid: int) -> None:
    """Kill the process group led by `pid` and any descendant that left it."""
    pids = descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
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


_SPAWNERS: ThreadPoolExecutor | None = None
_PIDFD = hasattr(os, "pidfd_open")
QUICK_SECONDS = 0.05
"""How long a spawning thread waits for its command to end before handing it to the event loop."""


def _spawner() -> ThreadPoolExecutor:
    """Threads that start the commands' processes and see the quick ones through: fork and exec of a shell, and the
    loop's work per process (pipe, pidfd, their registrations), cost about a millisecond, which on the event loop's one
    thread would bound a machine's turns per second whatever its cores (hundreds of episodes at once)."""
    global _SPAWNERS
    if _SPAWNERS is None:
        _SPAWNERS = ThreadPoolExecutor(max_workers=min(4, 2 * (os.cpu_count() or 1)), thread_name_prefix="klong-spawn")
    return _SPAWNERS


@functools.lru_cache(maxsize=64)
def _which(name: str, path: str) -> str:
    """The program `name` on `path`, looked up once rather than by trying each folder at every command."""
    return shutil.which(name, path=path) or name


@dataclass
class _Command:
    """A started command, as the spawning thread hands it to the loop."""

    proc: subprocess.Popen
    pidfd: int | None
    exited: bool = False
    eof: bool = False
    started: int | None = None
    """Start time in clock ticks, for the reap of what escaped the group."""
    reading: bool = False
    """Its output is being read by the loop."""

    def stop_reading(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.reading:
            self.reading = False
            assert self.proc.stdout is not None
            loop.remove_reader(self.proc.stdout.fileno())


class _Handover:
    """Between the spawning thread and the caller: a caller cancelled before the thread is done leaves the command to
    the thread, which kills and reaps it (the event loop may be gone by then); after, the caller kills it itself."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.command: _Command | None = None

    def abandon(self) -> None:
        with self.lock:
            self.abandoned = True
            command = self.command
        if command is not None:
            Watch.shared().remove(command.proc.pid)
            kill_group(command.proc.pid)
            _exit_future(command)  # reaped on the loop when it is gone
            _close(command)

    def hand(self, command: _Command) -> _Command:
        with self.lock:
            if not self.abandoned:
                self.command = command
                return command
        Watch.shared().remove(command.proc.pid)
        kill_group(command.proc.pid)
        if command.pidfd is not None:
            _reap(command)
        else:
            command.proc.wait()
        _close(command)
        return command


def _start(
    argv: list[str],
    cwd: str | None,
    env: dict[str, str],
    stdin: bytes | None,
    fsize: int | None,
    take: Callable[[bytes], None],
    watched: Callable[[int], Watched],
    tick: bool,
    quick: float,
) -> _Command:
    """Start the command, put it under the watch, and, where it ends within `quick` seconds (most do), read its
    output and reap it here: the loop then only takes the result."""
    if "/" not in argv[0] and "PATH" in env:
        argv = [_which(argv[0], env["PATH"]), *argv[1:]]
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    if fsize is not None:  # set on the new process (and so on all it starts) rather than by one more exec
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (fsize, fsize))
    Watch.shared().add(watched(proc.pid))
    command = _Command(
        proc, os.pidfd_open(proc.pid) if _PIDFD else None, started=start_ticks(proc.pid) if tick else None
    )
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc, stdin), daemon=True, name="klong-stdin").start()
    if command.pidfd is None or quick <= 0:
        return command
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(command.pidfd, select.POLLIN)
    deadline = time.monotonic() + quick
    while not (command.eof and command.exited):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for ready, _ in poller.poll(left * 1000):
            if ready == fd:
                chunk = os.read(fd, 65536)
                if chunk:
                    take(chunk)
                else:
                    command.eof = True
                    poller.unregister(fd)
            else:
                poller.unregister(command.pidfd)
                _reap(command)
    return command


def _reap(command: _Command) -> None:
    assert command.pidfd is not None
    os.close(command.pidfd)
    command.pidfd = None
    try:
        _, status = os.waitpid(command.proc.pid, 0)
        command.proc.returncode = os.waitstatus_to_exitcode(status)
    except ChildProcessError:  # reaped elsewhere
        command.proc.returncode = 255
    command.exited = True


def _exit_future(command: _Command) -> asyncio.Future:
    """A future set when the command has exited and is reaped: its pidfd read by the loop where Linux offers one, else
    a waiting thread. The process is reaped whether or not anyone still awaits (a cancelled command leaves no zombie)."""
    loop = asyncio.get_running_loop()
    if command.exited:
        done = loop.create_future()
        done.set_result(None)
        return done
    if command.pidfd is None:
        return asyncio.ensure_future(loop.run_in_executor(None, command.proc.wait))
    done = loop.create_future()
    pidfd = command.pidfd

    def exited() -> None:
        loop.remove_reader(pidfd)
        _reap(command)
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, exited)
    return done


def _eof_future(command: _Command, take: Callable[[bytes], None]) -> asyncio.Future:
    """A future set at the end of the command's output, read by the loop from here on."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    if command.eof:
        done.set_result(None)
        return done
    assert command.proc.stdout is not None
    fd = command.proc.stdout.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            take(chunk)
            return
        command.stop_reading(loop)
        command.eof = True
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    command.reading = True
    return done


def _close(command: _Command) -> None:
    for pipe in (command.proc.stdout, command.proc.stdin):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Write a command's standard input (in a thread of its own: a command that does not read it blocks only that
    thread, until the command ends or is killed)."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, OSError):
        proc.stdin.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


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
    PID namespace needs none of it): no process outlives its command.

    The process is started by a small pool of threads, which also sees through a command that ends within
    `QUICK_SECONDS`; a longer one has its output read and its exit awaited on the event loop."""
    start = time.monotonic()
    run_env = dict(env)
    if marker is not None:
        run_env[MARKER] = marker
    loop = asyncio.get_running_loop()
    capture = _Capture(head_bytes, tail_bytes)
    killed: str | None = None
    pid: int | None = None

    def kill(reason: str) -> None:  # called from the spawning thread, the watch thread or the loop
        nonlocal killed
        killed = killed or reason
        if pid is not None:
            kill_group(pid)

    def take(chunk: bytes) -> None:  # output, read by the spawning thread or the loop
        capture.add(chunk)
        if capture.total > max_output_bytes and killed is None:
            kill("too much output")

    def watched(new_pid: int) -> Watched:
        nonlocal pid
        pid = new_pid
        return Watched(new_pid, max_processes, kill, workspace, max_disk_bytes)

    handover = _Handover()
    spawn = loop.run_in_executor(_spawner(), lambda: handover.hand(_start(
        list(argv), str(cwd) if cwd is not None else None, run_env, stdin, max_file_bytes, take, watched,
        marker is not None and reap, min(QUICK_SECONDS, timeout),
    )))  # fmt: skip
    try:
        command: _Command = await asyncio.shield(spawn)
    except OSError as e:
        raise SandboxError(f"cannot start {argv[0]!r}: {e.strerror or e}") from e
    except asyncio.CancelledError:
        handover.abandon()  # cancelled while it started: it must not run on unwatched
        raise
    watch = Watch.shared()
    exit_done = _exit_future(command)
    eof = _eof_future(command, take)
    try:
        if not command.exited:
            try:
                await asyncio.wait_for(asyncio.shield(exit_done), max(0.0, timeout - (time.monotonic() - start)))
            except TimeoutError:
                kill("timeout")
                await exit_done
    except asyncio.CancelledError:
        kill("cancelled")
        command.stop_reading(loop)
        _close(command)
        raise
    finally:
        watch.remove(command.proc.pid)
    if marker is not None and reap:  # what left the group and outlived the command
        watch.reap(marker, since=command.started)
    # The group is gone; a detached grandchild may still hold the pipe open: bound the wait for EOF.
    if not command.eof:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(eof, 2.0)
        command.stop_reading(loop)
    _close(command)
    return CommandResult(
        exit_code=None if killed else command.proc.returncode,
        output=capture.text(),
        output_bytes=capture.total,
        duration=time.monotonic() - start,
        timed_out=killed == "timeout",
        killed_reason=killed,
    )
