"""The contrast check: grade three submissions built from a task with the training judge, leaf by leaf.

- `official`: a copy of the official code (when there is one), graded in Code-Dev mode: it should pass most Code
  Development leaves; a leaf it fails is wrong, or not checkable from code.
- `scaffold`: a README and a `reproduce.sh` that does nothing, graded in Code-Dev mode: it should pass nothing; a leaf
  it passes checks nothing.
- `numbers_only`: a repository whose `reproduce.sh` prints the paper's numbers (its tables and every main-text
  sentence with a number), reproduced, then graded on the Result Analysis leaves: it must pass none; a leaf it passes
  rewards copying the paper.

Per-leaf outcomes are recorded; failing leaves are dropped (`policy: drop`) or only reported (`policy: report`, where
any failure fails the check). The official code must pass at least `min_official_share` of the Code Development leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from klong.factory.gates import PAPER_LOCATOR, main_text
from klong.io import atomic_write_text
from klong.judge.grade import grade_submission, make_judge
from klong.judge.reproduce import reproduce
from klong.rubric.graded import GradedNode
from klong.rubric.transforms import filter_leaves
from klong.rubric.tree import RubricError, parse_rubric
from klong.task import Task

SCAFFOLD_README = "# Submission\n\nReplication in progress: nothing has been implemented yet.\n"
NOOP_REPRODUCE = "#!/usr/bin/env bash\n# nothing to run yet\nexit 0\n"
NUMBERS_REPRODUCE = (
    "#!/usr/bin/env bash\nmkdir -p outputs\ncat results.md | tee outputs/results.md\n"  # a results file made by the run
)


class ContrastConfig(BaseModel):
    """The `contrast` part of the `check:` config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    judge: str = "fake"
    """The training judge: `openai:NAME` (e.g. gpt-oss-120b behind vLLM), or `fake` (the built-in rule-based judge)."""
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    min_official_share: float = 0.5
    """Share of Code Development leaves the official code must pass (when the paper has official code)."""
    max_scaffold_score: float = 0.1
    """`policy: report`: the most the empty scaffold may score."""
    policy: Literal["drop", "report"] = "drop"
    sandbox: str = "local"
    reproduce_timeout: float = 300.0
    cache_dir: str | None = None
    """Judge cache folder (reruns of an unchanged check make no model calls); none: no cache."""


def numbers_text(paper: str) -> str:
    """The paper's numbers as a numbers-only repository would print them: tables and sentences with numbers."""
    lines = []
    for line in main_text(paper).splitlines():
        s = line.strip()
        numeric = any(ch.isdigit() for ch in s) and (PAPER_LOCATOR.search(s) or "%" in s or "." in s)
        if (s.startswith("|") or numeric) and not s.startswith("#"):
            lines.append(s)
    return "# Results\n\n" + "\n".join(lines) + "\n"


def build_submissions(task: Task, code_dir: str | Path | None, out: str | Path) -> dict[str, Path]:
    """Write the three contrast submissions under `out` (fresh); `official` only when there is code."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    subs: dict[str, Path] = {}
    if code_dir is not None and Path(code_dir).is_dir():
        subs["official"] = out / "official"
        shutil.copytree(code_dir, subs["official"], symlinks=True, ignore=shutil.ignore_patterns(".git"))
    subs["scaffold"] = out / "scaffold"
    atomic_write_text(subs["scaffold"] / "README.md", SCAFFOLD_README)
    atomic_write_text(subs["scaffold"] / "reproduce.sh", NOOP_REPRODUCE)
    subs["numbers_only"] = out / "numbers_only"
    atomic_write_text(subs["numbers_only"] / "README.md", "# Submission\n\nThe results of the paper.\n")
    atomic_write_text(subs["numbers_only"] / "results.md", numbers_text(task.paper))
    atomic_write_text(subs["numbers_only"] / "reproduce.sh", NUMBERS_REPRODUCE)
    return subs


@contextlib.contextmanager
def training_judge(config: ContrastConfig) -> Iterator[Callable[[], Any]]:
    """A factory of leaf judges (one per event loop: make a fresh one inside each `asyncio.run`); for `fake`, the
    rule-based judge served on 127.0.0.1 meanwhile."""
    from klong.models.config import ModelConfig

    if config.judge != "fake":
        settings = ModelConfig(base_url=config.base_url, api_key_env=config.api_key_env, temperature=0.0)
        yield lambda: make_judge(config.judge, settings, sandbox=config.sandbox)
        return
    from klong.factory.fake_drafter import FakeDrafter
    from klong.models.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(FakeDrafter(), model="fake-judge") as server:
        settings = ModelConfig(base_url=server.base_url, temperature=0.0, max_retries=2)
        yield lambda: make_judge("openai:fake-judge", settings)


def _leaf_scores(grade: dict[str, Any]) -> dict[str, dict[str, Any]]:
    tree = GradedNode.model_validate(grade["graded_task_tree"])
    return {p: {"score": n.score, "valid": n.valid_score, "category": n.task_category} for p, n in tree.leaves()}


async def run_contrast(task: Task, code_dir: str | Path | None, workdir: str | Path, judge: Any,
                       config: ContrastConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """Grade the contrast submissions; returns the report: scores, per-leaf outcomes (by node path), failing leaves
    with their reasons, and `passed` with its reasons (before any policy is applied)."""
    c = config or ContrastConfig()
    workdir = Path(workdir)
    subs = build_submissions(task, code_dir, workdir / "submissions")
    cache = None
    if c.cache_dir:
        from klong.judge.cache import JudgeCache

        cache = JudgeCache(c.cache_dir)
    rubric = parse_rubric(task.rubric, "rubric.json", strict=False)
    leaves = {p: n for p, n in rubric.leaves()}
    outcomes: dict[str, dict[str, Any]] = {p: {"category": n.task_category} for p, n in leaves.items()}
    scores: dict[str, float | None] = {}

    async def grade(name: str, sub: Path, t: Task, code_only: bool) -> None:
        g = await grade_submission(sub, t, judge, code_only_=code_only, concurrency=c.concurrency, cache=cache)
        scores[name] = g["score"]
        for path, s in _leaf_scores(g).items():
            outcomes[path][name] = s["score"] if s["valid"] else None

    jobs = []
    if "official" in subs:
        jobs.append(grade("official", subs["official"], task, True))
    jobs.append(grade("scaffold", subs["scaffold"], task, True))
    try:
        results_only = filter_leaves(rubric, lambda n: n.task_category == "Result Analysis", "results-only")
    except RubricError:
        results_only = None
    if results_only is not None:
        reproduced = workdir / "submissions" / "numbers_only.reproduced"
        await reproduce(
            subs["numbers_only"], reproduced, sandbox=c.sandbox, timeout=c.reproduce_timeout, overwrite=True
        )
        jobs.append(
            grade("numbers_only", reproduced, task.model_copy(update={"rubric": results_only.to_json()}), False)
        )
    await asyncio.gather(*jobs)
    failing: list[dict[str, str]] = []
    for path, o in outcomes.items():
        reason = None
        if o["category"] == "Code Development" and o.get("official") == 0.0:
            reason = "the official code fails it"
        elif o["category"] == "Code Development" and o.get("scaffold") == 1.0:
            reason = "the empty scaffold passes it"
        elif o["category"] == "Result Analysis" and o.get("numbers_only") == 1.0:
            reason = "a repository that only prints the paper's numbers passes it"
        if reason:
            failing.append({"id": path.rsplit("/", 1)[-1], "path": path, "requirements": leaves[path].requirements,
                            "reason": reason})  # fmt: skip
    dev = [o for o in outcomes.values() if o["category"] == "Code Development"]
    official_share = (
        (sum(1 for o in dev if o.get("official") == 1.0) / len(dev)) if dev and "official" in subs else None
    )
    reasons = []
    if official_share is not None and official_share < c.min_official_share:
        reasons.append(f"the official code passes only {official_share:.0%} of the Code Development leaves "
                       f"(at least {c.min_official_share:.0%} needed)")  # fmt: skip
    numbers_passes = sum(1 for o in outcomes.values() if o.get("numbers_only") == 1.0)
    if c.policy == "report":
        if (scores.get("scaffold") or 0.0) > c.max_scaffold_score:
            reasons.append(
                f"the empty scaffold scores {scores['scaffold']:.2f} (at most {c.max_scaffold_score} allowed)"
            )
        if numbers_passes:
            reasons.append(f"a numbers-only repository passes {numbers_passes} Result Analysis leaves")
    return {"scores": scores, "official_code": "official" in subs, "official_dev_share": official_share,
            "numbers_only_result_passes": numbers_passes,
            "invalid_outcomes": sum(1 for o in outcomes.values() for k in ("official", "scaffold", "numbers_only")
                                    if k in o and o[k] is None),
            "failing_leaves": failing, "per_leaf": outcomes, "passed": not reasons, "reasons": reasons}  # fmt: skip
