"""Grade a submission against a task's rubric: leaves concurrently, cached, assembled into PaperBench's output shape.

Output (`GRADE.json`): `judge_type`, `model_name`, `score`, `num_leaf_nodes`, `num_invalid_leaf_nodes`, `graded_at`,
`graded_task_tree` (the graded tree, PaperBench's judge-output shape, per-leaf token usage in `judge_metadata`) and
`token_usage` (totals), plus `klong` (cache hits, model calls, the rubric variant, disqualification).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from klong.io import atomic_write_json
from klong.judge.base import JudgeConfig, LeafContext, LeafGrade, LeafJudge
from klong.judge.cache import JudgeCache
from klong.judge.submission import Submission
from klong.rubric.graded import GradedNode, graded_from_rubric
from klong.rubric.transforms import code_only, prune_to_depth, resources_provided
from klong.rubric.tree import RubricNode, parse_rubric
from klong.task import Task


def make_judge(
    spec: str, model_config=None, judge_config: JudgeConfig | None = None, sandbox: str = "local"
) -> LeafJudge:
    """`check` for programmatic leaves, or a model spec (`openai:...`, `hf:...`, `scripted:...`) behind SimpleJudge."""
    if spec == "check":
        from klong.judge.check import CheckJudge

        return CheckJudge(sandbox)
    from klong.judge.simple import SimpleJudge
    from klong.models import load_model

    return SimpleJudge(load_model(spec, model_config), judge_config)


def grading_rubric(
    task: Task, *, code_only_: bool = False, resources: bool = False, max_depth: int | None = None
) -> RubricNode:
    rubric = parse_rubric(task.rubric, (task.path or Path(task.id)) / "rubric.json", strict=False)
    if code_only_:
        rubric = code_only(rubric)
    if resources:
        rubric = resources_provided(rubric)
    if max_depth is not None:
        rubric = prune_to_depth(rubric, max_depth)
    return rubric


def _contexts(rubric: RubricNode, submission: Submission, task: Task) -> list[LeafContext]:
    out: list[LeafContext] = []

    def go(node: RubricNode, path: str, ancestors: list[str]) -> None:
        if node.is_leaf:
            out.append(LeafContext(path, node, ancestors, submission, task))
        for child in node.sub_tasks:
            go(child, f"{path}/{child.id}", [*ancestors, node.requirements])

    go(rubric, rubric.id, [])
    return out


async def grade_submission(
    submission_dir: str | Path,
    task: Task,
    judge: LeafJudge,
    *,
    code_only_: bool = False,
    resources: bool = False,
    max_depth: int | None = None,
    concurrency: int = 8,
    cache: JudgeCache | None = None,
    disqualified: str | None = None,
) -> dict[str, Any]:
    """Grade and return the judge output (see the module doc). `disqualified` (e.g. a blacklist violation) scores
    every leaf 0 without grading."""
    rubric = grading_rubric(task, code_only_=code_only_, resources=resources, max_depth=max_depth)
    submission = Submission(submission_dir)
    contexts = _contexts(rubric, submission, task)
    settings = getattr(judge, "config", None)
    settings_key = settings.model_dump_json() if settings is not None else ""
    semaphore = asyncio.Semaphore(max(1, concurrency))
    calls = 0
    started = time.monotonic()

    async def one(ctx: LeafContext) -> tuple[str, LeafGrade]:
        nonlocal calls
        if disqualified:
            return ctx.path, LeafGrade(0.0, True, f"disqualified: {disqualified}")
        key = JudgeCache.key(judge.name, settings_key, ctx) if cache is not None and judge.cacheable else None
        if key is not None and (hit := cache.get(key)) is not None:
            hit.metadata = {**hit.metadata, "cached": True}
            return ctx.path, hit
        async with semaphore:
            grade = await judge.grade_leaf(ctx)
        calls += grade.usage.get("calls", 0)
        if key is not None and grade.valid:
            cache.put(key, grade)
        return ctx.path, grade

    results = dict(await asyncio.gather(*(one(c) for c in contexts)))
    leaves: dict[str, GradedNode] = {}
    for ctx in contexts:
        g = results[ctx.path]
        n = ctx.node
        leaves[ctx.path] = GradedNode(id=n.id, requirements=n.requirements, weight=n.weight, score=g.score,
                                      valid_score=g.valid, task_category=n.task_category,
                                      finegrained_task_category=n.finegrained_task_category, explanation=g.explanation,
                                      judge_metadata={"token_usage": g.usage, **g.metadata})  # fmt: skip
    tree = graded_from_rubric(rubric, leaves)
    usage = {k: sum(results[c.path].usage.get(k, 0) for c in contexts) for k in ("prompt_tokens", "completion_tokens")}
    return {
        "judge_type": "check" if judge.name == "check" else "simple",
        "model_name": judge.name,
        "score": tree.score,
        "num_leaf_nodes": len(contexts),
        "num_invalid_leaf_nodes": sum(1 for c in contexts if not results[c.path].valid),
        "graded_at": datetime.now(UTC).isoformat(),
        "graded_task_tree": tree.to_json(),
        "token_usage": {**usage, "total_tokens": sum(usage.values())},
        "klong": {
            "task_id": task.id, "submission": str(Path(submission_dir).resolve()), "submission_digest": submission.digest,
            "model_calls": calls, "cache_hits": cache.hits if cache is not None else 0, "code_only": code_only_,
            "resources_provided": resources, "max_depth": max_depth, "disqualified": disqualified,
            "seconds": round(time.monotonic() - started, 3),
        },
    }  # fmt: skip


def write_grade(path: str | Path, grade: dict[str, Any]) -> None:
    atomic_write_json(path, grade, indent=2)
