"""Run many episodes: tasks x attempts, at most `concurrency` at a time.

Run dir layout: `config.yaml`, `meta.json`, `trajectories/<run>.json`, `workspaces/<run>/{paper,submission}`,
`summaries.jsonl` (one line per finished run). A finished run is skipped unless `redo`; an unfinished one (a killed
process) is continued with `resume`, otherwise reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from klong.agent.config import AgentConfig
from klong.agent.loop import OnUpdate
from klong.agent.tools import submission_files
from klong.agent.workspace import Workspace
from klong.exceptions import KlongError, StopReason
from klong.io import append_jsonl, atomic_write_text, iter_jsonl
from klong.protocols import Model
from klong.redact import redact
from klong.rollout.executor import EpisodeJob, Executor, LocalExecutor
from klong.sandbox import SandboxConfig
from klong.schema import Trajectory, read_trajectory
from klong.task import Task


class RunSummary(BaseModel):
    run_id: str
    task_id: str
    attempt: int
    model: str | None
    sandbox: str | None
    stop_reason: str | None
    stop_detail: str | None = None
    assistant_turns: int
    tool_calls: int
    wall_time: float
    virtual_time: float | None = None
    prompt_tokens: int
    completion_tokens: int
    submission_files: int
    blacklist_violations: int
    trajectory: str
    workspace: str


def run_id_for(task: Task, attempt: int) -> str:
    return f"{task.id}__a{attempt}"


def summarize(traj: Trajectory, attempt: int, out_dir: Path, workspace: Path) -> RunSummary:
    usage = [m.usage for m in traj.messages if m.usage is not None]
    monitor = traj.meta.get("monitor", {})
    return RunSummary(
        run_id=traj.id, task_id=traj.task_id or "", attempt=attempt, model=traj.model, sandbox=traj.sandbox,
        stop_reason=traj.stop_reason.value if traj.stop_reason else None, stop_detail=redact(traj.stop_detail),
        assistant_turns=traj.assistant_turns(), tool_calls=traj.tool_call_count(), wall_time=traj.wall_time,
        virtual_time=traj.virtual_time, prompt_tokens=sum(u.prompt_tokens for u in usage),
        completion_tokens=sum(u.completion_tokens for u in usage),
        submission_files=len(submission_files(Workspace(workspace, str(workspace)))),
        blacklist_violations=len(monitor.get("blacklist_violations", [])),
        trajectory=str((out_dir / "trajectories" / f"{traj.id}.json").relative_to(out_dir)),
        workspace=str(workspace.relative_to(out_dir)),
    )  # fmt: skip


def archive_run(out_dir: str | Path, run_id: str, folder: str = "failed") -> Path:
    """Move a run out of the way so that the next `run_rollouts` runs it again: its trajectory and workspace go to
    `<folder>/<run_id>.<k>/` (kept, never deleted: `failed/` for infrastructure failures RL re-runs, `replaced/` for
    `--redo`) and its summary line is dropped. Returns the archive folder."""
    out_dir = Path(out_dir)
    k = 0
    while (out_dir / folder / f"{run_id}.{k}").exists():
        k += 1
    dest = out_dir / folder / f"{run_id}.{k}"
    dest.mkdir(parents=True)
    traj = out_dir / "trajectories" / f"{run_id}.json"
    if traj.exists():
        os.replace(traj, dest / "trajectory.json")
    workspace = out_dir / "workspaces" / run_id
    if workspace.exists():
        os.replace(workspace, dest / "workspace")
    drop_summary(out_dir, run_id)
    return dest


def drop_summary(out_dir: str | Path, run_id: str) -> None:
    """Remove the run's line from `summaries.jsonl` (one line per run: it is written again when the run finishes)."""
    summaries = Path(out_dir) / "summaries.jsonl"
    if summaries.exists():
        kept = [json.dumps(obj) + "\n" for _, obj in iter_jsonl(summaries) if obj.get("run_id") != run_id]
        atomic_write_text(summaries, "".join(kept))


def read_summaries(out_dir: str | Path) -> list[RunSummary]:
    path = Path(out_dir) / "summaries.jsonl"
    return [RunSummary.model_validate(obj) for _, obj in iter_jsonl(path)] if path.exists() else []


async def run_rollouts(
    tasks: Sequence[Task],
    *,
    model_factory: Callable[[], Model],
    sandbox: str,
    config: AgentConfig,
    out_dir: str | Path,
    attempts: int = 1,
    concurrency: int = 4,
    resume: bool = False,
    redo: bool = False,
    tokenizer: Any = None,
    on_update: OnUpdate | None = None,
    prepare: Callable[[Task, Path], Awaitable[None]] | None = None,
    sandbox_for: Callable[[Task, SandboxConfig], SandboxConfig] | None = None,
    on_done: Callable[[RunSummary], Awaitable[None]] | None = None,
    executor: Executor | None = None,
) -> list[RunSummary]:
    """Run every (task, attempt); returns the summaries of the runs that finished in this call.

    A finished run is skipped, except that `resume` continues one that ended by an infrastructure failure (endpoint,
    sandbox: not the model's doing); an unfinished one (a killed process) is continued with `resume`; `redo` runs
    again, keeping the old trajectory and workspace under `replaced/`. `summaries.jsonl` holds one line per run.

    Benchmarks (`klong.eval`) hook in: `prepare(task, workspace)` fills a fresh workspace before the episode starts
    (a repository checkout, a competition's data; not called when a run is continued), `sandbox_for(task, config)`
    gives the task's own sandbox settings (an instance's image, paths to hide), and `on_done(summary)` is awaited as
    each run finishes (grading while other episodes still run). `executor` runs the episodes elsewhere (a
    `RayExecutor`: its workers make the models); by default they run in this process, a model each from
    `model_factory`, closed when every run is done."""
    out_dir = Path(out_dir).resolve()
    (out_dir / "trajectories").mkdir(parents=True, exist_ok=True)
    done = {s.run_id for s in read_summaries(out_dir)}
    semaphore = asyncio.Semaphore(max(1, concurrency))
    finished: list[RunSummary] = []
    errors: list[str] = []
    runner = executor if executor is not None else LocalExecutor(model_factory, tokenizer)

    async def one(task: Task, attempt: int) -> None:
        run_id = run_id_for(task, attempt)
        traj_path = out_dir / "trajectories" / f"{run_id}.json"
        workspace = out_dir / "workspaces" / run_id
        if traj_path.exists():
            previous = read_trajectory(traj_path)
            infra = previous.finished and previous.stop_reason.is_infrastructure
            if redo:
                archive_run(out_dir, run_id, "replaced")
            elif previous.finished and not (resume and infra):
                if run_id not in done:  # finished but killed before its summary line: write it now
                    summary = summarize(previous, attempt, out_dir, workspace)
                    append_jsonl(out_dir / "summaries.jsonl", summary.model_dump())
                return
            elif not previous.finished and not resume:
                errors.append(f"{traj_path}: unfinished run; continue it with --resume or start over with --redo")
                return
            elif infra:
                drop_summary(out_dir, run_id)
        async with semaphore:
            hidden = [str(out_dir), *([str(task.path.resolve())] if task.path else [])]
            sandbox_config = config.sandbox.model_copy(update={"hide_paths": [*config.sandbox.hide_paths, *hidden]})
            if sandbox_for is not None:
                sandbox_config = sandbox_for(task, sandbox_config)
            fresh = not traj_path.exists()
            if fresh and prepare is not None:
                if workspace.exists():  # a run killed while being prepared: prepare it again from nothing
                    shutil.rmtree(workspace)
                workspace.mkdir(parents=True)
                await prepare(task, workspace)
            job = EpisodeJob(task=task, run_id=run_id, trajectory=traj_path, workspace=workspace, sandbox=sandbox,
                             sandbox_config=sandbox_config, config=config, resume=not fresh,
                             give_prepared=fresh and prepare is not None)  # fmt: skip
            traj = await runner.run(job, on_update)
        if traj.finished:
            summary = summarize(traj, attempt, out_dir, workspace)
            append_jsonl(out_dir / "summaries.jsonl", summary.model_dump())
            finished.append(summary)
            if on_done is not None:
                await on_done(summary)

    try:
        outcomes = await asyncio.gather(*(one(task, a) for task in tasks for a in range(attempts)),
                                        return_exceptions=True)  # fmt: skip
    finally:
        if executor is None:  # made here: closed here (a caller's executor is the caller's to close)
            await runner.close()
    for outcome in outcomes:  # every run had its chance; now report what went wrong
        if isinstance(outcome, KlongError):
            errors.append(str(outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
    if errors:
        raise KlongError("; ".join(errors))
    return finished


__all__ = ["RunSummary", "StopReason", "archive_run", "drop_summary", "read_summaries", "run_id_for", "run_rollouts",
           "summarize"]  # fmt: skip
