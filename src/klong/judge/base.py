"""The leaf-judge protocol and its records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from klong.judge.submission import Submission
from klong.rubric.tree import RubricNode
from klong.task import Task


class JudgeConfig(BaseModel):
    """Budgets of the LLM judge (characters; about 4 per token)."""

    model_config = ConfigDict(extra="forbid")

    paper_chars: int = 200_000
    """Paper and addendum shown to the judge (cut in the middle beyond this)."""
    files_chars: int = 80_000
    """Total characters of submission files read for one leaf."""
    file_chars: int = 30_000
    """Most characters of any one file."""
    max_ranked_files: int = 10
    """Files the model may pick as relevant for a leaf (read in its order until `files_chars` is used)."""
    log_chars: int = 20_000
    """Characters of `reproduce.log` shown to execution and result leaves (head and tail)."""
    rank_files: bool = True
    """Ask the model which files matter for each leaf (one extra call per leaf); else read files in listing order."""


@dataclass
class LeafContext:
    path: str
    """Node ids from the root (ids are not unique in every rubric)."""
    node: RubricNode
    ancestors: list[str]
    """Requirements of the nodes above the leaf, from the root."""
    submission: Submission
    task: Task


@dataclass
class LeafGrade:
    score: float
    valid: bool
    explanation: str
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0})
    metadata: dict[str, object] = field(default_factory=dict)


class LeafJudge(Protocol):
    name: str
    """Recorded in grade files, part of the cache key (e.g. `openai:gpt-4.1`, `check`)."""
    cacheable: bool

    async def grade_leaf(self, ctx: LeafContext) -> LeafGrade: ...
