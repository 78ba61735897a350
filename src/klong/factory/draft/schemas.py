"""The JSON answer of each drafting step, validated with pydantic.

A model answer that does not validate is fed back to the model with the validation error (`client.DraftClient`), so
the constraints here are the contract the prompts describe: categories only on leaves, PaperBench's vocabularies,
a grounding quote on every leaf, 3-13 skeleton children with leaf budgets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskCategory = Literal["Code Development", "Code Execution", "Result Analysis"]
FineCategory = Literal[
    "Method Implementation",
    "Experimental Setup",
    "Evaluation, Metrics & Benchmarking",
    "Data Processing & Preparation",
    "Dataset and Model Acquisition",
    "Logging, Analysis & Presentation",
    "Environment & Infrastructure Setup",
]
FINE_CATEGORIES: tuple[str, ...] = FineCategory.__args__  # type: ignore[attr-defined]


class Answer(BaseModel):
    """Base of every step answer: unknown keys are ignored (models add commentary), missing ones are errors."""

    model_config = ConfigDict(extra="ignore")


# -- 1. elements ---------------------------------------------------------------------------------------------------
class Component(Answer):
    name: str
    description: str
    quote: str = ""
    """A verbatim sentence (or part of one) of the paper stating it."""


class Experiment(Answer):
    name: str
    description: str = ""
    datasets: list[str] = Field(default_factory=list)
    baselines: list[str] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=list)
    locators: list[str] = Field(default_factory=list)
    """Tables and figures reporting it ("Table 1", "Figure 2")."""


class Elements(Answer):
    claims: list[str] = Field(default_factory=list)
    method_components: list[Component] = Field(default_factory=list)
    experiments: list[Experiment] = Field(default_factory=list)
    resources: list[str] = Field(default_factory=list)
    ambiguities: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> Elements:
        if not self.method_components and not self.experiments:
            raise ValueError("list at least one method component or experiment")
        return self


# -- 2. evidence matrix --------------------------------------------------------------------------------------------
class Fact(Answer):
    text: str
    source: Literal["paper", "code-only", "unresolved"]
    quote: str = ""
    """For `paper` facts: the verbatim paper text stating it."""


class Contribution(Answer):
    name: str
    facts: list[Fact] = Field(min_length=1)


class EvidenceMatrix(Answer):
    contributions: list[Contribution] = Field(min_length=1)


# -- 3. addendum ---------------------------------------------------------------------------------------------------
class AddendumDraft(Answer):
    scope: str
    resources: list[str] = Field(default_factory=list)
    scale_downs: list[str] = Field(default_factory=list)
    clarifications: list[str] = Field(default_factory=list)
    """Facts the rubric needs that the paper leaves open, stated plainly (from the code channel or the paper)."""
    out_of_scope: list[str] = Field(default_factory=list)

    def lines(self) -> list[str]:
        """Every bullet line of the addendum (leaves may cite any of them)."""
        return [*self.resources, *self.scale_downs, *self.clarifications, *self.out_of_scope]

    def to_markdown(self, title: str) -> str:
        parts = [f"## Addendum: {title}", "", "### Scope", "", self.scope.strip(), ""]
        for heading, items in (("Resources and approved scale-downs", [*self.resources, *self.scale_downs]),
                               ("Clarifications", self.clarifications), ("Out of scope", self.out_of_scope)):  # fmt: skip
            if items:
                parts += [f"### {heading}", "", *[f"- {item.strip()}" for item in items], ""]
        return "\n".join(parts).rstrip() + "\n"


# -- 4. skeleton ---------------------------------------------------------------------------------------------------
class SkeletonChild(Answer):
    requirements: str
    """The node's criterion, e.g. "The gated attention block has been implemented"."""
    kind: Literal["contribution", "experiment", "setup"] = "contribution"
    focus: str = ""
    """Which part of the paper (section, table, figure) the subtree covers."""
    leaf_budget: int = Field(ge=1, le=400)


class Skeleton(Answer):
    children: list[SkeletonChild] = Field(min_length=2, max_length=13)


# -- 5. subtrees ---------------------------------------------------------------------------------------------------
class DraftNode(Answer):
    """A rubric node as the model writes it: inner nodes have `sub_tasks`, leaves a category and a grounding."""

    requirements: str
    sub_tasks: list[DraftNode] = Field(default_factory=list)
    task_category: TaskCategory | None = None
    finegrained_task_category: FineCategory | None = None
    quote: str | None = None
    """Leaves: the verbatim paper text (or addendum line) the criterion rests on."""
    source: Literal["paper", "addendum"] | None = None

    @field_validator("requirements")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("requirements must not be empty")
        return v.strip()

    @model_validator(mode="after")
    def _shape(self) -> DraftNode:
        where = f"node {self.requirements[:60]!r}"
        if self.sub_tasks:
            if self.task_category or self.finegrained_task_category:
                raise ValueError(f"{where}: an inner node (with sub_tasks) must not have a task category")
        else:
            if self.task_category is None or self.finegrained_task_category is None:
                raise ValueError(f"{where}: a leaf needs task_category and finegrained_task_category")
            if not (self.quote or "").strip():
                raise ValueError(f"{where}: a leaf needs a `quote` from the paper or the addendum")
        return self

    def leaves(self) -> list[DraftNode]:
        return [self] if not self.sub_tasks else [x for c in self.sub_tasks for x in c.leaves()]


class Subtree(Answer):
    sub_tasks: list[DraftNode] = Field(min_length=1)
    """The children of the skeleton node this subtree fills."""


# -- 6. weights, review, repair ------------------------------------------------------------------------------------
class Weights(Answer):
    weights: dict[str, int] = Field(default_factory=dict)
    """Outline number ("2.1.3") -> weight, for the nodes whose weight is not 1."""

    @field_validator("weights")
    @classmethod
    def _range(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: w for k, w in v.items() if not 0 <= w <= 10}
        if bad:
            raise ValueError(f"weights must be integers in [0, 10], found {bad}")
        return v


class Issue(Answer):
    subtree: int = Field(ge=1)
    """The skeleton child (1-based) whose subtree has the problem."""
    problem: str


class Review(Answer):
    issues: list[Issue] = Field(default_factory=list)
