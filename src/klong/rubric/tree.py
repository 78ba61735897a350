"""Rubric trees in PaperBench's `rubric.json` format.

Every node has six keys: `id`, `requirements`, `weight` (>= 0), `sub_tasks`, `task_category` and
`finegrained_task_category`; the categories are set on leaves and null on inner nodes. A leaf may also carry a klong
`check` (a command run against the submission, for programmatic grading of synthetic tasks); PaperBench's tools ignore
nothing else. Strict validation requires all six keys; lenient validation (PaperBench's own unit-test fixtures omit
`finegrained_task_category`) lets the two category keys be absent.

Node ids are not unique in every PaperBench rubric (two of them repeat ids), so nodes are addressed by their *path*:
the ids from the root, joined with `/`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from klong.exceptions import InputFileError, KlongError
from klong.io import read_json

TASK_CATEGORIES = ("Code Development", "Code Execution", "Result Analysis")
RUBRIC_KEYS = ("id", "requirements", "weight", "sub_tasks", "task_category", "finegrained_task_category")
EXTRA_KEYS = ("check",)


class RubricError(KlongError):
    """A rubric is malformed; the message names the file, the node path and the problem."""


class LeafCheck(BaseModel):
    """A programmatic leaf: `command` runs in the submission folder; exit status 0 means the criterion is met."""

    model_config = ConfigDict(extra="forbid")

    command: str
    """Bash command run with the submission folder as working directory."""
    timeout: float = 60.0
    """Seconds before the check is killed (counts as failed)."""
    needs_reproduction: bool = False
    """Run against the reproduced copy of the submission (after `reproduce.sh`)."""


class RubricNode(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    requirements: str
    weight: float = Field(ge=0)
    sub_tasks: list[RubricNode] = Field(default_factory=list)
    task_category: str | None = None
    finegrained_task_category: str | None = None
    check: LeafCheck | None = None

    @property
    def is_leaf(self) -> bool:
        return not self.sub_tasks

    def walk(self, path: str = "") -> Iterator[tuple[str, RubricNode, int]]:
        """Yield (path, node, depth) for every node, depth-first, the root at depth 1."""
        stack: list[tuple[str, RubricNode, int]] = [(path or self.id, self, 1)]
        while stack:
            p, node, depth = stack.pop()
            yield p, node, depth
            for child in reversed(node.sub_tasks):
                stack.append((f"{p}/{child.id}", child, depth + 1))

    def leaves(self) -> list[tuple[str, RubricNode]]:
        return [(p, n) for p, n, _ in self.walk() if n.is_leaf]

    def to_json(self) -> dict[str, Any]:
        """The node in PaperBench's layout (key order as PaperBench writes it; `check` only when set)."""
        out: dict[str, Any] = {"id": self.id, "requirements": self.requirements, "weight": _number(self.weight),
                               "sub_tasks": [c.to_json() for c in self.sub_tasks], "task_category": self.task_category,
                               "finegrained_task_category": self.finegrained_task_category}  # fmt: skip
        if self.check is not None:
            out["check"] = self.check.model_dump()
        return out


def _number(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _where(trail: list[str]) -> str:
    return " > ".join(["root", *trail])


def _check_node(raw: Any, trail: list[str], strict: bool, errors: list[str]) -> None:
    where = _where(trail)
    if not isinstance(raw, dict):
        errors.append(f"{where}: a node must be a JSON object, found {type(raw).__name__}")
        return
    required = RUBRIC_KEYS if strict else RUBRIC_KEYS[:4]
    missing = [k for k in required if k not in raw]
    unknown = [k for k in raw if k not in RUBRIC_KEYS and k not in EXTRA_KEYS]
    if missing:
        errors.append(f"{where}: missing key(s) {', '.join(missing)}")
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    if "id" in raw and (not isinstance(raw["id"], str) or not raw["id"]):
        errors.append(f"{where}: `id` must be a non-empty string")
    if "requirements" in raw and not isinstance(raw["requirements"], str):
        errors.append(f"{where}: `requirements` must be a string")
    weight = raw.get("weight")
    if "weight" in raw and (isinstance(weight, bool) or not isinstance(weight, int | float)):
        errors.append(f"{where}: `weight` must be a number, found {weight!r}")
    elif isinstance(weight, int | float) and weight < 0:
        errors.append(f"{where}: `weight` must be >= 0, found {weight}")
    subs = raw.get("sub_tasks", [])
    if not isinstance(subs, list):
        errors.append(f"{where}: `sub_tasks` must be a list")
        subs = []
    category = raw.get("task_category")
    fine = raw.get("finegrained_task_category")
    if subs:
        if category is not None or fine is not None:
            errors.append(f"{where}: an inner node must not have a task category (found {category or fine!r})")
        if raw.get("check") is not None:
            errors.append(f"{where}: only leaves may carry a `check`")
    else:
        if category not in TASK_CATEGORIES:
            errors.append(f"{where}: a leaf needs `task_category` in {list(TASK_CATEGORIES)}, found {category!r}")
        if fine is not None and not isinstance(fine, str):
            errors.append(f"{where}: `finegrained_task_category` must be a string or null")
    for i, child in enumerate(subs):
        label = f"sub_tasks[{i}]"
        if isinstance(child, dict) and isinstance(child.get("id"), str):
            label += f" ({child['id'][:8]})"
        _check_node(child, [*trail, label], strict, errors)


MAX_DEPTH = 50
"""Deepest rubric klong reads (PaperBench's are 4 to 8 levels deep); deeper is refused with a clear error rather than
walked until Python's recursion gives out."""


def rubric_depth(data: Any) -> int:
    """Levels of `sub_tasks` nesting, counted without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        subs = node.get("sub_tasks") if isinstance(node, dict) else None
        if isinstance(subs, list):
            stack.extend((child, depth + 1) for child in subs)
    return deepest


def parse_rubric(data: Any, source: str | Path = "<rubric>", *, strict: bool = True, limit: int = 10) -> RubricNode:
    """Validate a parsed rubric; all problems (up to `limit`) are reported at once, each with its node path."""
    if rubric_depth(data) > MAX_DEPTH:
        raise RubricError(f"{source}: invalid rubric: nested more than {MAX_DEPTH} levels deep")
    errors: list[str] = []
    _check_node(data, [], strict, errors)
    if errors:
        more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
        raise RubricError(f"{source}: invalid rubric: " + "; ".join(errors[:limit]) + more)
    return RubricNode.model_validate(data)


def load_rubric(path: str | Path, *, strict: bool = True) -> RubricNode:
    try:
        return parse_rubric(read_json(path), path, strict=strict)
    except InputFileError as e:
        raise RubricError(str(e)) from None


def rubric_stats(root: RubricNode) -> dict[str, Any]:
    nodes = list(root.walk())
    leaves = [n for _, n, _ in nodes if n.is_leaf]
    ids = Counter(n.id for _, n, _ in nodes)
    return {
        "nodes": len(nodes),
        "leaves": len(leaves),
        "max_depth": max(d for _, _, d in nodes),
        "leaves_per_task_category": dict(Counter(n.task_category for n in leaves).most_common()),
        "leaves_per_finegrained_category": dict(Counter(n.finegrained_task_category for n in leaves).most_common()),
        "weight_one_share": sum(1 for _, n, _ in nodes if n.weight == 1) / len(nodes),
        "single_child_inner_nodes": sum(1 for _, n, _ in nodes if len(n.sub_tasks) == 1),
        "root_children": len(root.sub_tasks),
        "duplicate_ids": sorted(i for i, c in ids.items() if c > 1),
        "checked_leaves": sum(1 for n in leaves if n.check is not None),
    }
