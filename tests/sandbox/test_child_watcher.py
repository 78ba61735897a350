"""Waiting for hundreds of commands without a thread each: `run_process` awaits exits through pidfds on the loop that
runs it, for any loop, in any thread, across `asyncio.run` calls."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from klong.sandbox.process import run_process


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


def test_every_loop_waits_without_a_thread_per_child():
    before = threading.active_count()
    codes, peak = _many(60)
    assert codes == [i % 3 for i in range(60)] and peak < before + 10  # a thread per child would add 60
    # a second run, and a run in another thread with its own loop, both still see their children exit
    assert _many(5)[0] == [0, 1, 2, 0, 1]
    out = {}
    thread = threading.Thread(target=lambda: out.update(codes=_many(5)[0]))
    thread.start()
    thread.join(60)
    assert out["codes"] == [0, 1, 2, 0, 1]
