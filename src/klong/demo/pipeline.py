"""The demo pipeline: tasks -> teacher rollouts -> rejection sampling -> split (epoch / truncate / sliding) -> SFT of a
small model from random weights -> evaluation on held-out tasks -> progressive RL -> evaluation -> report.

Every stage is the real klong stage (task dirs, `run_rollouts`, the `check` judge, `split_trajectory`, `run_sft`,
`run_rl`), run on files in `out/`; every number in the report is computed from those files.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console

from klong.agent.clock import format_duration
from klong.agent.config import PAPER_END_MARKER, AgentConfig, CommandCost
from klong.chat.context import ContextConfig
from klong.demo.tasks import EXPERIMENT_SECONDS, LEAF_NAMES, make_tasks
from klong.demo.teacher import TeacherModel
from klong.judge.check import CheckJudge
from klong.judge.grade import grade_submission, write_grade
from klong.rollout.runner import run_rollouts
from klong.rubric.graded import GradedNode, category_scores
from klong.schema import read_trajectory
from klong.task import Task

DEMO_SYSTEM_PROMPT = "You are a research engineer in a sandbox. Act through tool calls; call end_task when done."
DEMO_TASK_TEMPLATE = "Replicate the paper in `paper/`: read it, run what it asks, put the results in `submission/`."
DEMO_NOTICE = "[context] Earlier turns were removed to fit the context window; the paper is kept above."


class DemoConfig(BaseModel):
    """Scale of the demo. `quick()` is the 3-minute version exercised by the tests."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    train_tasks: int = 160
    """Synthetic tasks the teacher solves (its kept trajectories are the SFT data; RL samples from them too)."""
    eval_tasks: int = 8
    """Held-out tasks every model is evaluated on."""
    experiments: int = 8
    """Experiments per task: each costs a run (30 virtual minutes, a long log) and a record."""
    log_steps: int = 5
    """Loss lines each run prints (plus random warnings)."""
    teacher_attempts: int = 1
    mistake_rate: float = 0.1
    """How often the teacher takes a neighbouring run's seed (and recovers by running the experiment again)."""
    window: int = 512
    """The student's context window (tokens): runtime view and training windows alike."""
    prefix_tokens: int = 200
    """Budget of the pinned prefix (system prompt, task, the paper as read): the whole paper must fit."""
    overlap: int = 96
    max_new_tokens: int = 64
    page_chars: int = 1200
    vocab_size: int = 1500
    hidden_size: int = 64
    layers: int = 2
    heads: int = 4
    sft_steps: int = 2000
    """Optimizer steps of each SFT run: the same for every split policy, so each gets the same compute."""
    sft_lr: float = 3e-3
    rows_per_step: int = 4
    rl_stages: list[float] = [0.5, 1.0]
    """Progressive RL: rollout timeouts of the stages, as fractions of the evaluation time limit (`full_time`)."""
    rl_iterations: int = 2
    """RL iterations per stage (each: `rl_tasks` tasks x `rl_group` rollouts, graded, one policy update)."""
    compare_single_stage: bool = False
    """Also train one stage at the longest timeout with the same rollout budget, from the same SFT model."""
    rl_tasks: int = 4
    rl_group: int = 4
    rl_lr: float = 1e-4
    rl_temperature: float = 0.7
    """Sampling temperature of RL rollouts (evaluation is greedy)."""

    @classmethod
    def quick(cls, seed: int = 0) -> DemoConfig:
        return cls(seed=seed, train_tasks=16, eval_tasks=3, experiments=4, sft_steps=150, rl_iterations=1,
                   rl_tasks=1, rl_group=3)  # fmt: skip

    @classmethod
    def long(cls, seed: int = 0) -> DemoConfig:
        """The longer recipe: three RL stages of several iterations each, against a single stage at the longest
        timeout with the same number of rollouts."""
        return cls(seed=seed, rl_stages=[1 / 3, 2 / 3, 1.0], rl_iterations=3,
                   compare_single_stage=True)  # fmt: skip

    @property
    def full_time(self) -> float:
        """Virtual time limit of an episode: room for every experiment plus a quarter more (one or two re-runs)."""
        return 1.25 * self.experiments * (EXPERIMENT_SECONDS + 120) + 600

    @property
    def max_turns(self) -> int:
        """Cap on turns per episode for students: about twice what the teacher needs (a lost student stops early)."""
        return 2 * (2 * self.experiments + 3)

    def agent(self, time_limit: float, max_turns: int | None = None) -> AgentConfig:
        return AgentConfig(time_limit=time_limit, clock="virtual", page_chars=self.page_chars, bash_timeout=60,
                           max_turns=max_turns, system_prompt=DEMO_SYSTEM_PROMPT, task_template=DEMO_TASK_TEMPLATE,
                           command_costs=[CommandCost(pattern="run_exp", seconds=EXPERIMENT_SECONDS)],
                           time_notices=[], tool_costs={"bash": 60.0, "read_paper": 30.0, "write_file": 10.0},
                           context=self.context("epoch"))  # fmt: skip

    def context(self, policy: str) -> ContextConfig:
        return ContextConfig(policy=policy, max_context_tokens=self.window, overlap_tokens=self.overlap,
                             reserve_tokens=self.max_new_tokens, pin_marker=PAPER_END_MARKER,
                             max_prefix_tokens=self.prefix_tokens, notice=DEMO_NOTICE)  # fmt: skip


class Demo:
    def __init__(self, out: str | Path, config: DemoConfig, console: Console | None = None):
        self.out = Path(out)
        self.config = config
        self.console = console or Console()
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Print the phase, time it into `timings`, and say when it is done."""
        self.console.print(f"[bold]>[/bold] {name}")
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - t0, 1)
        self.console.print(f"  done in {self.timings[name]:.0f}s")

    # -- stages ----------------------------------------------------------------------------------------------------
    def make_tasks(self) -> tuple[list[Task], list[Task]]:
        c = self.config
        root = self.out / "tasks"
        train = make_tasks(root / "train", prefix="train", count=c.train_tasks, seed=c.seed, experiments=c.experiments,
                           log_steps=c.log_steps)  # fmt: skip
        evals = make_tasks(root / "eval", prefix="eval", count=c.eval_tasks, seed=c.seed + 7919, experiments=c.experiments,
                           log_steps=c.log_steps)  # fmt: skip
        return train, evals

    def tokenizer(self, teacher_runs: Path, eval_tasks: list[Task]) -> Path:
        """A BPE vocabulary learned from the teacher's trajectories as the chat template renders them (role names,
        tool-call JSON and texts), plus the held-out papers."""
        from klong.demo.tokenizer import train_tokenizer

        corpus = [self.config.context("epoch").notice]
        for path in sorted((teacher_runs / "trajectories").glob("*.json")):
            for m in read_trajectory(path).messages:
                corpus += [f"{m.role}\n", m.content or ""]
                corpus += [json.dumps({"name": tc.function.name, "arguments": tc.function.arguments})
                           for tc in m.tool_calls or []]  # fmt: skip
        corpus += [t.paper for t in eval_tasks]
        return train_tokenizer(corpus, self.out / "tokenizer", vocab_size=self.config.vocab_size)

    def teacher_rollouts(self, tasks: list[Task]) -> Path:
        c = self.config
        out = self.out / "teacher"
        episodes = itertools.count()

        def teacher() -> TeacherModel:
            return TeacherModel(seed=c.seed * 1_000_003 + next(episodes), mistake_rate=c.mistake_rate)

        asyncio.run(run_rollouts(tasks, model_factory=teacher, sandbox="local", config=c.agent(c.full_time),
                                 out_dir=out, attempts=c.teacher_attempts, concurrency=8, resume=True))  # fmt: skip
        return out

    def grade_runs(self, runs: Path, tasks: list[Task]) -> dict[str, dict[str, Any]]:
        """Grade every finished run of `runs` with the `check` judge (grades already on disk are reused)."""
        by_id = {t.id: t for t in tasks}
        judge = CheckJudge()
        gate = asyncio.Semaphore(4)

        async def one(traj_path: Path) -> tuple[str, dict[str, Any]]:
            traj = read_trajectory(traj_path)
            grade_path = runs / "grades" / f"{traj.id}.json"
            if grade_path.exists():
                grade = json.loads(grade_path.read_text())
            else:
                async with gate:
                    grade = await grade_submission(runs / "workspaces" / traj.id / "submission", by_id[traj.task_id],
                                                   judge, concurrency=8)  # fmt: skip
                write_grade(grade_path, grade)
            leaves = category_scores(GradedNode.model_validate(grade["graded_task_tree"]))
            return traj.id, {"score": grade["score"], "turns": traj.assistant_turns(), "virtual_time": traj.virtual_time,
                             "stop": traj.stop_reason.value if traj.stop_reason else None,
                             "leaves": {k: v["mean_leaf_score"] for k, v in leaves.items()}}  # fmt: skip

        async def go():
            return dict(await asyncio.gather(*(one(p) for p in sorted((runs / "trajectories").glob("*.json")))))

        return asyncio.run(go())

    def select(self, runs: Path) -> list[str]:
        """Rejection sampling with `klong select`'s rules (score 1, valid grades, clean ending); the decisions and their
        reasons are written to `selection/`."""
        from klong.data.select import SelectConfig, select_runs, write_selection

        decisions = select_runs([runs], SelectConfig(threshold=0.999))
        write_selection(decisions, self.out / "selection")
        return sorted(d.run_id for d in decisions if d.decision == "selected")

    def split(self, runs: Path, keep: list[str], tokenizer, policy: str) -> Path:
        from klong.data.split import SampleWriter, split_trajectory

        path = self.out / "windows" / f"{policy}.parquet"
        writer = SampleWriter(path, policy)
        for rid in keep:
            writer.write(split_trajectory(read_trajectory(runs / "trajectories" / f"{rid}.json"), tokenizer,
                                          self.config.context(policy)).samples)  # fmt: skip
        writer.close()
        return path

    def init_model(self, tokenizer_dir: Path) -> Path:
        from klong.models.tiny import TinyModelConfig, build_tiny_model

        c = self.config
        return build_tiny_model(self.out / "models" / "init", tokenizer_dir,
                                TinyModelConfig(hidden_size=c.hidden_size, num_hidden_layers=c.layers,
                                                num_attention_heads=c.heads, num_key_value_heads=c.heads,
                                                intermediate_size=4 * c.hidden_size, max_position_embeddings=4096,
                                                seed=c.seed))  # fmt: skip

    def sft(self, init: Path, windows: Path, name: str) -> Path:
        from klong.train.config import SFTConfig
        from klong.train.sft import run_sft

        c = self.config
        out = self.out / "sft" / name
        if not (out / "final" / "config.json").exists():  # an interrupted run continues from its last checkpoint
            run_sft(SFTConfig(model=str(init), output_dir=str(out), train_data=[str(windows)], pack_length=c.window,
                              rows_per_step=c.rows_per_step, max_steps=c.sft_steps, learning_rate=c.sft_lr,
                              warmup_ratio=0.05, gradient_checkpointing=False, seed=c.seed, keep_checkpoints=1,
                              save_every=max(1, c.sft_steps // 4)),
                    resume=True, progress=self.console.is_terminal)  # fmt: skip
        return out / "final"

    def evaluate(self, model_dir: Path, tasks: list[Task], name: str) -> dict[str, Any]:
        from klong.models import load_model
        from klong.models.config import ModelConfig

        c = self.config
        runs = self.out / "eval" / name
        cfg = ModelConfig(max_tokens=c.max_new_tokens, temperature=0.0)
        asyncio.run(run_rollouts(tasks, model_factory=lambda: load_model(f"hf:{model_dir}", cfg), sandbox="local",
                                 config=c.agent(c.full_time, c.max_turns), out_dir=runs, concurrency=4, resume=True))  # fmt: skip
        grades = self.grade_runs(runs, tasks)
        scores = [g["score"] for g in grades.values()]
        leaves = {LEAF_NAMES[k]: statistics.mean(g["leaves"][k] for g in grades.values()) for k in LEAF_NAMES}
        return {"name": name, "scores": scores, "score_mean": statistics.mean(scores), "leaves": leaves,
                "score_std": statistics.pstdev(scores), "turns": statistics.mean(g["turns"] for g in grades.values()),
                "virtual_hours": statistics.mean(g["virtual_time"] for g in grades.values()) / 3600}  # fmt: skip

    def rl(self, policy: Path, stages: list[tuple[float, int]], name: str = "rl") -> Path:
        """RL from `policy` through `stages` (timeout, iterations); resumes, so a later call extends an earlier one."""
        from klong.models.config import ModelConfig
        from klong.train.rl import run_rl
        from klong.train.rl_config import RLConfig

        c = self.config
        out = self.out / name
        cfg = RLConfig(policy=str(policy), output_dir=str(out), tasks=[str(self.out / "tasks" / "train")],
                       stages=[{"timeout": t, "iterations": n, "max_turns": c.max_turns} for t, n in stages],
                       tasks_per_iteration=c.rl_tasks, group_size=c.rl_group, agent=c.agent(stages[-1][0]),
                       generation=ModelConfig(max_tokens=c.max_new_tokens, temperature=c.rl_temperature, seed=c.seed),
                       learning_rate=c.rl_lr, beta=0.02, ppo_epochs=2, concurrency=c.rl_group * c.rl_tasks,
                       gradient_checkpointing=False, pack_length=c.window, seed=c.seed)  # fmt: skip
        run_rl(cfg, resume=(out / "state.json").exists(), progress=True)
        return out / "checkpoints" / "latest" / "policy"

    def snapshot(self, policy_dir: Path, name: str) -> Path:
        target = self.out / "models" / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(policy_dir, target)
        return target


@contextlib.contextmanager
def own_interpreter_first() -> Iterator[None]:
    """Put the interpreter running the demo first on PATH while it runs, so `python3` in the local sandboxes is that
    interpreter: a version-manager shim (pyenv) in front of it costs about 0.1 s per experiment run, which is most of
    the teacher's rollout time."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keep the demo's progress display readable: no weight-loading bars from transformers and no warning from
    accelerate that the tied `lm_head` is saved once (it is tied to the embeddings by the model config)."""
    import logging

    from transformers.utils import logging as hf_logging

    accelerate_log = logging.getLogger("accelerate.utils.other")
    level, bars = accelerate_log.level, hf_logging.is_progress_bar_enabled()
    accelerate_log.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        accelerate_log.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def run_demo(out: str | Path, config: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    with own_interpreter_first(), quiet_libraries():
        return _run_demo(out, config, console)


def _run_demo(out: str | Path, config: DemoConfig, console: Console | None) -> dict[str, Any]:
    from klong.demo.report import write_report
    from klong.models.tokenizer import load_tokenizer

    demo = Demo(out, config, console)
    demo.out.mkdir(parents=True, exist_ok=True)
    (demo.out / "demo_config.json").write_text(config.model_dump_json(indent=2))
    c = config
    results: dict[str, Any] = {"config": config.model_dump(), "rows": []}
    with demo.phase(f"tasks: {c.train_tasks} training and {c.eval_tasks} held-out synthetic replication tasks"):
        train, evals = demo.make_tasks()
    with demo.phase("teacher rollouts (scripted expert, mandatory paper reading, occasional mistakes)"):
        teacher_runs = demo.teacher_rollouts(train)
        tok_dir = demo.tokenizer(teacher_runs, evals)
        tokenizer = load_tokenizer(tok_dir)
        teacher_grades = demo.grade_runs(teacher_runs, train)
        keep = demo.select(teacher_runs)
        results["teacher"] = {"rollouts": len(teacher_grades), "kept": len(keep),
                              "score_mean": statistics.mean(g["score"] for g in teacher_grades.values()),
                              "turns": statistics.mean(g["turns"] for g in teacher_grades.values())}  # fmt: skip
    with demo.phase(
        f"split {len(keep)} trajectories with the epoch, truncate and sliding policies (window {c.window})"
    ):
        windows = {p: demo.split(teacher_runs, keep, tokenizer, p) for p in ("truncate", "sliding", "epoch")}
        results["windows"] = {p: _parquet_stats(w) for p, w in windows.items()}
    init = demo.init_model(tok_dir)
    labels = {
        "truncate": "truncation SFT (basic)",
        "sliding": "sliding-window SFT",
        "epoch": "trajectory-splitting SFT",
    }
    models = {}
    for policy in ("truncate", "sliding", "epoch"):
        with demo.phase(f"SFT from random weights on the {policy} windows"):
            models[policy] = demo.sft(init, windows[policy], policy)
        with demo.phase(f"evaluate {labels[policy]} on the held-out tasks"):
            results["rows"].append({**demo.evaluate(models[policy], evals, policy), "label": labels[policy]})
    stages = [(c.full_time * f, c.rl_iterations) for f in c.rl_stages]
    for i, (timeout, _) in enumerate(stages):
        with demo.phase(f"progressive RL stage {i + 1} (rollout timeout {format_duration(timeout)}, virtual)"):
            snapshot = demo.snapshot(demo.rl(models["epoch"], stages[: i + 1]), f"rl-stage{i + 1}")
        with demo.phase(f"evaluate after RL stage {i + 1}"):
            row = demo.evaluate(snapshot, evals, f"rl-stage{i + 1}")
            results["rows"].append({**row, "label": f"+ RL stage {i + 1} ({timeout / 3600:.1f} h rollouts)"})
    if c.compare_single_stage:
        single = [(stages[-1][0], sum(n for _, n in stages))]
        with demo.phase(
            f"single-stage RL at {single[0][0] / 3600:.1f} h, same rollout budget ({single[0][1]} iterations)"
        ):
            snapshot = demo.snapshot(demo.rl(models["epoch"], single, name="rl-single"), "rl-single")
        with demo.phase("evaluate the single-stage RL model"):
            row = demo.evaluate(snapshot, evals, "rl-single")
            results["rows"].append({**row, "label": f"single-stage RL ({single[0][0] / 3600:.1f} h rollouts)"})
    results["timings"] = demo.timings
    write_report(demo.out, results)
    return results


def _parquet_stats(path: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["num_tokens", "num_trained"])
    return {"windows": t.num_rows, "tokens": sum(t.column("num_tokens").to_pylist()),
            "trained_tokens": sum(t.column("num_trained").to_pylist())}  # fmt: skip
