"""The leaf-judge protocol and its records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from klong.judge.submission import Submission
from klong.rubric.tree import RubricNode
from klong.task import Task


class JudgeConfig(BaseModel):
    """Settings of the LLM judge. Defaults reproduce PaperBench's SimpleJudge; the rest are klong's options."""

    model_config = ConfigDict(extra="forbid")

    context_tokens: int | None = Field(default=None, gt=0)
    """The judge model's context window in tokens; None: known for OpenAI model names, else 128,000."""
    buffer_tokens: int = Field(default=10_000, ge=0)
    """Tokens kept free of paper, log and files (PaperBench: 10,000)."""
    token_counter: Literal["auto", "tiktoken", "hf", "estimate"] = "auto"
    """How budgets are measured (`klong.judge.tokens`): auto = tiktoken if it loads, else `tokenizer`, else an
    estimate from characters."""
    tokenizer: str | None = None
    """A local Hugging Face tokenizer folder for counting (default for an `hf:PATH` judge: PATH)."""
    chars_per_token: float = Field(default=3.5, gt=0)
    """The estimate's characters per token, used when no tokenizer is available."""
    max_ranked_files: int = Field(default=10, ge=1)
    """Files read for a leaf, in the model's order of relevance, until the budget is used (PaperBench: 10)."""
    file_read_chars: int = Field(default=200_000, ge=1)
    """Characters read of each file, `reproduce.sh` and `reproduce.log` (PaperBench: 200,000)."""
    max_file_depth: int = Field(default=4, ge=1)
    """Folder depth the listing falls back to when the whole tree does not fit (PaperBench: 4)."""
    max_prior_nodes: int | None = Field(default=None, ge=1)
    """Most rubric nodes shown as context before the criterion (PaperBench: all; 5 for its `pinn` paper)."""
    rank_files: bool = True
    """Ask the model which files matter for each leaf (PaperBench always does); False: listing order."""
    rank_single_file: bool = False
    """klong: skip the ranking call when there is one candidate file (False), or ask anyway (True, PaperBench)."""
    whitelist: bool = True
    """Only files with PaperBench's extensions for the leaf's category are candidates; False: every file (klong's
    old behaviour)."""
    reduce_log: bool = True
    """Collapse runs of repeated lines in `reproduce.log` (numbers, times, hex ids masked), as PaperBench does."""
    log_tail: bool = False
    """klong: keep the head and the tail of a `reproduce.log` over budget; False: the head only (PaperBench)."""
    show_listing: bool = False
    """klong: also show the file listing in the grading prompt (PaperBench shows it to the ranking call only)."""
    answer: Literal["text", "json"] = "text"
    """`text`: PaperBench's three parts (Expectations, Reality, Score) as free text; `json`: the same fields as one
    JSON object, in JSON mode where the backend has it."""
    reparse: bool = True
    """When an answer cannot be read locally, ask the judge model to extract score and explanation (PaperBench
    always runs this step, with a separate parsing model)."""


JUDGE_ADDENDUM = "judge.addendum.md"
"""A task's notes for the judge only (beside `addendum.md`, which the agent sees too)."""


def judge_addendum(task: Task) -> str:
    """The task's `judge.addendum.md`, "" when it has none."""
    path = task.path / JUDGE_ADDENDUM if task.path is not None else None
    if path is None or not path.is_file():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


@dataclass
class LeafContext:
    path: str
    """Node ids from the root (ids are not unique in every rubric)."""
    node: RubricNode
    ancestors: list[str]
    """Requirements of the rubric nodes shown as context before the leaf, in PaperBench's order (`get_prior_nodes`:
    the ancestors, each preceded by its earlier siblings, and the leaf's own earlier siblings)."""
    submission: Submission
    task: Task
    code_only: bool = False
    """The rubric is PaperBench Code-Dev's: the judge is not told about reproduce.sh."""


Usage = dict[str, dict[str, int]]
"""Token usage as PaperBench records it: `{model_name: {"in": prompt tokens, "out": completion tokens}}`."""


@dataclass
class LeafGrade:
    score: float
    valid: bool
    explanation: str
    usage: Usage = field(default_factory=dict)
    calls: int = 0
    """Model calls made for this leaf."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Extra `judge_metadata` keys (e.g. `full_judge_response`, PaperBench's; `klong`, klong's)."""


def add_usage(usage: Usage, model: str, prompt_tokens: int, completion_tokens: int) -> None:
    entry = usage.setdefault(model, {"in": 0, "out": 0})
    entry["in"] += prompt_tokens
    entry["out"] += completion_tokens


class LeafJudge(Protocol):
    name: str
    """Recorded in grade files (e.g. `openai:gpt-4.1`, `check`)."""
    judge_type: str
    """PaperBench's `judge_type` (`simple` for the LLM judge) or klong's (`check`)."""
    cacheable: bool

    def identity(self) -> dict[str, Any]:
        """Everything about the judge that can change a grade (endpoint, model, sampling, prompts, budgets): part of
        the cache key."""
        ...

    async def grade_leaf(self, ctx: LeafContext) -> LeafGrade: ...
