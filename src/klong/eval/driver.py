"""Run a `Benchmark`: episodes, a grade per finished run (as it finishes, concurrently), the results files.

Run dir: a klong run dir (`config.yaml`, `meta.json`, `trajectories/`, `workspaces/`, `summaries.jsonl`) plus
`results/<run>.json` (one `TaskResult` per graded run), the benchmark's own files (`finalize`) and `results.json`,
`results.md`, `results.png`. Running the same command again continues: finished episodes are skipped, graded runs are
not graded again (unless `regrade`, or the run was done again), and the results are rebuilt from every graded run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from klong.agent.config import AgentConfig
from klong.agent.loop import OnUpdate
from klong.eval.benchmark import Benchmark, TaskResult, meta
from klong.eval.results import write_results
from klong.exceptions import InputFileError, KlongError
from klong.io import atomic_write_json, read_json
from klong.protocols import Model
from klong.redact import redact
from klong.rollout.runner import RunSummary, read_summaries, run_rollouts

RESULTS_DIR = "results"

OnGrade = Callable[[str, str], None]
"""`on_grade(run_id, status)`: `grading`, then `graded`, `skipped` or `error: ...` (progress display)."""


def result_path(out_dir: Path, run_id: str) -> Path:
    return out_dir / RESULTS_DIR / f"{run_id}.json"


def read_result(path: Path) -> TaskResult | None:
    try:
        return TaskResult.model_validate(read_json(path)) if path.is_file() else None
    except (InputFileError, ValueError):
        return None  # a torn or foreign file: graded again


async def run_benchmark(
    bench: Benchmark,
    *,
    model_factory: Callable[[], Model],
    sandbox: str,
    config: AgentConfig,
    out_dir: str | Path,
    attempts: int = 1,
    concurrency: int = 4,
    grade_concurrency: int = 4,
    resume: bool = False,
    redo: bool = False,
    regrade: bool = False,
    tokenizer: Any = None,
    on_update: OnUpdate | None = None,
    on_grade: OnGrade | None = None,
    extra: dict[str, Any] | None = None,
    executor: Any = None,
) -> dict[str, Any]:
    """Run, grade and write the results; returns `results.json`'s content. `extra` goes into it as given (the model
    spec, the split...)."""
    out_dir = Path(out_dir).resolve()
    if (setup := getattr(bench, "setup", None)) is not None:  # a benchmark that grades in a sandbox uses the agent's
        setup(config)
    tasks = {t.id: t for t in bench.tasks()}
    semaphore = asyncio.Semaphore(max(1, grade_concurrency))
    pending: dict[str, asyncio.Task] = {}
    fresh = regrade or redo
    regraded: set[str] = set()
    """Runs graded in this call (with `regrade`/`redo`, the ones whose old result no longer counts)."""

    async def grade(run: RunSummary) -> TaskResult | None:
        path = result_path(out_dir, run.run_id)
        old = None if fresh and run.run_id not in regraded else read_result(path)
        if old is not None and old.summary == meta(run):
            if on_grade is not None:
                on_grade(run.run_id, "skipped")
            return old
        task = tasks.get(run.task_id)
        if task is None:  # a run of a task no longer selected (another --split): kept, not graded
            return None
        async with semaphore:
            if on_grade is not None:
                on_grade(run.run_id, "grading")
            try:
                result = await bench.grade(run, task, out_dir)
            except KlongError as e:
                result = TaskResult(run_id=run.run_id, task_id=run.task_id, attempt=run.attempt, score=None,
                                    status=f"error: {redact(str(e))}", grader="none", official=False)  # fmt: skip
        result.summary = meta(run)
        atomic_write_json(path, result.model_dump(mode="json"), indent=2)
        regraded.add(run.run_id)
        if on_grade is not None:
            on_grade(run.run_id, result.status)
        return result

    async def on_done(run: RunSummary) -> None:
        pending[run.run_id] = asyncio.ensure_future(grade(run))

    (out_dir / RESULTS_DIR).mkdir(parents=True, exist_ok=True)
    rollout_error: KlongError | None = None
    try:
        await run_rollouts(list(tasks.values()), model_factory=model_factory, sandbox=sandbox, config=config,
                           out_dir=out_dir, attempts=attempts, concurrency=concurrency, resume=resume, redo=redo,
                           tokenizer=tokenizer, on_update=on_update, prepare=bench.prepare,
                           sandbox_for=bench.sandbox_config, on_done=on_done, executor=executor)  # fmt: skip
    except KlongError as e:  # some runs could not run (an unfinished one without --resume): grade the others
        rollout_error = e
    await asyncio.gather(*pending.values())
    selected = {(t, a) for t in tasks for a in range(attempts)}
    runs = [r for r in read_summaries(out_dir) if (r.task_id, r.attempt) in selected]
    graded = [r for r in await asyncio.gather(*(pending[r.run_id] if r.run_id in pending else grade(r) for r in runs))
              if r is not None]  # fmt: skip
    if (close := getattr(bench, "close", None)) is not None:  # a judge's HTTP client belongs to this event loop
        await close()
    files = bench.finalize(out_dir, graded)
    results = write_results(out_dir, bench, graded, tasks=list(tasks), attempts=attempts, files=files,
                            extra=extra or {})  # fmt: skip
    if rollout_error is not None:
        raise rollout_error
    return results
