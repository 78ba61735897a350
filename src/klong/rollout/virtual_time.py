"""An asyncio event loop on a virtual clock: klong's own schedulers, run at any scale in seconds.

`asyncio.sleep`, timeouts and `loop.time()` follow a virtual clock that starts at 0 and, whenever nothing is ready to
run, jumps to the next timer instead of waiting for it. Everything else is the standard selector loop, so the code
under it (the rollout runner's concurrency bound, the judge's `GradingQueue`, the RL trainer's iteration barrier) is
the code klong runs, not a model of it. `benchmarks/scale_sim.py` drives 10,000 simulated hour-long rollouts through
it; tests use it to check scheduling decisions without waiting.

Work handed to a thread (`asyncio.to_thread`, `run_in_executor`) takes no virtual time: while any is in flight the
loop waits for it in real time before it lets the clock jump, so a thread's result is never seen "later" than the
timers that were due when it finished. klong's schedulers read time only from the loop (`loop.time()`), never from
`time.monotonic()`, so that their latencies and durations are virtual here and real elsewhere.

    run_virtual(main())            # like asyncio.run(main()), on a virtual clock; returns main's result
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    """The loop's selector: real events first; when none are ready and only timers are pending, the virtual clock
    jumps by the time the loop would have waited, instead of waiting."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        loop = self.loop
        if ready or timeout == 0 or loop is None:
            return ready
        if timeout is None or loop._in_threads:  # nothing scheduled, or a thread's result is due: wait for it
            return super().select(None)
        loop._now += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose `time()` is virtual (seconds since the loop was made, advanced by jumps)."""

    def __init__(self) -> None:
        selector = _JumpingSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0
        self._in_threads = 0
        self._clock_resolution = 1e-6
        """How close a timer must be to count as due. The standard loop takes the monotonic clock's (1e-9 s), finer
        than a float's spacing past 1e7 s: a timer 4 months in would then never come due."""

    def time(self) -> float:
        return self._now

    def run_in_executor(self, executor, func, *args):  # type: ignore[override]
        future = super().run_in_executor(executor, func, *args)
        self._in_threads += 1

        def _done(_: asyncio.Future) -> None:
            self._in_threads -= 1

        future.add_done_callback(_done)
        return future


def run_virtual(main: Coroutine[Any, Any, T], *, debug: bool = False) -> T:
    """Run `main` to completion on a fresh `VirtualTimeLoop` (as `asyncio.run` does on a real one) and close it."""
    with asyncio.Runner(debug=debug, loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main)


__all__ = ["VirtualTimeLoop", "run_virtual"]
