"""The `Benchmark` seam: tasks in, a prepared workspace and sandbox per episode, a grade per finished run, the
benchmark's own output files at the end.

`klong.eval.driver.run_benchmark` runs any `Benchmark`: the episodes through `klong.rollout.runner.run_rollouts` (so
a benchmark run is a klong run dir: resumable, concurrent, exported and trained on like any other), each finished run
graded as it finishes, then `results.json`, `results.md` and `results.png` (`klong.eval.results`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from klong.rollout.runner import RunSummary
from klong.sandbox import SandboxConfig
from klong.task import Task


class Reference(BaseModel):
    """A published figure shown beside the results (never mixed into them)."""

    label: str
    """Who and what, e.g. `KLong 106B (splitting SFT)`."""
    value: float
    """In the unit of the primary metric (a fraction: 0.5592 for 55.92%)."""
    source: str
    """Where the figure is published."""
    setting: str = ""
    """The variant it was measured on (e.g. `full`, `code-dev`): shown only beside results of that variant."""


NOT_EVALUATED = "not evaluated"


class TaskResult(BaseModel):
    """One graded run. `score` is the benchmark's primary metric in [0, 1] (None: the run could not be graded)."""

    run_id: str
    task_id: str
    attempt: int
    score: float | None
    metrics: dict[str, float | bool | int | str | None] = Field(default_factory=dict)
    """The benchmark's other per-run figures (PaperBench: invalid leaves; SWE-bench: tests passed; MLE-bench: the
    competition score, medals)."""
    status: str = "graded"
    """`graded`, `not evaluated` (only the benchmark's outputs were written: SWE-bench patches without a harness
    run; left out of the figures), or `error: ...` (this run only; the others are graded; counted as 0)."""
    grader: str
    """What graded it (`paperbench-simplejudge`, `swebench-harness`, `local-tests (not the official harness)`, ...)."""
    official: bool
    """True when the benchmark's own tooling produced the grade."""
    files: dict[str, str] = Field(default_factory=dict)
    """The run's output files in the benchmark's own format, relative to the run dir."""
    summary: dict[str, Any] = Field(default_factory=dict)
    """The run's summary line when it was graded: a run done again (--resume after a failure) is graded again."""


@runtime_checkable
class Benchmark(Protocol):
    name: str
    """`paperbench`, `swebench`, `mlebench`: the results' title and the folder of its own outputs."""
    metric: str
    """What `TaskResult.score` is (`score`, `resolved`, `any_medal`)."""
    setting: str
    """The variant being run (PaperBench: `full` or `code-dev`), recorded in the results."""
    references: list[Reference]

    def tasks(self) -> list[Task]:
        """The tasks to run, checked: a bad input is an error before anything is written."""

    def agent_defaults(self) -> dict[str, Any]:
        """The benchmark's agent settings over klong's defaults (time limit, task message...); `-c` and flags still
        override them."""

    async def prepare(self, task: Task, workspace: Path) -> None:
        """Fill a fresh workspace (the runtime adds `paper/` and `submission/` afterwards)."""

    def sandbox_config(self, task: Task, config: SandboxConfig) -> SandboxConfig:
        """The task's sandbox settings (the runtime already hides the run dir and the task dir)."""

    async def grade(self, run: RunSummary, task: Task, out_dir: Path) -> TaskResult:
        """Grade one finished run; raise `KlongError` for a run that cannot be graded (recorded as its status)."""

    def finalize(self, out_dir: Path, results: list[TaskResult]) -> dict[str, str]:
        """Write the benchmark's own aggregate files (`preds.jsonl`, a PaperBench run group...); returns them by
        name, relative to the run dir. (A benchmark may also define `setup(config: AgentConfig)`, called first with
        the run's agent config (sandbox settings for a grading step), and `async close()`, awaited before
        `finalize` while the event loop still runs: a judge's HTTP client is closed there.)"""


def meta(run: RunSummary) -> dict[str, Any]:
    """The identity of a finished run as its result records it."""
    return run.model_dump(include={"run_id", "stop_reason", "assistant_turns", "tool_calls", "wall_time",
                                   "completion_tokens"})  # fmt: skip
