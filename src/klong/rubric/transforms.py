"""Rubric transforms used by PaperBench's variants.

- `code_only`: PaperBench Code-Dev: only `Code Development` leaves are kept (execution and results are not graded).
- `resources_provided`: leaves about acquiring datasets and models (`Dataset and Model Acquisition`) are dropped, for
  setups that hand those resources to the agent.
- `prune_to_depth`: nodes at depth `d` become leaves (cheaper grading); a collapsed node takes the task category and
  fine-grained category held by most of the leaves below it (ties: the first in `TASK_CATEGORIES` order / by name).

Inner nodes left without leaves are removed; weights are unchanged; a tree with no leaf left is an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from klong.rubric.tree import TASK_CATEGORIES, RubricError, RubricNode


def filter_leaves(root: RubricNode, keep: Callable[[RubricNode], bool], what: str) -> RubricNode:
    def go(node: RubricNode) -> RubricNode | None:
        if node.is_leaf:
            return node if keep(node) else None
        children = [c for c in (go(s) for s in node.sub_tasks) if c is not None]
        return node.model_copy(update={"sub_tasks": children}) if children else None

    out = go(root)
    if out is None:
        raise RubricError(f"{what}: no leaf of the rubric is left")
    return out


def code_only(root: RubricNode) -> RubricNode:
    return filter_leaves(root, lambda n: n.task_category == "Code Development", "code-only")


def resources_provided(root: RubricNode) -> RubricNode:
    return filter_leaves(root, lambda n: n.finegrained_task_category != "Dataset and Model Acquisition",
                         "resources-provided")  # fmt: skip


def _majority(values: list[str | None], order: tuple[str, ...] = ()) -> str | None:
    counts = Counter(values)
    if not counts:
        return None
    best = max(counts.values())
    tied = [v for v, c in counts.items() if c == best]
    ranked = sorted(tied, key=lambda v: (order.index(v) if v in order else len(order), v or ""))
    return ranked[0]


def prune_to_depth(root: RubricNode, max_depth: int) -> RubricNode:
    if max_depth < 1:
        raise RubricError("prune-to-depth: the depth must be at least 1")

    def go(node: RubricNode, depth: int) -> RubricNode:
        if node.is_leaf:
            return node
        if depth >= max_depth:
            leaves = [n for _, n in node.leaves()]
            return node.model_copy(update={
                "sub_tasks": [],
                "task_category": _majority([n.task_category for n in leaves], TASK_CATEGORIES),
                "finegrained_task_category": _majority([n.finegrained_task_category for n in leaves]),
            })  # fmt: skip
        return node.model_copy(update={"sub_tasks": [go(c, depth + 1) for c in node.sub_tasks]})

    return go(root, 1)
