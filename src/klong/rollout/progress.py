"""Terminal progress for rollouts: per run, turns, elapsed/limit, last tool, tokens (rich)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table

from klong.agent.clock import format_duration
from klong.schema import Trajectory


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the progress table shows of a run, small enough to send from a worker machine after every step."""

    id: str
    turns: int
    elapsed: float
    time_limit: float | None
    last_tool: str | None
    tokens: int
    stop_reason: str | None
    finished: bool

    @classmethod
    def of(cls, traj: Trajectory) -> ProgressSnapshot:
        elapsed = traj.virtual_time if traj.virtual_time is not None else traj.wall_time
        tokens = sum((m.usage.prompt_tokens + m.usage.completion_tokens) for m in traj.messages if m.usage)
        last_tool = next((m.name for m in reversed(traj.messages) if m.role == "tool" and m.name), None)
        return cls(id=traj.id, turns=traj.assistant_turns(), elapsed=elapsed, time_limit=traj.time_limit,
                   last_tool=last_tool, tokens=tokens, stop_reason=traj.stop_reason.value if traj.stop_reason else None,
                   finished=traj.finished)  # fmt: skip


class RolloutProgress:
    def __init__(self, console: Console | None = None, enabled: bool = True):
        self.console = console or Console()
        self.enabled = enabled
        self.rows: dict[str, dict[str, str]] = {}
        self._live: Live | None = None
        self._last = 0.0

    def __enter__(self) -> RolloutProgress:
        if self.enabled and self.console.is_terminal:
            self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(*exc)

    def update(self, traj: Trajectory | ProgressSnapshot, event: str) -> None:
        """A step of a run: its trajectory (in-process runs) or a `ProgressSnapshot` (runs on other machines)."""
        snap = traj if isinstance(traj, ProgressSnapshot) else ProgressSnapshot.of(traj)
        self.rows[snap.id] = {
            "turns": str(snap.turns),
            "time": f"{format_duration(snap.elapsed)} / {format_duration(snap.time_limit or 0)}",
            "last tool": snap.last_tool or "-",
            "tokens": f"{snap.tokens:,}",
            "status": snap.stop_reason or ("running" if event != "interrupted" else "interrupted"),
        }
        if self._live is not None and (time.monotonic() - self._last > 0.25 or snap.finished):
            self._last = time.monotonic()
            self._live.update(self._table())
        elif self._live is None and self.enabled and event in ("end", "interrupted"):
            r = self.rows[snap.id]
            self.console.print(f"{snap.id}: {r['status']} after {r['turns']} turns, {r['time']}, {r['tokens']} tokens")

    def _table(self) -> Table:
        table = Table(title="rollouts")
        for col in ("run", "turns", "time", "last tool", "tokens", "status"):
            table.add_column(col, justify="right" if col in ("turns", "tokens") else "left")
        for run_id, r in self.rows.items():
            table.add_row(run_id, r["turns"], r["time"], r["last tool"], r["tokens"], r["status"])
        return table
