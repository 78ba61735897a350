"""Configuration of an episode: time, clock, scaffold rules, tools, context and sandbox."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from klong.chat.context import ContextConfig
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

    time_limit: float = 7200.0
    """Episode time limit in seconds (wall or virtual); reaching it ends the episode normally (`timeout`)."""
    clock: Literal["wall", "virtual"] = "wall"
    """`wall` for real tasks; `virtual` for synthetic tasks whose tools declare their cost."""
    max_turns: int | None = None
    """Optional cap on assistant turns (`max_turns` stop)."""
    min_end_time: float = 0.0
    """`end_task` is refused (the model is told to continue) before this much episode time..."""
    min_end_turns: int = 0
    """... or before this many assistant turns."""
    mandatory_reading: bool = True
    """The model must read every page of the paper (`read_paper`) before any other tool; these turns are pinned."""
    page_chars: int = 12000
    """Characters per `read_paper` page."""
    bash_timeout: float = 600.0
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
    """Replaces the default task message; may use `{title}` and `{time_limit}` (e.g. `2h 00m`)."""
    max_context_retries: int = 3
    """New epochs tried after context-length errors from the server before the episode ends."""
    context: ContextConfig = Field(default_factory=lambda: ContextConfig(pin_marker=PAPER_END_MARKER))
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
