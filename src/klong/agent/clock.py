"""Time for an episode: a wall clock for real tasks, a virtual clock for synthetic ones, behind one interface.

With the virtual clock, time advances only by declared costs (per model turn, per tool, per command pattern), so a
timeout is reached at the same step on any machine. Both clocks start from the elapsed time of a resumed trajectory.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    kind: str

    def elapsed(self) -> float:
        """Seconds of episode time used so far."""
        ...

    def charge(self, seconds: float) -> None:
        """Account for `seconds` of declared work (advances a virtual clock; a wall clock measures instead)."""
        ...


class WallClock:
    kind = "wall"

    def __init__(self, already_elapsed: float = 0.0):
        self._start = time.monotonic() - already_elapsed

    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def charge(self, seconds: float) -> None:
        return None


class VirtualClock:
    kind = "virtual"

    def __init__(self, already_elapsed: float = 0.0):
        self._now = already_elapsed

    def elapsed(self) -> float:
        return self._now

    def charge(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"
