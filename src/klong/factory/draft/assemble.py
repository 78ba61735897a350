"""Build the PaperBench rubric tree in code from the skeleton and the drafted subtrees.

- Node ids are uuid4s drawn from an RNG seeded with the paper (the same draft always gets the same ids).
- Inner nodes with a single child are collapsed (a single leaf replaces its parent, keeping the parent's weight; a
  single inner child hands its children up), since PaperBench's rubrics have none.
- Categories only on leaves (the schemas enforce it); every node gets weight 1 until `apply_weights`.
- Each leaf's grounding (quote and source) is returned separately, keyed by leaf id: it goes to the sidecar, never
  into `rubric.json`.

Nodes are numbered in an outline ("2.1.3": the third child of the first child of the root's second child), which is how
the weights and review steps refer to them.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable
from typing import Any

from klong.factory.draft.schemas import DraftNode, Skeleton, Subtree

Node = dict[str, Any]
_ABBREV = {"Code Development": "CD", "Code Execution": "CE", "Result Analysis": "RA"}


def _node(requirements: str, children: list[Node], leaf: DraftNode | None = None) -> Node:
    node: Node = {"id": "", "requirements": requirements, "weight": 1, "sub_tasks": children,
                  "task_category": None, "finegrained_task_category": None}  # fmt: skip
    if leaf is not None:
        node["task_category"] = leaf.task_category
        node["finegrained_task_category"] = leaf.finegrained_task_category
        node["_grounding"] = {"quote": leaf.quote or "", "source": leaf.source or "paper"}
    return node


def _from_draft(d: DraftNode) -> Node:
    if not d.sub_tasks:
        return _node(d.requirements, [], d)
    return _node(d.requirements, [_from_draft(c) for c in d.sub_tasks])


def collapse(node: Node) -> Node:
    """Collapse single-child inner nodes, bottom-up (in place; returns the node)."""
    node["sub_tasks"] = [collapse(c) for c in node["sub_tasks"]]
    while len(node["sub_tasks"]) == 1:
        (child,) = node["sub_tasks"]
        if child["sub_tasks"]:
            node["sub_tasks"] = child["sub_tasks"]
        else:
            weight = node["weight"]
            node.clear()
            node.update({**child, "weight": weight})
    return node


def walk(node: Node, number: str = "") -> Iterable[tuple[str, Node]]:
    """(outline number, node) for every node, depth-first; the root's number is ""."""
    yield number, node
    for i, child in enumerate(node["sub_tasks"], 1):
        yield from walk(child, f"{number}.{i}" if number else str(i))


def assign_ids(root: Node, seed: str) -> None:
    rng = random.Random(seed)
    for _, node in walk(root):
        node["id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_tree(title: str, skeleton: Skeleton, subtrees: list[Subtree], *, seed: str) -> Node:
    """The working tree (PaperBench nodes carrying `_grounding` on leaves); see `finalize`."""
    children = []
    for sk, sub in zip(skeleton.children, subtrees, strict=True):
        children.append(_node(sk.requirements, [_from_draft(d) for d in sub.sub_tasks]))
    root = collapse(_node(f'The paper "{title}" has been reproduced.', children))
    assign_ids(root, seed)
    return root


def replace_subtree(root: Node, index: int, subtree: Subtree, seed: str) -> None:
    """Put a repaired subtree under the root's `index`-th child (1-based) and re-collapse; ids are redrawn."""
    child = root["sub_tasks"][index - 1]
    child["sub_tasks"] = [_from_draft(d) for d in subtree.sub_tasks]
    if not child.get("sub_tasks"):
        return
    child["task_category"] = child["finegrained_task_category"] = None
    child.pop("_grounding", None)
    collapse(root)
    assign_ids(root, seed)


def outline(root: Node, *, leaves: bool = True) -> str:
    """One line per node: number, category (leaves), weight when not 1, requirements."""
    lines = []
    for number, node in walk(root):
        if not number or (node["sub_tasks"] == [] and not leaves):
            continue
        indent = "  " * number.count(".")
        tag = f" [{_ABBREV.get(node['task_category'], '?')}]" if not node["sub_tasks"] else ""
        weight = f" (weight {node['weight']})" if node["weight"] != 1 else ""
        lines.append(f"{indent}{number}{tag}{weight} {node['requirements']}")
    return "\n".join(lines)


def apply_weights(root: Node, weights: dict[str, int]) -> list[str]:
    """Set the weights named by outline number; returns the numbers that name no node (reported, ignored). A
    sibling group left all at zero gets its weights back to 1."""
    by_number = dict(walk(root))
    unknown = [n for n in weights if n not in by_number or n == ""]
    for number, w in weights.items():
        if number in by_number and number:
            by_number[number]["weight"] = w
    for _, node in walk(root):
        if node["sub_tasks"] and all(c["weight"] == 0 for c in node["sub_tasks"]):
            for c in node["sub_tasks"]:
                c["weight"] = 1
    return unknown


def finalize(root: Node) -> tuple[Node, dict[str, dict[str, str]]]:
    """(rubric.json content, grounding per leaf id): the private `_grounding` keys are moved out of the tree."""
    grounding: dict[str, dict[str, str]] = {}

    def clean(node: Node) -> Node:
        if "_grounding" in node:
            grounding[node["id"]] = {**node["_grounding"], "requirements": node["requirements"]}
        return {"id": node["id"], "requirements": node["requirements"], "weight": node["weight"],
                "sub_tasks": [clean(c) for c in node["sub_tasks"]], "task_category": node["task_category"],
                "finegrained_task_category": node["finegrained_task_category"]}  # fmt: skip

    return clean(root), grounding


def drop_leaves(rubric: Node, leaf_ids: set[str]) -> Node:
    """A copy of a rubric without the given leaves; inner nodes left empty are removed and single-child nodes
    collapsed (ids kept). The root is kept even when every leaf goes."""

    def go(node: Node) -> Node | None:
        if not node["sub_tasks"]:
            return None if node["id"] in leaf_ids else dict(node)
        kids = [k for k in (go(c) for c in node["sub_tasks"]) if k is not None]
        return {**node, "sub_tasks": kids} if kids else None

    out = go(rubric) or {**rubric, "sub_tasks": []}
    return collapse(out)
