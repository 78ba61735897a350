"""The virtual-time event loop that runs klong's schedulers at paper scale (benchmarks/scale_sim.py)."""

import asyncio
import contextlib
import subprocess
import sys
import time

from klong.judge.queue import GradingQueue
from klong.rollout.virtual_time import run_virtual


def test_timers_jump_instead_of_waiting():
    async def main():
        loop = asyncio.get_running_loop()

        async def sleeper(seconds):
            await asyncio.sleep(seconds)
            return loop.time()

        woke = await asyncio.gather(*(sleeper(1000.0 * i) for i in range(5000)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(100), 7)
        return woke, loop.time()

    started = time.monotonic()
    woke, end = run_virtual(main())
    assert woke == [1000.0 * i for i in range(5000)]  # each woke exactly when due, over 58 days
    assert end == 1000.0 * 4999 + 7  # wait_for's timeout is virtual too
    assert time.monotonic() - started < 30  # a real loop would take 58 days


def test_a_thread_in_flight_holds_the_clock():
    """Work in a thread takes no virtual time: its result comes before a timer that was due later."""

    async def main():
        loop = asyncio.get_running_loop()
        seen = []

        async def timer():
            await asyncio.sleep(3600)
            seen.append(("timer", loop.time()))

        async def thread():
            await asyncio.to_thread(time.sleep, 0.2)
            seen.append(("thread", loop.time()))

        await asyncio.gather(timer(), thread())
        return seen

    assert run_virtual(main()) == [("thread", 0.0), ("timer", 3600.0)]


def test_timers_months_away_come_due():
    """Past 1e7 s a float's spacing exceeds the monotonic clock's resolution that the standard loop uses to decide
    that a timer is due: the loop would spin for ever on a timer 4 months away."""
    code = ("import asyncio; from klong.rollout.virtual_time import run_virtual\n"
            "async def main():\n    await asyncio.sleep(3.6e7)\n    return asyncio.get_running_loop().time()\n"
            "print(run_virtual(main()))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "36000000.0", out.stderr


def test_grading_queue_on_virtual_time_measures_virtual_latencies():
    """The judge queue reads the loop's clock: under the virtual loop its latencies are exact virtual seconds, and
    evaluation jobs still go first."""

    async def main():
        async def grade(job):
            await asyncio.sleep(600)  # ten minutes per submission
            return job

        async with GradingQueue(grade, workers=1) as queue:
            futures = [queue.submit("t1", "train")]
            await asyncio.sleep(1)
            futures += [queue.submit("t2", "train"), queue.submit("e1", "eval")]
            await asyncio.gather(*futures)
        return queue.order, queue.latencies

    order, latencies = run_virtual(main())
    assert order == ["t1", "e1", "t2"]
    assert latencies == [600.0, 1199.0, 1799.0]
