"""`run_process` drives real processes: the spawning thread's quick path, the hand-over to the event loop, cancellation
at every stage, standard input bigger than a pipe, and no zombie or file descriptor left behind."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from klong.sandbox import process
from klong.sandbox.process import QUICK_SECONDS, run_process
from klong.sandbox.watch import descendants

ENV = {"PATH": "/usr/bin:/bin"}


def run(argv, **kw):
    kw.setdefault("timeout", 30)
    return asyncio.run(run_process(argv, cwd=Path("/"), env=ENV, **kw))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_quick_commands_leave_no_zombie_and_no_descriptor():
    async def many():
        return await asyncio.gather(*[run_process(["sh", "-c", f"echo {i}; exit {i % 3}"], cwd=Path("/"), env=ENV,
                                                  timeout=30) for i in range(60)])  # fmt: skip

    asyncio.run(many())  # the pools' threads exist from here on
    before = open_fds()
    results = asyncio.run(many())
    assert [r.output for r in results] == [f"{i}\n" for i in range(60)]
    assert [r.exit_code for r in results] == [i % 3 for i in range(60)]
    assert open_fds() == before
    assert descendants(os.getpid()) == []  # reaped: not even a zombie is left as our child


def test_output_before_and_after_the_hand_over_to_the_loop():
    script = f"echo before; sleep {QUICK_SECONDS * 4}; echo after; exit 4"
    result = run(["sh", "-c", script])
    assert result.output == "before\nafter\n"
    assert result.exit_code == 4


def test_a_grandchild_holding_the_output_open_bounds_the_wait():
    start = time.monotonic()
    result = run(["sh", "-c", "sleep 30 & echo done"])
    assert result.output == "done\n" and result.exit_code == 0
    assert time.monotonic() - start < 10  # the command ended: the wait for the end of its output is bounded (2 s)
    for pid in descendants(os.getpid()):  # the test's own cleanup of the sleep (a sandbox's marker reaps it)
        os.kill(pid, 9)


def test_timeout_shorter_than_the_quick_path():
    result = run(["sleep", "5"], timeout=QUICK_SECONDS / 5)
    assert result.timed_out and result.exit_code is None and result.duration < 3


def test_too_much_output_is_cut_off_in_the_spawning_thread():
    result = run(["sh", "-c", "yes"], max_output_bytes=100_000, head_bytes=10, tail_bytes=10)
    assert result.killed_reason == "too much output"
    assert result.output_bytes >= 100_000


def test_standard_input_bigger_than_a_pipe():
    result = run(["wc", "-c"], stdin=b"x" * (1 << 20))
    assert result.output.strip() == str(1 << 20)


@pytest.mark.parametrize("delay", [0.0, QUICK_SECONDS / 2, QUICK_SECONDS * 4])
def test_cancelled_at_any_stage_leaves_nothing_running(delay):
    """Cancelled while the thread starts the process, during the quick path, or once the loop has it: the process
    group is killed and reaped, and its pipes are closed."""

    async def cancel_one():
        task = asyncio.ensure_future(run_process(["sh", "-c", "sleep 30; echo never"], cwd=Path("/"), env=ENV,
                                                 timeout=60))  # fmt: skip
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(QUICK_SECONDS * 4)  # a spawning thread that still had it has killed it by then
        for _ in range(100):  # the reap happens on the loop when the killed process is gone
            if not descendants(os.getpid()):
                break
            await asyncio.sleep(0.05)

    asyncio.run(cancel_one())  # the pools' threads exist from here on
    before = open_fds()
    for _ in range(5):
        asyncio.run(cancel_one())
    assert descendants(os.getpid()) == []
    assert open_fds() == before


def test_a_program_that_is_not_there():
    with pytest.raises(process.SandboxError, match="cannot start 'no-such-program-here'"):
        run(["no-such-program-here"])
