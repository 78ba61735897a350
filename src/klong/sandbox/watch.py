"""One watcher for every running command: process counts, workspace disk use, leftovers.

A command registers with the process-wide `Watch` while it runs. One thread, not one task per command, scans `/proc`
once per interval for all registered commands together (the cost of a scan is shared however many commands run) and
kills a command's whole process group when it has more live processes than its bound, or when its workspace uses more
disk than its bound (checked at a slower interval: walking a workspace costs more than reading `/proc`).

Every command's processes carry an environment marker (`KLONG_SANDBOX_RUN=<episode>:<command>`) that their children
inherit. It finds what escaped the process tree (`setsid`, double forks, `nohup ... & disown`, a detached process
reparented to init): when a command ends, every process still marked with its id is killed by the watch thread (one
pass over /proc for all the commands that ended meanwhile), and when an episode starts (a resume after klong itself
was killed), every process still marked with its episode is killed at once, so the same tool call never runs twice
at the same time. A process that clears its own environment (`env -i`) escapes the marker: `local` is no isolation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "KLONG_SANDBOX_RUN"


def _proc_file(pid: int | str, name: str) -> bytes | None:
    """`/proc/<pid>/<name>`, None when the process is gone or not ours to read."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return None


def _stat_fields(stat: bytes) -> list[bytes]:
    """The fields of `/proc/<pid>/stat` after the command name (field 3 is [0]): the name may hold spaces and ')'."""
    return stat[stat.rfind(b")") + 2 :].split()


def _scan() -> tuple[dict[int, list[int]], dict[int, tuple[int, int]]]:
    """One pass over /proc: ppid -> children, and pid -> (process group, start time in clock ticks after boot)."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or (stat := _proc_file(entry.name, "stat")) is None:
            continue
        fields = _stat_fields(stat)
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        info[pid] = (int(fields[2]), int(fields[19]))
    return children, info


def _proc_table() -> dict[int, list[int]]:
    """ppid -> children, from one pass over /proc."""
    return _scan()[0]


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot, as /proc reports it); its descendants started no earlier."""
    stat = _proc_file(pid, "stat")
    return int(_stat_fields(stat)[19]) if stat is not None else None


def descendants(root: int, table: dict[int, list[int]] | None = None) -> list[int]:
    """Pids of every live descendant of `root`."""
    table = table if table is not None else _proc_table()
    out, stack = [], [root]
    while stack:
        for child in table.get(stack.pop(), []):
            out.append(child)
            stack.append(child)
    return out


def marked(value: str) -> list[int]:
    """Pids of the processes whose environment holds the marker with this value, or for a value ending with ':' (an
    episode), any of its commands' values (only processes this user may read: those of the sandboxes klong started)."""
    needle = f"{MARKER}={value}".encode()
    prefix = value.endswith(":")
    out = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me or (env := _proc_file(entry.name, "environ")) is None:
            continue
        if any(item.startswith(needle) if prefix else item == needle for item in env.split(b"\0")):
            out.append(int(entry.name))
    return out


def kill_marked(value: str, rounds: int = 5) -> int:
    """SIGKILL every process `marked` with `value` (repeated: a dying parent may still fork); returns how many."""
    killed = 0
    for _ in range(rounds):
        pids = marked(value)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.02)
    return killed


def disk_usage(root: Path) -> int:
    """Bytes allocated under `root` (st_blocks, so sparse files count what they use), without following links."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


@dataclass
class Watched:
    pid: int
    """The command's process (leader of its process group)."""
    max_processes: int
    kill: Callable[[str], None]
    """Called (from the watch thread) with the reason when a bound is exceeded."""
    workspace: Path | None = None
    max_disk_bytes: int | None = None
    disk_every: float = 1.0
    _next_disk: float = field(default=0.0)


class Watch:
    """The process-wide watcher (`Watch.shared()`); its thread runs only while commands are registered."""

    _shared: Watch | None = None
    _shared_lock = threading.Lock()

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self._items: dict[int, Watched] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._reap: dict[str, tuple[int, int]] = {}
        """Markers of ended commands -> (passes left in which to look for their leftovers, the command's start)."""
        self.scans = 0
        """Passes over /proc so far (tests and benchmarks read it)."""

    @classmethod
    def shared(cls) -> Watch:
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = Watch()
            return cls._shared

    def add(self, item: Watched) -> None:
        with self._lock:
            self._items[item.pid] = item
            self._ensure_thread()
            self._wake.notify()

    def remove(self, pid: int) -> None:
        with self._lock:
            self._items.pop(pid, None)

    def reap(self, marker: str, passes: int = 3, since: int | None = None) -> None:
        """Kill, from the watch thread, whatever still carries `marker` (an ended command's leftovers: what left its
        process group). One pass over /proc serves every pending marker, so the cost does not grow with the number
        of commands ending at once; a few passes catch what a dying parent forked meanwhile. `since` (the command's
        `start_ticks`) spares reading the environment of processes that started before it."""
        with self._lock:
            self._reap[marker] = (passes, since or 0)
            self._ensure_thread()
            self._wake.notify()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="klong-watch", daemon=True)
            self._thread.start()

    def _reap_pass(self, info: dict[int, tuple[int, int]]) -> None:
        with self._lock:
            pending = dict(self._reap)
            leaders = set(self._items)
        if not pending:
            return
        needles = {f"{MARKER}={m}".encode() for m in pending}
        since = min(start for _, start in pending.values())
        me = os.getpid()
        for pid, (group, started) in info.items():
            # a leftover started after its command did, and left its group: the members of a running command's
            # group (another session: no leftover can join it) and older processes need no reading
            if started < since or group in leaders or pid == me or (env := _proc_file(pid, "environ")) is None:
                continue
            if not needles.isdisjoint(env.split(b"\0")):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with self._lock:
            for marker in pending:
                passes, start = self._reap.get(marker, (0, 0))
                if passes > 1:
                    self._reap[marker] = (passes - 1, start)
                else:
                    self._reap.pop(marker, None)

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._items and not self._reap:
                    if not self._wake.wait(timeout=5.0) and not self._items and not self._reap:
                        self._thread = None  # idle: the next `add` starts a new thread
                        return
                items = list(self._items.values())
            table, info = _scan()  # one pass serves the bounds of every running command and every pending reap
            if items:
                self._check(items, table)
            self._reap_pass(info)
            time.sleep(self.interval)

    def _check(self, items: list[Watched], table: dict[int, list[int]]) -> None:
        self.scans += 1
        now = time.monotonic()
        for item in items:
            if len(descendants(item.pid, table)) > item.max_processes:
                item.kill("too many processes")
                self.remove(item.pid)
                continue
            if item.workspace is not None and item.max_disk_bytes is not None and now >= item._next_disk:
                item._next_disk = now + item.disk_every
                if disk_usage(item.workspace) > item.max_disk_bytes:
                    item.kill("workspace disk limit")
                    self.remove(item.pid)
