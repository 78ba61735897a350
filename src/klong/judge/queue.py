"""A grading queue beside the rollouts: jobs are graded as they arrive, by a pool of workers, evaluation jobs first.

KLong grades while rollouts are still running (so a stage's rollouts do not all wait for the judge at once) and
grades evaluation submissions before training ones. `submit` returns a future; `depth` and `latencies` feed metrics.
Latencies are read from the event loop's clock (`loop.time()`: the monotonic clock, or a virtual one under
`klong.rollout.virtual_time`, where `benchmarks/scale_sim.py` runs this very queue at paper scale).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Literal

Priority = Literal["eval", "train"]
_RANK = {"eval": 0, "train": 1}


class GradingQueue:
    def __init__(self, grade: Callable[[Any], Awaitable[Any]], workers: int = 4):
        self._grade = grade
        self._workers = workers
        self._queue: asyncio.PriorityQueue = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._tasks: list[asyncio.Task] = []
        self.latencies: list[float] = []
        """Seconds from submission to result, per finished job."""
        self.order: list[Any] = []
        """Jobs in the order they started grading."""

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def __aenter__(self) -> GradingQueue:
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._queue.join()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def submit(self, job: Any, priority: Priority = "train") -> asyncio.Future:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put_nowait((_RANK[priority], next(self._seq), job, future, loop.time()))
        return future

    async def _worker(self) -> None:
        while True:
            _, _, job, future, submitted = await self._queue.get()
            self.order.append(job)
            try:
                result = await self._grade(job)
            except Exception as e:  # reported to whoever awaits the job
                if not future.done():
                    future.set_exception(e)
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                self.latencies.append(asyncio.get_running_loop().time() - submitted)
                self._queue.task_done()
