"""`replay:TRAJECTORY`: answer with the assistant turns of a recorded trajectory, in order (deterministic)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from klong.models.scripted import ScriptExhaustedError
from klong.schema import Message, read_trajectory


class ReplayModel:
    def __init__(self, path: str | Path):
        traj = read_trajectory(path)
        self.name = f"replay:{path}"
        self.turns = [m for m in traj.messages if m.role == "assistant"]
        self.position = 0
        self.calls = 0

    def resume(self, assistant_turns: int) -> None:
        self.position = assistant_turns

    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        if self.position >= len(self.turns):
            raise ScriptExhaustedError(f"{self.name}: the trajectory has {len(self.turns)} assistant turns")
        turn = self.turns[self.position]
        self.position += 1
        self.calls += 1
        return turn.model_copy(update={"time": None, "virtual_time": None})
