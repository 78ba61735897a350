"""A scripted teacher that solves the synthetic tasks the way a strong model would.

It reads the whole paper first (the mandatory reading) and takes the settings from what it read. Then, for each
experiment, it states the paper's line for it and runs it with those settings, reads the final metric off the log and
records it, and ends the task. Now and then it makes a realistic mistake and recovers: it misreads a learning rate,
notices the mismatch in the run's `config:` line against the paper, and runs the experiment again. Mistakes are drawn
from a seeded generator, so the teacher's trajectories are reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from klong.agent.config import PAPER_END_MARKER
from klong.demo.tasks import LEARNING_RATES, Experiment, parse_experiments
from klong.schema import Message, ToolCall, ToolFunction

_METRIC = re.compile(r"final_metric=([0-9.]+)")


def run_command(e: Experiment, lr: str | None = None) -> str:
    return f"python3 tools/run_exp.py --exp {e.index} --lr {lr or e.lr} --seed {e.seed}"


class TeacherModel:
    """Implements `klong.protocols.Model` for one episode of a synthetic task."""

    def __init__(self, seed: int, mistake_rate: float = 0.1):
        self.name = "scripted:teacher"
        self.rng = random.Random(seed)
        self.mistake_rate = mistake_rate
        self.plan: list[tuple[str, str, dict[str, Any]] | str] = []
        self.paper = ""
        self.page = 0
        self.calls = 0
        self._planned = False

    def _build_plan(self) -> None:
        for e in parse_experiments(self.paper):
            if self.rng.random() < self.mistake_rate:
                bad = self.rng.choice([x for x in LEARNING_RATES if x != e.lr])
                misread = Experiment(e.index, bad, e.seed)
                self.plan.append((misread.line, "bash", {"command": run_command(misread)}))
                self.plan.append((f"The log says lr={bad}, but the paper says: {e.line} Running it again.", "bash",
                                  {"command": run_command(e)}))  # fmt: skip
            else:
                self.plan.append((e.line, "bash", {"command": run_command(e)}))
            self.plan.append(f"record:{e.index}")
        self.plan.append(("All experiments are run and recorded.", "end_task", {"summary": "all experiments done"}))
        self._planned = True

    async def generate(self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *,
                       json_mode: bool = False) -> Message:  # fmt: skip
        self.calls += 1
        last = (messages[-1].content or "") if messages else ""
        if not self._planned:
            if last.startswith("[page "):
                self.paper += last
            if PAPER_END_MARKER not in last:
                self.page += 1
                return self._call(f"Reading page {self.page} of the paper.", "read_paper", {"page": self.page})
            self._build_plan()
        step = self.plan.pop(0)
        if isinstance(step, str):  # record a result, read off the latest log
            index = int(step.split(":")[1])
            metric = self._metric(messages)
            return self._call(f"final_metric={metric} is the result of experiment {index}.", "write_file",
                              {"path": f"submission/results/exp{index}.txt", "content": metric})  # fmt: skip
        return self._call(*step)

    @staticmethod
    def _metric(messages: Sequence[Message]) -> str:
        for m in reversed(messages):
            found = _METRIC.findall(m.content or "")
            if found:
                return found[-1]
        return "0"

    def _call(self, content: str, tool: str, args: dict[str, Any]) -> Message:
        call = ToolCall(id=f"call_{self.calls}", function=ToolFunction(name=tool, arguments=args))
        return Message(role="assistant", content=content, tool_calls=[call], finish_reason="tool_calls")
