"""Waiting for hundreds of commands without a thread each (Python 3.11): the pidfd watcher works for any loop, in any
thread, across `asyncio.run` calls, and with commands that outlive the run that installed it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from klong.sandbox.process import run_process, use_pidfd_child_watcher

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 waits on pidfds by itself")


def _many(n: int) -> tuple[list[int], int]:
    async def main():
        peak = 0

        async def one(i):
            nonlocal peak
            task = asyncio.ensure_future(
                run_process(
                    ["sh", "-c", f"sleep 0.3; exit {i % 3}"], timeout=30, cwd=Path("/tmp"), env=dict(os.environ)
                )
            )
            await asyncio.sleep(0.15)
            peak = max(peak, threading.active_count())
            return (await task).exit_code

        codes = await asyncio.gather(*(one(i) for i in range(n)))
        return codes, peak

    return asyncio.run(main())


def test_pidfd_watcher_serves_every_loop_without_a_thread_per_child():
    use_pidfd_child_watcher()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert type(asyncio.get_child_watcher()).__name__ == "_PidfdWatcher"
    before = threading.active_count()
    codes, peak = _many(60)
    assert codes == [i % 3 for i in range(60)] and peak < before + 10  # the threaded watcher would add 60
    # a second run, and a run in another thread with its own loop, both still see their children exit
    assert _many(5)[0] == [0, 1, 2, 0, 1]
    out = {}
    thread = threading.Thread(target=lambda: out.update(codes=_many(5)[0]))
    thread.start()
    thread.join(60)
    assert out["codes"] == [0, 1, 2, 0, 1]


SWITCH = """
import asyncio, os
from pathlib import Path
from klong.sandbox.process import run_process, use_pidfd_child_watcher

async def main():
    env = dict(os.environ)
    first = asyncio.ensure_future(run_process(["sh", "-c", "sleep 0.3; exit 7"], timeout=30, cwd=Path("/"), env=env))
    await asyncio.sleep(0.1)
    use_pidfd_child_watcher()
    second = await run_process(["sh", "-c", "exit 3"], timeout=30, cwd=Path("/"), env=env)
    print((await first).exit_code, second.exit_code)

asyncio.run(asyncio.wait_for(main(), 30))
"""


def test_a_command_started_before_the_switch_still_ends():
    """In a fresh interpreter: a command the default watcher started ends normally after the switch."""
    out = subprocess.run([sys.executable, "-c", SWITCH], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["7", "3"], out.stderr
