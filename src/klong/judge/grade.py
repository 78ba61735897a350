"""Grade a submission against a task's rubric: leaves concurrently, cached, assembled into PaperBench's output shape.

Output (`GRADE.json`), PaperBench's `JudgeOutput` (project/paperbench/paperbench/grade.py) as its `to_dict` writes it:
`judge_type`, `score`, `num_leaf_nodes`, `num_invalid_leaf_nodes`, `graded_at`, `graded_task_tree` (PaperBench's
`GradedTaskNode` tree; each leaf's `judge_metadata` holds `full_judge_response` and `token_usage`), `completer_config`
(model and sampling, the fields of PaperBench's `OpenAICompletionsTurnCompleter.Config`) and `token_usage`
(`{model: {"in": N, "out": N}}`, PaperBench's `TokenUsage`; null for the check judge). klong's extras, which
PaperBench's `from_dict` ignores: `model_name`, each node's `finegrained_task_category`, `judge_metadata.klong` (model
calls, files shown, cached) and the top-level `klong` (task, submission digest, model calls, cache hits, rubric variant,
disqualification, the judge's identity).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from klong.io import atomic_write_json
from klong.judge.base import JudgeConfig, LeafContext, LeafGrade, LeafJudge, Usage, add_usage
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


def _contexts(rubric: RubricNode, submission: Submission, task: Task, code_only_: bool) -> list[LeafContext]:
    """One context per leaf; `ancestors` are the requirements PaperBench's `get_prior_nodes` picks: the root, then
    on the way down each node's earlier siblings and the node itself, and the leaf's own earlier siblings."""
    out: list[LeafContext] = []

    def go(node: RubricNode, path: str, before: list[str]) -> None:
        if node.is_leaf:
            out.append(LeafContext(path, node, before, submission, task, code_only_))
        inside = [*before, node.requirements]
        for i, child in enumerate(node.sub_tasks):
            go(child, f"{path}/{child.id}", [*inside, *(s.requirements for s in node.sub_tasks[:i])])

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
    on_leaf: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Grade and return the judge output (see the module doc). `disqualified` (e.g. a blacklist violation) scores
    every leaf 0 without grading. `on_leaf(total)` is called as each leaf is done (progress bars)."""
    rubric = grading_rubric(task, code_only_=code_only_, resources=resources, max_depth=max_depth)
    submission = Submission(submission_dir)
    contexts = _contexts(rubric, submission, task, code_only_)
    use_cache = cache is not None and judge.cacheable and not disqualified
    judge_type = getattr(judge, "judge_type", "simple")
    identity = judge.identity() if use_cache else {}
    semaphore = asyncio.Semaphore(max(1, concurrency))
    calls = hits = 0
    started = time.monotonic()

    async def one(ctx: LeafContext) -> tuple[str, LeafGrade]:
        nonlocal calls, hits
        try:
            if disqualified:
                return ctx.path, LeafGrade(0.0, True, f"Submission has been disqualified: {disqualified}")
            key = JudgeCache.key(identity, ctx) if use_cache else None
            if key is not None and (hit := cache.get(key)) is not None:
                hit.metadata = {**hit.metadata, "klong": {**hit.metadata.get("klong", {}), "cached": True}}
                hit.calls = 0
                hits += 1
                return ctx.path, hit
            async with semaphore:
                grade = await judge.grade_leaf(ctx)
            calls += grade.calls
            if key is not None and grade.valid:
                cache.put(key, grade)
            return ctx.path, grade
        finally:
            if on_leaf is not None:
                on_leaf(len(contexts))

    results = dict(await asyncio.gather(*(one(c) for c in contexts)))
    leaves: dict[str, GradedNode] = {}
    total: Usage = {}
    for ctx in contexts:
        g = results[ctx.path]
        n = ctx.node
        for model, u in g.usage.items():
            add_usage(total, model, u.get("in", 0), u.get("out", 0))
        extra = dict(g.metadata)
        klong_meta = {"calls": g.calls, **extra.pop("klong", {})}
        meta = {**extra, "token_usage": g.usage, "klong": klong_meta}
        leaves[ctx.path] = GradedNode(id=n.id, requirements=n.requirements, weight=n.weight, score=g.score,
                                      valid_score=g.valid, task_category=n.task_category,
                                      finegrained_task_category=n.finegrained_task_category, explanation=g.explanation,
                                      judge_metadata=meta)  # fmt: skip
    tree = graded_from_rubric(rubric, leaves)
    completer = getattr(judge, "completer_config", None)
    model_judge = judge_type == "simple"
    return {
        "judge_type": judge_type,
        "model_name": judge.name,
        "score": tree.score,
        "num_leaf_nodes": len(contexts),
        "num_invalid_leaf_nodes": sum(1 for c in contexts if not results[c.path].valid),
        "graded_at": datetime.now(UTC).isoformat(),
        "graded_task_tree": tree.to_json(),
        "completer_config": completer() if completer is not None else None,
        "token_usage": total if model_judge else None,
        "klong": {
            "task_id": task.id, "submission": str(Path(submission_dir).resolve()), "submission_digest": submission.digest,
            "model_calls": calls, "cache_hits": hits,
            "prompt_tokens": sum(u["in"] for u in total.values()),
            "completion_tokens": sum(u["out"] for u in total.values()),
            "code_only": code_only_, "resources_provided": resources, "max_depth": max_depth,
            "disqualified": disqualified, "seconds": round(time.monotonic() - started, 3),
            "judge": judge.identity() if model_judge else {"judge_type": judge_type},
        },
    }  # fmt: skip


def write_grade(path: str | Path, grade: dict[str, Any]) -> None:
    atomic_write_json(path, grade, indent=2)
