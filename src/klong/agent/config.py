"""Configuration of an episode: time, clock, scaffold rules, tools, context and sandbox."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from klong.chat.context import ContextConfig
from klong.config import Duration
from klong.sandbox.base import SandboxConfig

PAPER_END_MARKER = "[end of paper]"
"""Ends the last page `read_paper` returns; the context policy pins every turn up to it (the mandatory reading)."""


class CommandCost(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str
    """A regular expression searched in bash commands and python code."""
    seconds: float
    """Virtual seconds a matching command costs (instead of the tool's cost)."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        re.compile(v)
        return v


class AgentConfig(BaseModel):
    """Everything that shapes an episode. Written, resolved, to the run dir's `config.yaml`."""

    model_config = ConfigDict(extra="forbid")

    time_limit: Duration = 7200.0
    """Episode time limit in seconds (wall or virtual); reaching it ends the episode normally (`timeout`)."""
    clock: Literal["wall", "virtual"] = "wall"
    """`wall` for real tasks; `virtual` for synthetic tasks whose tools declare their cost."""
    max_turns: int | None = None
    """Optional cap on assistant turns (`max_turns` stop)."""
    min_end_time: Duration = 0.0
    """`end_task` is refused (the model is told to continue) before this much episode time..."""
    min_end_turns: int = 0
    """... or before this many assistant turns."""
    mandatory_reading: bool = True
    """The model must read every page of the paper (`read_paper`) before any other tool: every other call is refused
    (the model is told which page to read next) until it has; these turns are the pinned prefix of every context view.
    `max_refusals` ends an episode whose model never complies."""
    page_chars: int = 12000
    """Characters per `read_paper` page."""
    bash_timeout: Duration = 600.0
    """Default and maximum seconds of one bash or python call (also bounded by the time left)."""
    read_chars: int = 20000
    """Most characters `read_file` and `search_files` return at once."""
    time_notices: list[float] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 0.9])
    """Fractions of the time limit at which the model is told how much time is left."""
    turn_cost: float = 30.0
    """Virtual seconds per model turn."""
    tool_costs: dict[str, float] = Field(default_factory=lambda: {"bash": 60.0, "python": 60.0, "read_paper": 30.0})
    """Virtual seconds per tool call; tools not listed cost `default_tool_cost`."""
    default_tool_cost: float = 10.0
    command_costs: list[CommandCost] = Field(default_factory=list)
    """Virtual costs of particular commands (first matching pattern wins), e.g. a long experiment."""
    system_prompt: str | None = None
    """Replaces klong's default system prompt (`klong.agent.prompts.SYSTEM_PROMPT`)."""
    task_template: str | None = None
    """Replaces the default task message; may use `{title}`, `{time_limit}` (e.g. `2h 00m`), `{root}` (the workspace
    as commands see it) and `{paper}` (the task text itself: benchmarks whose task is an issue to embed)."""
    max_context_retries: int = 8
    """Context-length errors in a row the runtime answers with a new, smaller view (each attempt shrinks it) before the
    episode ends (`context_exhausted`; sooner when the pinned prefix alone no longer fits)."""
    max_refusals: int = 20
    """Turns in a row whose every call the scaffold refused (reading not done, `end_task` too early) before the episode
    ends with `refused`."""
    interrupted_calls: Literal["report", "rerun"] = "report"
    """A command (`bash`, `python`, a file write) that klong was killed during, found unanswered on resume: `report`
    tells the model it was interrupted and may have partly run; `rerun` runs it again."""
    context: ContextConfig = Field(default_factory=lambda: ContextConfig(pin_marker=PAPER_END_MARKER))
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)

    @model_validator(mode="after")
    def _check(self) -> AgentConfig:
        problems = []
        if not self.time_limit > 0:
            problems.append(f"time_limit must be > 0 seconds, not {self.time_limit}")
        if self.max_turns is not None and self.max_turns < 1:
            problems.append(f"max_turns must be at least 1, not {self.max_turns}")
        if self.min_end_time < 0 or self.min_end_turns < 0:
            problems.append("min_end_time and min_end_turns must be >= 0")
        if self.page_chars < 100:
            problems.append(f"page_chars must be at least 100, not {self.page_chars}")
        if not self.bash_timeout > 0:
            problems.append(f"bash_timeout must be > 0 seconds, not {self.bash_timeout}")
        if self.read_chars < 200:
            problems.append(f"read_chars must be at least 200, not {self.read_chars}")
        costs = [
            self.turn_cost,
            self.default_tool_cost,
            *self.tool_costs.values(),
            *(c.seconds for c in self.command_costs),
        ]
        if any(c < 0 for c in costs):
            problems.append("virtual costs (turn_cost, tool_costs, default_tool_cost, command_costs) must be >= 0")
        if self.max_context_retries < 0 or self.max_refusals < 1:
            problems.append("max_context_retries must be >= 0 and max_refusals >= 1")
        if any(not 0 < f < 1 for f in self.time_notices):
            problems.append("time_notices are fractions of the time limit, between 0 and 1")
        if problems:
            raise ValueError("; ".join(problems))
        return self
