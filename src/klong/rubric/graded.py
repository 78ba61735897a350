"""Graded trees in PaperBench's judge-output shape, and score aggregation.

A graded node is a rubric node plus `score`, `valid_score`, `explanation` and `judge_metadata`. A node's score is the
weight-averaged score of its children (0 when all weights are 0), exactly as PaperBench aggregates; an inner node is
valid when all its children are. A grade file is either a bare graded tree or a judge output with the tree under
`graded_task_tree` (PaperBench's grader output and klong's own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from klong.exceptions import InputFileError
from klong.io import format_validation_error, read_json
from klong.rubric.tree import RubricNode, _number

AGGREGATED = "Aggregated score from sub-tasks."


class GradedNode(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    requirements: str
    weight: float = Field(ge=0)
    score: float = 0.0
    valid_score: bool = True
    task_category: str | None = None
    finegrained_task_category: str | None = None
    explanation: str = ""
    judge_metadata: Any = None
    """What the judge recorded (a dict in PaperBench's outputs; some of its human gradings hold a string)."""
    sub_tasks: list[GradedNode] = Field(default_factory=list)

    @property
    def is_leaf(self) -> bool:
        return not self.sub_tasks

    def walk(self, path: str = ""):
        stack = [(path or self.id, self)]
        while stack:
            p, node = stack.pop()
            yield p, node
            for child in reversed(node.sub_tasks):
                stack.append((f"{p}/{child.id}", child))

    def leaves(self) -> list[tuple[str, GradedNode]]:
        return [(p, n) for p, n in self.walk() if n.is_leaf]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "requirements": self.requirements, "weight": _number(self.weight), "score": self.score,
                "valid_score": self.valid_score, "task_category": self.task_category,
                "finegrained_task_category": self.finegrained_task_category, "explanation": self.explanation,
                "judge_metadata": self.judge_metadata, "sub_tasks": [c.to_json() for c in self.sub_tasks]}  # fmt: skip


def aggregate(node: GradedNode) -> GradedNode:
    """Recompute every inner node's score and validity from its leaves (in place); returns the node."""
    if node.is_leaf:
        return node
    for child in node.sub_tasks:
        aggregate(child)
    total = sum(c.weight for c in node.sub_tasks)
    node.score = sum(c.weight * c.score for c in node.sub_tasks) / total if total > 0 else 0.0
    node.valid_score = all(c.valid_score for c in node.sub_tasks)
    node.explanation = AGGREGATED
    return node


def graded_from_rubric(root: RubricNode, leaf_grades: dict[str, GradedNode]) -> GradedNode:
    """Assemble a graded tree from the rubric and the graded leaves (keyed by path), then aggregate."""

    def go(node: RubricNode, path: str) -> GradedNode:
        if node.is_leaf:
            return leaf_grades[path]
        children = [go(c, f"{path}/{c.id}") for c in node.sub_tasks]
        return GradedNode(id=node.id, requirements=node.requirements, weight=node.weight, sub_tasks=children)

    return aggregate(go(root, root.id))


def to_rubric(node: GradedNode) -> RubricNode:
    return RubricNode(id=node.id, requirements=node.requirements, weight=node.weight, task_category=node.task_category,
                      finegrained_task_category=node.finegrained_task_category,
                      sub_tasks=[to_rubric(c) for c in node.sub_tasks])  # fmt: skip


def read_graded(path: str | Path) -> tuple[GradedNode, dict[str, Any]]:
    """(graded tree, the rest of the file) from a bare graded tree or a judge output with `graded_task_tree`."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputFileError(path, "expected a JSON object (a graded tree or a judge output)")
    tree = data.get("graded_task_tree", data)
    extra = {k: v for k, v in data.items() if k != "graded_task_tree"} if "graded_task_tree" in data else {}
    stack = [tree]
    while stack:  # every leaf must carry a score: an ungraded rubric is not a graded tree with zeros
        node = stack.pop()
        if not isinstance(node, dict):
            break
        subs = node.get("sub_tasks") or []
        if not subs and "score" not in node:
            raise InputFileError(path, f"leaf {node.get('id')!r} has no score: an ungraded rubric, not a graded tree")
        stack.extend(subs if isinstance(subs, list) else [])
    try:
        return GradedNode.model_validate(tree), extra
    except ValidationError as e:
        raise InputFileError(path, f"not a graded tree: {format_validation_error(e)}") from None


def category_scores(root: GradedNode) -> dict[str, dict[str, float]]:
    """Per task category: leaves, mean leaf score, and the share of invalid leaves."""
    out: dict[str, dict[str, float]] = {}
    for _, leaf in root.leaves():
        c = out.setdefault(leaf.task_category or "none", {"leaves": 0, "score_sum": 0.0, "invalid": 0})
        c["leaves"] += 1
        c["score_sum"] += leaf.score
        c["invalid"] += 0 if leaf.valid_score else 1
    return {k: {"leaves": v["leaves"], "mean_leaf_score": v["score_sum"] / v["leaves"], "invalid": v["invalid"]}
            for k, v in out.items()}  # fmt: skip
