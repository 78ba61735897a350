"""Paper scale by simulation: 10,000 concurrent hour-long rollouts, the judge and the trainer, on a virtual clock.

What runs is klong's own scheduling code, not a copy: `RLTrainer._run` and `_iteration` (stages, the iteration
barrier, metrics), `RLTrainer._rollouts` and `klong.rollout.runner.run_rollouts` (the concurrency bound, trajectories
and summaries on disk, each finished rollout handed to the judge at once), and `klong.judge.queue.GradingQueue`
(a pool of judge workers, evaluation jobs first), all on `klong.rollout.virtual_time`'s event loop. Only the three
expensive things are simulated, by subclassing the trainer and giving it an executor:

- a rollout sleeps its duration (virtual seconds): a number of turns, each turn the model's time plus a tool call's
  time drawn from measured tool times (by default the `execution_time` of every turn of the shared SWE-agent
  trajectories, 40 turns; `--turn-times` takes klong trajectories instead: the time between their assistant turns),
  plus, with probability `--experiment-share`, a long experiment (lognormal, median `--experiment-median`). The
  stage's timeout cuts it there (a partial rollout, graded as it is: `StopReason.TIMEOUT`).
- grading a submission takes `ceil(leaves / leaf_concurrency)` judge calls of `--judge-latency` seconds each, the
  leaves drawn from the shared PaperBench rubrics (`--judge-workers` submissions at once);
- the policy update takes `--step-seconds`.

Schedules compared, on the same rollouts (every rollout's duration is drawn from its stage, iteration, task and
attempt, so all schedules see the same ones):

- `synchronous`: no timeouts (every rollout runs until it ends itself), the judge starts when the last rollout
  has finished, the trainer when the last grade is in.
- `synchronous + timeouts`: the stages' timeouts cut rollouts (partial rollouts graded), judging still after all.
- `klong`: timeouts and the judge grading each rollout as it finishes, beside those still running.

Printed: per schedule the run's length, trainer and judge busy time, idle shares; last the ratios of trainer idle time
and judge idle time, klong / synchronous and klong / synchronous + timeouts.

    python benchmarks/scale_sim.py                      # 10,000 rollouts per iteration, stages 2h/4h/6h
    python benchmarks/scale_sim.py --rollouts 200 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.shared import shared_path  # noqa: E402

from klong.exceptions import StopReason  # noqa: E402
from klong.io import atomic_write_json  # noqa: E402
from klong.rollout.executor import EpisodeJob  # noqa: E402
from klong.rollout.virtual_time import run_virtual  # noqa: E402
from klong.schema import Message, Trajectory, read_trajectory, write_trajectory  # noqa: E402
from klong.task import Task  # noqa: E402
from klong.train.common import MetricsLog  # noqa: E402
from klong.train.rl import RLTrainer  # noqa: E402
from klong.train.rl_config import RLConfig, Stage  # noqa: E402

NO_TIMEOUT = 10**9
"""The `synchronous` schedule's stage timeout: no rollout comes near it."""


# -- measured inputs -----------------------------------------------------------------------------------------------
def measured_tool_times(paths: list[Path]) -> list[float]:
    """Seconds per turn: SWE-agent `.traj` steps' `execution_time`, or the time between a klong trajectory's
    assistant turns (`Message.time`)."""
    times: list[float] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                data = json.loads(f.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(data, dict) and isinstance(data.get("trajectory"), list):
                times += [float(s["execution_time"]) for s in data["trajectory"]
                          if isinstance(s, dict) and isinstance(s.get("execution_time"), int | float)]  # fmt: skip
            elif isinstance(data, dict) and "messages" in data and "schema_version" in data:
                stamps = [m.time for m in read_trajectory(f).messages if m.role == "assistant" and m.time is not None]
                times += [b - a for a, b in itertools.pairwise(stamps) if b > a]
    return times


def rubric_leaves() -> list[int]:
    """Leaves per rubric of the shared PaperBench papers."""

    def leaves(node: dict[str, Any]) -> int:
        children = node.get("sub_tasks") or []
        return sum(leaves(c) for c in children) if children else 1

    folder = shared_path("paperbench", "papers")
    return [leaves(json.loads(p.read_text())) for p in sorted(folder.glob("*/rubric.json"))]


class RolloutDurations:
    """The natural length (virtual seconds, turns) of a rollout, a pure function of its key."""

    def __init__(self, tool_times: list[float], args: argparse.Namespace):
        self.tool_times = np.asarray(tool_times, dtype=float)
        self.args = args
        self._cache: dict[str, tuple[float, int]] = {}

    def __call__(self, key: str) -> tuple[float, int]:
        if key not in self._cache:
            a = self.args
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{a.seed}:{key}".encode()).digest()[:8]))
            turns = max(1, round(a.turns_median * math.exp(a.turns_sigma * rng.standard_normal())))
            tools = rng.choice(self.tool_times, size=turns).sum()
            model = (a.model_seconds * np.exp(0.5 * rng.standard_normal(turns))).sum()
            n_exp = rng.binomial(turns, a.experiment_share)
            experiments = (a.experiment_median * np.exp(a.experiment_sigma * rng.standard_normal(n_exp))).sum()
            self._cache[key] = (float(tools + model + experiments), turns)
        return self._cache[key]


# -- the simulated rollouts, judge and update around klong's real scheduler -----------------------------------------
class SimExecutor:
    """A `klong.rollout.executor.Executor` whose episodes sleep their duration on the virtual clock."""

    def __init__(self, sim: SimTrainer):
        self.sim = sim
        self.gate = asyncio.Event()
        """Set when this round's rollouts are all done (`close`): what synchronous schedules' judge waits for."""

    async def run(self, job: EpisodeJob, on_update) -> Trajectory:
        natural, turns = self.sim.durations(str(job.trajectory.relative_to(self.sim.out)))
        limit = job.config.time_limit
        seconds = min(natural, limit)
        await asyncio.sleep(seconds)
        traj = Trajectory(id=job.run_id, task_id=job.task.id, model="sim", sandbox="sim", time_limit=limit,
                          stop_reason=StopReason.TIMEOUT if natural > limit else StopReason.END_TASK,
                          virtual_time=seconds, messages=[Message(role="assistant", content=f"{turns} turns")],
                          meta={"sim": {"turns": turns, "natural": natural,
                                        "finished_at": asyncio.get_running_loop().time()}})  # fmt: skip
        write_trajectory(job.trajectory, traj, fsync=False)
        self.sim.rollout_seconds += seconds
        if on_update is not None:
            on_update(traj, "finished")
        return traj

    async def close(self) -> None:
        self.gate.set()


class SimTrainer(RLTrainer):
    """`RLTrainer` with its models, judge and update replaced by timed sleeps; its scheduling is inherited as is."""

    def __init__(self, config: RLConfig, tasks: list[Task], durations: RolloutDurations, args: argparse.Namespace,
                 synchronous_judge: bool):  # fmt: skip
        self.config, self.out, self.progress = config, Path(config.output_dir), False
        self.tasks, self.eval_tasks, self.tokenizer = tasks, [], None
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        self.judge, self.judge_pool, self._ray_started, self.server = None, None, False, None
        self._synced: dict[str, float] = {}
        self.version = 0
        self.durations, self.args, self.synchronous_judge = durations, args, synchronous_judge
        self.executor: SimExecutor | None = None
        self.trainer_busy = self.judge_busy = self.rollout_seconds = 0.0
        self.grade_waits: list[float] = []
        """Seconds from a rollout's end to the start of its grading."""
        self.iteration_ends: list[float] = []

    def _load(self, resume: bool) -> dict[str, Any]:
        return {"stage": 0, "iteration": 0, "done": 0}

    def _save(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.out / "state.json", state)
        self.iteration_ends.append(asyncio.get_running_loop().time())

    def _model_factory(self):
        return lambda: None  # never called: the executor runs the episodes

    def _executor(self) -> SimExecutor:
        self.executor = SimExecutor(self)
        return self.executor

    async def _grade(self, job) -> dict[str, Any]:
        traj, _, task = job
        if self.synchronous_judge:
            await self.executor.gate.wait()
        loop = asyncio.get_running_loop()
        self.grade_waits.append(loop.time() - traj.meta["sim"]["finished_at"])
        calls = math.ceil(task.config["leaves"] / self.args.leaf_concurrency)
        seconds = calls * self.args.judge_latency
        await asyncio.sleep(seconds)
        self.judge_busy += seconds
        return {"grade": {"score": 0.0}, "trajectory": traj, "latency": seconds}

    def _windows(self, results: dict[str, dict[str, Any]]) -> tuple[list, int]:
        return list(results), 0  # one stand-in per rollout: only the update's time is simulated

    async def _update(self, windows, rng) -> dict[str, Any]:
        await asyncio.sleep(self.args.step_seconds)
        self.trainer_busy += self.args.step_seconds
        return {"windows": len(windows)}


# -- one schedule ----------------------------------------------------------------------------------------------------
def simulate(name: str, args: argparse.Namespace, durations: RolloutDurations, tasks: list[Task], root: Path,
             *, timeouts: bool, synchronous_judge: bool) -> dict[str, Any]:  # fmt: skip
    stages = [Stage(timeout=t * 3600 if timeouts else NO_TIMEOUT, iterations=args.iterations) for t in args.stages]
    config = RLConfig(policy="sim", output_dir=str(root / name.replace(" ", "_").replace("+", "and")), tasks=[],
                      stages=stages, tasks_per_iteration=len(tasks), group_size=args.group_size,
                      judge_workers=args.judge_workers, concurrency=args.rollouts, rollout_backend="openai",
                      generation={"base_url": "http://127.0.0.1:9/v1", "temperature": 1.0})  # fmt: skip
    trainer = SimTrainer(config, tasks, durations, args, synchronous_judge)
    Path(config.output_dir).mkdir(parents=True)
    started = time.perf_counter()
    records = run_virtual(trainer._run(resume=False))
    makespan = trainer.iteration_ends[-1]
    workers = args.judge_workers
    return {
        "schedule": name, "hours": makespan / 3600, "real_seconds": time.perf_counter() - started,
        "iterations": len(records), "rollouts": sum(r["rollouts"] for r in records),
        "iteration_hours": [round(b / 3600 - a / 3600, 3) for a, b in zip([0.0, *trainer.iteration_ends],
                                                                           trainer.iteration_ends, strict=False)],
        "timeout_share": statistics.mean(r["timeout_share"] for r in records),
        "trainer_busy_hours": trainer.trainer_busy / 3600,
        "trainer_idle_hours": (makespan - trainer.trainer_busy) / 3600,
        "trainer_idle_share": 1 - trainer.trainer_busy / makespan,
        "judge_busy_hours": trainer.judge_busy / 3600,
        "judge_idle_worker_hours": (workers * makespan - trainer.judge_busy) / 3600,
        "judge_idle_share": 1 - trainer.judge_busy / (workers * makespan),
        "grade_wait_mean_hours": statistics.mean(trainer.grade_waits) / 3600,
        "judge_queue_depth_max": max(r["judge_queue_depth_max"] for r in records),
        "rollout_hours_per_rollout": trainer.rollout_seconds / 3600 / max(1, sum(r["rollouts"] for r in records)),
        "records": [{k: r[k] for k in ("stage", "timeout", "rollouts", "timeout_share", "rollout_seconds",
                                       "grading_tail_seconds", "seconds", "judge_queue_depth_max", "windows")} for r in records],
    }  # fmt: skip
    """`records`: the trainer's own metrics.jsonl lines (virtual seconds), as `RLTrainer._iteration` wrote them."""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rollouts", type=int, default=10_000, help="rollouts per iteration, all running at once")
    p.add_argument("--group-size", type=int, default=8, help="rollouts per task (n)")
    p.add_argument("--stages", type=float, nargs="+", default=[2, 4, 6], help="stage timeouts, hours")
    p.add_argument("--iterations", type=int, default=1, help="iterations per stage")
    p.add_argument("--turns-median", type=float, default=400, help="turns of a rollout that ends itself (median)")
    p.add_argument("--turns-sigma", type=float, default=0.5, help="lognormal sigma of the turn count")
    p.add_argument("--model-seconds", type=float, default=8.0, help="model time per turn (median; lognormal 0.5)")
    p.add_argument("--experiment-share", type=float, default=0.03, help="share of turns that run an experiment")
    p.add_argument("--experiment-median", type=float, default=600.0, help="an experiment's seconds (median)")
    p.add_argument("--experiment-sigma", type=float, default=1.0, help="lognormal sigma of experiment times")
    p.add_argument("--turn-times", type=Path, nargs="*", default=None,
                   help="trajectories to draw tool times from (SWE-agent .traj or klong trajectories; default: the "
                        "shared SWE-agent ones)")  # fmt: skip
    p.add_argument("--judge-latency", type=float, default=5.0, help="seconds per judge call (one leaf)")
    p.add_argument("--leaf-concurrency", type=int, default=32, help="leaves graded at once per submission")
    p.add_argument("--judge-workers", type=int, default=64, help="submissions graded at once")
    p.add_argument("--step-seconds", type=float, default=1800.0, help="seconds of one policy update")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args(argv)
    if args.rollouts % args.group_size:
        p.error("--rollouts must be a multiple of --group-size")

    tool_times = measured_tool_times(args.turn_times or [shared_path("trajectories", "swe-agent")])
    if not tool_times:
        p.error("--turn-times: no measured turn times found in those files")
    leaves = rubric_leaves()
    tasks = [Task(id=f"paper{i:05d}", paper="", rubric={}, config={"leaves": leaves[i % len(leaves)]})
             for i in range(args.rollouts // args.group_size)]  # fmt: skip
    durations = RolloutDurations(tool_times, args)
    natural = [durations(f"probe/{i}")[0] / 3600 for i in range(2000)]
    print(f"inputs: {len(tool_times)} measured tool times (median {statistics.median(tool_times):.2f} s, max "
          f"{max(tool_times):.2f} s); {len(leaves)} PaperBench rubrics, {min(leaves)}-{max(leaves)} leaves "
          f"(mean {statistics.mean(leaves):.0f}); a rollout that ends itself takes {statistics.median(natural):.2f} h "
          f"median, {np.percentile(natural, 90):.2f} h p90, {max(natural):.2f} h max of 2,000")  # fmt: skip
    print(f"assumed: {args.turns_median:.0f} turns median (sigma {args.turns_sigma}), model {args.model_seconds:.0f} s "
          f"per turn, experiments on {args.experiment_share:.0%} of turns ({args.experiment_median:.0f} s median); "
          f"judge {args.judge_latency:.1f} s per call, {args.leaf_concurrency} leaves x {args.judge_workers} "
          f"submissions at once; update {args.step_seconds / 60:.0f} min; {args.rollouts:,} rollouts per iteration "
          f"({len(tasks):,} tasks x {args.group_size}), stages {'/'.join(f'{t:g}h' for t in args.stages)}, "
          f"{args.iterations} iteration(s) each")  # fmt: skip
    schedules = {"synchronous": (False, True), "synchronous + timeouts": (True, True), "klong": (True, False)}
    rows = []
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        for name, (timeouts, sync) in schedules.items():
            rows.append(simulate(name, args, durations, tasks, Path(tmp), timeouts=timeouts, synchronous_judge=sync))
    print()
    print(
        "| schedule | run (h) | iterations (h) | timeouts hit | trainer idle (h, share) | judge idle (share) | "
        "wait for the judge (h, mean) | simulated in (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['schedule']} | {r['hours']:.1f} | {' / '.join(f'{h:.1f}' for h in r['iteration_hours'])} | "
              f"{r['timeout_share']:.0%} | {r['trainer_idle_hours']:.1f} ({r['trainer_idle_share']:.0%}) | "
              f"{r['judge_idle_share']:.0%} | {r['grade_wait_mean_hours']:.2f} | {r['real_seconds']:.0f} |")  # fmt: skip
    by = {r["schedule"]: r for r in rows}
    ratios = {}
    for base in ("synchronous", "synchronous + timeouts"):
        for what, key in (("trainer idle time", "trainer_idle_hours"), ("judge idle time", "judge_idle_worker_hours")):
            ratios[f"{what} klong/{base}"] = by["klong"][key] / by[base][key]
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) if isinstance(v, Path | list) else v
                                                  for k, v in vars(args).items()}, "rows": rows, "ratios": ratios},
                                        indent=2))  # fmt: skip
    print()
    for k, v in ratios.items():
        print(f"ratio {k}: {v:.2f}")
    return {"rows": rows, "ratios": ratios}


if __name__ == "__main__":
    main()
