"""Grading a run dir: every finished episode's submission, into `RUN_DIR/grades/<run>.json`, resumably.

A run dir (`klong run`, `klong.rollout.runner`) holds `summaries.jsonl` (one line per finished episode: `run_id`,
`task_id`, `workspace`, `trajectory`), `trajectories/<run>.json` and `workspaces/<run>/submission`. An episode is
graded from `workspaces/<run>/submission.reproduced` when `klong reproduce` made one (so execution and result leaves
see the reproduction), else from `workspaces/<run>/submission`; a blacklist violation recorded in its trajectory
disqualifies it. A grade already written is kept (skipped) unless `redo`. Everything is checked before the first
grade is written: a missing task or submission is one error naming it, and nothing is graded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klong.exceptions import InputFileError, KlongError
from klong.io import iter_jsonl, read_json
from klong.judge.cache import JudgeCache
from klong.judge.grade import grade_submission, write_grade
from klong.task import CONFIG_FILE, RUBRIC_FILE, Task, read_task

SUMMARIES = "summaries.jsonl"


def is_run_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / SUMMARIES).is_file() or ((path / "trajectories").is_dir() and (path / "workspaces").is_dir())


def load_tasks(tasks_dir: str | Path) -> dict[str, Task]:
    """Tasks by id: `tasks_dir` itself when it is a task dir, else each of its folders that is one."""
    tasks_dir = Path(tasks_dir)
    if not tasks_dir.is_dir():
        raise InputFileError(tasks_dir, "--tasks: not a folder of task dirs")
    if (tasks_dir / CONFIG_FILE).is_file() and (tasks_dir / RUBRIC_FILE).is_file():
        task = read_task(tasks_dir)
        return {task.id: task}
    tasks = {}
    for child in sorted(p for p in tasks_dir.iterdir() if (p / CONFIG_FILE).is_file() and (p / RUBRIC_FILE).is_file()):
        task = read_task(child)
        tasks[task.id] = task
    if not tasks:
        raise InputFileError(tasks_dir, "--tasks: no task dir in it (folders with config.yaml and rubric.json)")
    return tasks


def blacklist_violation(trajectory: str | Path | None) -> str | None:
    """PaperBench's disqualification: the first blacklisted resource the run fetched, as recorded by the monitor."""
    if trajectory is None or not Path(trajectory).is_file():
        return None
    from klong.schema import read_trajectory

    violations = read_trajectory(trajectory).meta.get("monitor", {}).get("blacklist_violations", [])
    if not violations:
        return None
    return f"blacklisted resource fetched: {violations[0]['resource']} ({violations[0].get('line', '')})"


@dataclass
class EpisodeJob:
    run_id: str
    task: Task
    submission: Path
    trajectory: Path | None
    out: Path
    stop_reason: str | None


def plan(run_dir: str | Path, tasks: dict[str, Task], grades_dir: str | Path | None = None) -> list[EpisodeJob]:
    """The finished episodes of the run dir, each with its task and submission (see the module doc)."""
    run_dir = Path(run_dir).resolve()
    summaries = run_dir / SUMMARIES
    if not summaries.is_file():
        raise InputFileError(summaries, "missing: the run dir has no finished episode to grade")
    grades = Path(grades_dir) if grades_dir is not None else run_dir / "grades"
    jobs: dict[str, EpisodeJob] = {}
    problems: list[str] = []
    for line, row in iter_jsonl(summaries):
        if not isinstance(row, dict) or not isinstance(row.get("run_id"), str):
            raise InputFileError(summaries, f"line {line}: not an episode summary (no run_id)")
        run_id, task_id = row["run_id"], row.get("task_id") or ""
        workspace = run_dir / (row.get("workspace") or f"workspaces/{run_id}")
        submission = workspace / "submission"
        if (workspace / "submission.reproduced").is_dir():
            submission = workspace / "submission.reproduced"
        if task_id not in tasks:
            problems.append(f"{run_id}: task {task_id!r} is not in --tasks")
        elif not submission.is_dir():
            problems.append(f"{run_id}: no submission folder {submission}")
        else:
            trajectory = run_dir / row["trajectory"] if row.get("trajectory") else None
            jobs[run_id] = EpisodeJob(run_id, tasks[task_id], submission, trajectory, grades / f"{run_id}.json",
                                      row.get("stop_reason"))  # fmt: skip
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise KlongError(f"{summaries}: " + "; ".join(problems[:3]) + more + "; nothing was graded")
    return list(jobs.values())


def _row(job: EpisodeJob, grade: dict[str, Any], status: str) -> dict[str, Any]:
    k = grade.get("klong") or {}
    return {"run_id": job.run_id, "task_id": job.task.id, "stop_reason": job.stop_reason, "status": status,
            "score": grade.get("score"), "leaves": grade.get("num_leaf_nodes"),
            "invalid": grade.get("num_invalid_leaf_nodes"), "model_calls": k.get("model_calls", 0),
            "cache_hits": k.get("cache_hits", 0), "submission": str(job.submission), "out": str(job.out)}  # fmt: skip


async def grade_run(
    jobs: list[EpisodeJob],
    judge: Any,
    *,
    cache: JudgeCache | None = None,
    redo: bool = False,
    code_only_: bool = False,
    resources: bool = False,
    max_depth: int | None = None,
    concurrency: int = 8,
    on_episode: Callable[[EpisodeJob, str], None] | None = None,
    on_leaf: Callable[[int], None] | None = None,
    pool: Any = None,
) -> list[dict[str, Any]]:
    """Grade the jobs one after another (leaves concurrently), or, with a `pool` (`RayJudgePool`), as many at once as
    it has actors; returns one row per job, in the jobs' order: `status` is `graded`, `skipped` (a grade was there)
    or `error: ...` (that episode only; the others are still graded)."""
    options = {"code_only_": code_only_, "resources": resources, "max_depth": max_depth, "concurrency": concurrency}

    async def one(job: EpisodeJob) -> dict[str, Any]:
        if job.out.is_file() and not redo:
            try:
                existing = read_json(job.out)
            except InputFileError:
                existing = None
            if isinstance(existing, dict) and "graded_task_tree" in existing:
                if on_episode is not None:
                    on_episode(job, "skipped")
                return _row(job, existing, "skipped")
        if on_episode is not None:
            on_episode(job, "grading")
        disqualified = blacklist_violation(job.trajectory)
        try:
            if pool is not None:
                grade = await pool.grade(job.submission, job.task, disqualified=disqualified, **options)
            else:
                grade = await grade_submission(job.submission, job.task, judge, cache=cache,
                                               disqualified=disqualified, on_leaf=on_leaf, **options)  # fmt: skip
        except KlongError as e:
            row = {**_row(job, {}, f"error: {e}"), "score": None}
        else:
            grade["klong"]["run_id"] = job.run_id
            write_grade(job.out, grade)
            row = _row(job, grade, "graded")
        if on_episode is not None:
            on_episode(job, "done")
        return row

    if pool is not None:
        return list(await asyncio.gather(*(one(job) for job in jobs)))
    return [await one(job) for job in jobs]
