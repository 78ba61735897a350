"""Counts over trajectories: messages, assistant turns, tool calls, characters and (optionally) template tokens."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel

from klong.chat.render import render_ids
from klong.exceptions import InputFileError
from klong.schema import Trajectory


class TrajectoryStats(BaseModel):
    id: str
    path: str | None = None
    messages: int
    assistant_turns: int
    tool_calls: int
    characters: int
    """Characters of message content, reasoning and tool-call arguments."""
    tokens: int | None = None
    """Tokens of the whole conversation rendered through the tokenizer's chat template (tools included)."""
    stop_reason: str | None = None


def message_characters(traj: Trajectory) -> int:
    total = 0
    for m in traj.messages:
        total += len(m.content or "") + len(m.reasoning_content or "")
        for call in m.tool_calls or []:
            total += len(call.function.name) + len(call.function.arguments)
    return total


def trajectory_stats(traj: Trajectory, tokenizer=None, path: str | Path | None = None) -> TrajectoryStats:
    return TrajectoryStats(
        id=traj.id,
        path=str(path) if path is not None else None,
        messages=len(traj.messages),
        assistant_turns=traj.assistant_turns(),
        tool_calls=traj.tool_call_count(),
        characters=message_characters(traj),
        tokens=len(render_ids(tokenizer, traj.messages, traj.tools)) if tokenizer is not None else None,
        stop_reason=traj.stop_reason.value if traj.stop_reason else None,
    )


def totals(rows: Iterable[TrajectoryStats]) -> dict[str, int | None]:
    rows = list(rows)
    out: dict[str, int | None] = {"trajectories": len(rows)}
    for key in ("messages", "assistant_turns", "tool_calls", "characters"):
        out[key] = sum(getattr(r, key) for r in rows)
    out["tokens"] = (
        sum(r.tokens for r in rows if r.tokens is not None)
        if rows and all(r.tokens is not None for r in rows)
        else None
    )
    return out


def trajectory_files(target: str | Path) -> list[Path]:
    """The trajectory files named by a file or a folder (its `*.json`, or those of its `trajectories/` subfolder)."""
    target = Path(target)
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise InputFileError(target, "no such file or folder")
    if (target / "trajectories").is_dir():  # a run dir: its trajectories, not its meta.json or summaries
        target = target / "trajectories"
    files = sorted(target.glob("*.json"))
    if not files:
        raise InputFileError(target, "folder holds no trajectory files (*.json)")
    return files
