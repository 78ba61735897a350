"""A scripted teacher that solves the synthetic tasks the way a strong model would.

It reads the whole paper first (the mandatory reading), takes the seeds from what it read and creates the results
folder. Then, for each experiment, it runs it with the paper's seed, copies the final metric from the log into the
result file, and finally ends the task. Now and then it makes a realistic mistake and recovers: it takes the seed of a
neighbouring run from the paper's list, notices the mismatch between the log's `config:` line and the paper, and runs
the experiment again. Mistakes are drawn from a seeded generator, so the teacher's trajectories are reproducible.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from klong.agent.config import PAPER_END_MARKER
from klong.demo.tasks import parse_experiments
from klong.schema import Message, ToolCall, ToolFunction

_METRIC = re.compile(r"final metric ([0-9.]+)")


def run_command(index: int, seed: int) -> str:
    return f"tools/run_exp.py --exp {index} --seed {seed}"


def record_command(index: int, metric: str) -> str:
    return f"echo {metric} > submission/results/exp{index}.txt"


class TeacherModel:
    """Implements `klong.protocols.Model` for one episode of a synthetic task."""

    def __init__(self, seed: int, mistake_rate: float = 0.1):
        self.name = "scripted:teacher"
        self.rng = random.Random(seed)
        self.mistake_rate = mistake_rate
        self.plan: list[tuple[str, str, dict[str, Any]] | int] = []
        self.paper = ""
        self.page = 0
        self.calls = 0
        self._planned = False

    def _build_plan(self) -> None:
        experiments = parse_experiments(self.paper)
        self.plan.append(("", "bash", {"command": "mkdir -p submission/results"}))
        for i, e in enumerate(experiments):
            if self.rng.random() < self.mistake_rate and len(experiments) > 1:
                other = experiments[i + 1] if i + 1 < len(experiments) else experiments[i - 1]
                self.plan.append(("", "bash", {"command": run_command(e.index, other.seed)}))
                self.plan.append((f"The log says seed {other.seed}, but the paper gives seed {e.seed} for run "
                                  f"{e.index}. Running it again.", "bash", {"command": run_command(e.index, e.seed)}))  # fmt: skip
            else:
                self.plan.append(("", "bash", {"command": run_command(e.index, e.seed)}))
            self.plan.append(e.index)  # record the result, read off the latest log
        self.plan.append((f"All {len(experiments)} runs are done and recorded.", "end_task",
                          {"summary": "all experiments done"}))  # fmt: skip
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
                return self._call("", "read_paper", {"page": self.page})
            self._build_plan()
        step = self.plan.pop(0)
        if isinstance(step, int):
            return self._call("", "bash", {"command": record_command(step, self._metric(messages))})
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
        return Message(role="assistant", content=content or None, tool_calls=[call], finish_reason="tool_calls")
