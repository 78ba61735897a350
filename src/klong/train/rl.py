"""Progressive RL: stages of growing rollout timeouts, judge rewards, PPO-clip with a KL penalty over split windows.

    for stage m (timeout T_m), for each iteration:
        sample tasks; run n rollouts per task with the current policy under T_m (the runtime: same sandbox, tools,
            context policy); a rollout that reaches T_m ends normally and is graded like any other
        a rollout that ended by an infrastructure failure (endpoint, sandbox) is re-run or left out, never graded
        grade each rollout as soon as it finishes (a judge queue beside the rollouts; evaluation jobs first) -> Q
        split every rollout with the runtime's own ContextPolicy into windows (the sampled ids and logprobs as
            recorded; each window checked against the prompts the runtime recorded)
        advantages: Q minus the mean Q over all windows of the task's n rollouts (`klong.train.rl_loss`)
        `ppo_epochs` passes of PPO-clip + beta * KL(reference) over the n x K windows (`klong.train.ppo`)
        save the policy and the iteration's state; a restart continues from the last finished iteration
    after each stage: roll out and grade the evaluation tasks

Progress lines (stderr) number stages and iterations from 1 (`RL stage 2/3 (timeout 4h 00m), iteration 5/20`); files
and metrics keep 0-based indices (`stages/s1/it4/`, `"stage": 1, "stage_iteration": 4`).

Layout: `state.json`, `metrics.jsonl` (one line per iteration, plus `eval` lines), `checkpoints/latest/` (policy,
optimizer, RNG), `stages/s<m>/it<i>/{rollouts,grades}/` (failed attempts under `rollouts/failed/`).
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from klong.agent.clock import format_duration
from klong.chat.context import ContextConfig
from klong.config import set_aside, write_config
from klong.data.split import split_trajectory
from klong.exceptions import ConfigError, KlongError, StopReason
from klong.io import atomic_write_json, read_json
from klong.judge.grade import grade_submission, make_judge, write_grade
from klong.judge.queue import GradingQueue
from klong.rollout.runner import archive_run, run_id_for, run_rollouts
from klong.schema import Trajectory, read_trajectory
from klong.task import Task, find_tasks
from klong.train.common import MetricsLog, load_model, make_optimizer
from klong.train.config import apply_torch_threads
from klong.train.data import Window, window_of
from klong.train.ppo import PPOUpdate
from klong.train.rl_config import RLConfig
from klong.train.rl_loss import rollout_advantages


def stage_label(stages, m: int) -> str:
    """How progress lines name stage `m` (0-based, as in `stages/s<m>/` and metrics.jsonl): 1-based for humans, with
    its timeout in the unit used everywhere else (`format_duration`): `RL stage 1/3 (timeout 2h 00m)`."""
    return f"RL stage {m + 1}/{len(stages)} (timeout {format_duration(stages[m].timeout)})"


class RLTrainer:
    def __init__(self, config: RLConfig, *, progress: bool = True):
        from klong.models.tokenizer import load_tokenizer

        self.config = config
        self.out = Path(config.output_dir)
        self.progress = progress
        self.tasks = find_tasks(config.tasks)
        self.eval_tasks = find_tasks(config.eval_tasks) if config.eval_tasks else []
        self.tokenizer = load_tokenizer(config.policy_path)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        self.judge = make_judge(config.judge, config.judge_model, sandbox=config.sandbox)
        self.judge_pool = None
        """`executor: ray`: the judge's actors (made when the run starts)."""
        self._ray_started = False
        self.server = None
        """`rollout_backend: vllm`: the server the rollouts sample from."""
        self._synced: dict[str, float] = {}
        """How the weights of the next rollouts reached the server (seconds, probe difference), for metrics.jsonl."""
        self.version = 0

    # -- state -----------------------------------------------------------------------------------------------------
    def _load(self, resume: bool) -> dict[str, Any]:
        state_path = self.out / "state.json"
        latest = self.out / "checkpoints" / "latest"
        if state_path.exists() and not resume:
            raise ConfigError(f"{self.out} holds an RL run already: continue it with --resume, start over with --redo, "
                              "or use another output_dir")  # fmt: skip
        state = read_json(state_path) if resume and state_path.exists() else {"stage": 0, "iteration": 0, "done": 0}
        cfg = self.config
        source = str(latest / "policy") if state["done"] and latest.exists() else cfg.policy_path
        self.policy = load_model(source, attn_implementation=cfg.attn_implementation, lora=cfg.lora if source == cfg.policy_path else None,
                                 gradient_checkpointing=cfg.gradient_checkpointing).to(self.device)  # fmt: skip
        if cfg.lora is not None and source != cfg.policy_path:
            from peft import PeftModel

            base = load_model(
                cfg.policy_path,
                attn_implementation=cfg.attn_implementation,
                gradient_checkpointing=cfg.gradient_checkpointing,
            )
            self.policy = PeftModel.from_pretrained(base, source, is_trainable=True).to(self.device)
        self.reference = load_model(cfg.reference or cfg.policy_path, attn_implementation=cfg.attn_implementation,
                                    gradient_checkpointing=False).to(self.device).eval()  # fmt: skip
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.optimizer = make_optimizer(self.policy, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                        betas=(0.9, 0.95), eps=1e-8)  # fmt: skip
        self.updater = PPOUpdate(self.policy, self.reference, self.optimizer, cfg, self.device,
                                 norm_tokens=cfg.loss_norm_tokens or cfg.agent.context.max_context_tokens)  # fmt: skip
        if state["done"] and latest.exists():
            self.optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=False))
            rng = torch.load(latest / "rng.pt", weights_only=False)
            torch.set_rng_state(rng["torch"])
            random.setstate(rng["python"])
            self.metrics.truncate_after(state["done"])
        else:
            torch.manual_seed(cfg.seed)
            random.seed(cfg.seed)
        return state

    def _save(self, state: dict[str, Any]) -> None:
        ckpt = self.out / "checkpoints"
        tmp = ckpt / ".latest.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        self.policy.save_pretrained(tmp / "policy")
        self.tokenizer.save_pretrained(tmp / "policy")
        torch.save(self.optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / "rng.pt")
        shutil.rmtree(ckpt / "latest", ignore_errors=True)
        os.replace(tmp, ckpt / "latest")
        atomic_write_json(self.out / "state.json", state, indent=2)  # written last: the iteration is finished

    # -- rollouts and grading --------------------------------------------------------------------------------------
    def _model_factory(self):
        """Makes the rollouts' models. For `executor: ray` a picklable object (its workers make the models): the
        served policy as it is now (URL, adapter, policy version), never an in-process handle."""
        cfg = self.config
        if cfg.rollout_backend == "hf":
            from klong.models.hf_local import HFModel

            shared = HFModel.from_loaded(self.policy, self.tokenizer, self._generation())
            shared.policy_version = self.version
            return lambda: shared
        if cfg.rollout_backend == "vllm":
            if cfg.executor == "ray":
                return ServedPolicy(str(cfg.policy_path), self._generation(), self.server.view())
            from klong.models.vllm_model import VLLMModel

            served = VLLMModel(cfg.policy_path, self._generation(), server=self.server)
            return lambda: served
        from klong.models import ModelFactory

        return ModelFactory(f"openai:{cfg.served_model}", self._generation().model_copy(update={"logprobs": True}))

    def _generation(self):
        """The rollouts' sampling settings for the current policy version: with a seed, one of its own per version, so
        that iteration k's rollout of a task and attempt does not reuse iteration k-1's random draws (each call's seed
        is then derived from it, the run and the turn: `klong.models.call_seed`)."""
        gen = self.config.generation
        return gen if gen.seed is None else gen.model_copy(update={"seed": gen.seed * 1_000_003 + self.version})

    def _agent_config(self, timeout: float, max_turns: int | None, context_tokens: int | None):
        agent = self.config.agent.model_copy(deep=True)
        agent.time_limit = timeout
        if max_turns is not None:
            agent.max_turns = max_turns
        if context_tokens is not None:
            agent.context = ContextConfig.model_validate(
                {**agent.context.model_dump(), "max_context_tokens": context_tokens}
            )
        return agent

    async def _rollouts(self, tasks: list[Task], out: Path, agent, attempts: int, queue: GradingQueue,
                        priority: str) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:  # fmt: skip
        """Run the rollouts, submitting each to the judge queue as it finishes; returns (run id -> grade, counts).

        Rollouts that ended by an infrastructure failure are not graded: with `infra_failures: rerun` they are moved
        to `rollouts/failed/` and run again, up to `max_reruns` times; what still fails is left out."""
        cfg = self.config
        by_id = {t.id: t for t in tasks}
        futures: dict[str, asyncio.Future] = {}
        self._depth = 0

        def submit(traj: Trajectory) -> None:
            if traj.id not in futures and not (traj.stop_reason and traj.stop_reason.is_infrastructure):
                futures[traj.id] = queue.submit((traj, out, by_id[traj.task_id]), priority)  # type: ignore[arg-type]
                self._depth = max(self._depth, queue.depth)

        counts = {"infra_failures": 0, "reruns": 0, "left_out": 0}
        reruns = cfg.max_reruns if cfg.infra_failures == "rerun" else 0
        for round_ in range(reruns + 1):
            executor = self._executor()
            try:
                await run_rollouts(tasks, model_factory=self._model_factory(), sandbox=cfg.sandbox, config=agent,
                                   out_dir=out / "rollouts", attempts=attempts, concurrency=cfg.concurrency,
                                   resume=True, tokenizer=self.tokenizer, executor=executor,
                                   on_update=lambda traj, event: submit(traj)
                                   if isinstance(traj, Trajectory) and traj.finished else None)  # fmt: skip
            finally:
                if executor is not None:  # its progress poller; Ray itself stays up for the next round
                    await executor.close()
            failed = []
            for task in tasks:  # rollouts finished by an earlier process are graded too
                for a in range(attempts):
                    rid = run_id_for(task, a)
                    traj = read_trajectory(out / "rollouts" / "trajectories" / f"{rid}.json")
                    if traj.stop_reason is not None and traj.stop_reason.is_infrastructure:
                        failed.append(rid)
                    else:
                        submit(traj)
            counts["infra_failures"] += len(failed)
            if not failed or round_ == reruns:
                counts["left_out"] = len(failed)
                break
            for rid in failed:
                archive_run(out / "rollouts", rid)
            counts["reruns"] += len(failed)
        counts["rollouts_done_at"] = asyncio.get_running_loop().time()  # the last rollout's end; grades may still run
        return {rid: await f for rid, f in futures.items()}, counts

    async def _grade(self, job) -> dict[str, Any]:
        traj, out, task = job
        path = out / "grades" / f"{traj.id}.json"
        if path.exists():
            return {"grade": read_json(path), "trajectory": traj, "latency": 0.0}
        violations = traj.meta.get("monitor", {}).get("blacklist_violations", [])
        started = asyncio.get_running_loop().time()
        submission = out / "rollouts" / "workspaces" / traj.id / "submission"
        disqualified = violations[0]["resource"] if violations else None
        if self.judge_pool is not None:
            grade = await self.judge_pool.grade(submission, task, disqualified=disqualified)
        else:
            grade = await grade_submission(submission, task, self.judge, disqualified=disqualified)
        write_grade(path, grade)
        return {"grade": grade, "trajectory": traj, "latency": asyncio.get_running_loop().time() - started}

    # -- the update ------------------------------------------------------------------------------------------------
    def _windows(self, results: dict[str, dict[str, Any]]) -> tuple[list[Window], int]:
        """Windows of every rollout with its advantage; groups with fewer than two rollouts left (after infrastructure
        failures) have no baseline and are skipped (their count is returned)."""
        cfg = self.config
        groups: dict[str, list[tuple[float, list[Window]]]] = {}
        for rid, r in sorted(results.items()):
            traj: Trajectory = r["trajectory"]
            samples = split_trajectory(traj, self.tokenizer).samples  # the run's recorded settings, checked
            for sample in samples:
                if (
                    sample.sampling is not None
                    and sample.sampling.logprobs == "processed"
                    and sample.sampling.top_p < 1
                ):
                    raise ConfigError(f"{rid}: sampled with top_p {sample.sampling.top_p}; RL needs top_p 1")
            windows = [window_of(s) for s in samples if s.num_trained]
            groups.setdefault(traj.task_id or "", []).append((float(r["grade"]["score"]), windows))
        out: list[Window] = []
        skipped = 0
        for rollouts in groups.values():
            if len(rollouts) < 2:
                skipped += 1
                continue
            adv = rollout_advantages([q for q, _ in rollouts], [len(w) for _, w in rollouts], baseline=cfg.baseline,
                                     std_normalize=cfg.std_normalize)  # fmt: skip
            for a, (_, windows) in zip(adv, rollouts, strict=True):
                for w in windows:
                    w.advantage = a
                    out.append(w)
        return out, skipped

    def update(self, windows: list[Window], rng: random.Random) -> dict[str, Any]:
        return self.updater(windows, rng)

    async def _update(self, windows: list[Window], rng: random.Random) -> dict[str, Any]:
        """The policy update, off the event loop (the judge queue and progress keep running)."""
        return await asyncio.to_thread(self.update, windows, rng)

    # -- the loop --------------------------------------------------------------------------------------------------
    async def _run(self, resume: bool) -> list[dict[str, Any]]:
        cfg = self.config
        state = self._load(resume)
        self.version = state["done"]
        records = []
        if cfg.executor == "ray":
            self._start_ray()
        if cfg.rollout_backend == "vllm":
            await self._start_server(state)
        try:
            async with GradingQueue(self._grade, workers=cfg.judge_workers) as queue:
                for m, stage in enumerate(cfg.stages):
                    if m < state["stage"]:
                        continue
                    for i in range(stage.iterations):
                        if m == state["stage"] and i < state["iteration"]:
                            continue
                        records.append(await self._iteration(m, i, stage, queue, state))
                    if self.eval_tasks:
                        records.append(await self._evaluate(m, queue))
        finally:
            if self.server is not None:
                await asyncio.to_thread(self.server.stop)
            if self.judge_pool is not None:
                await self.judge_pool.close()
                self.judge_pool = None
            if self._ray_started:
                import ray

                ray.shutdown()
                self._ray_started = False
        return records

    # -- Ray (executor: ray) ---------------------------------------------------------------------------------------
    def _start_ray(self) -> None:
        from klong.judge.ray_pool import RayJudgePool
        from klong.rollout.ray_executor import check_slots, ensure_ray

        cfg = self.config
        self._ray_started = ensure_ray(cfg.ray_address)  # shut down at the end when this run started it
        check_slots(cfg.ray_address)
        self.judge_pool = RayJudgePool((cfg.judge, cfg.judge_model, None, cfg.sandbox), workers=cfg.judge_workers,
                                       address=cfg.ray_address)  # fmt: skip
        self.judge_pool.start()

    def _executor(self):
        """None (the rollouts run in this process) or a `RayExecutor` for this round's policy."""
        if self.config.executor != "ray":
            return None
        from klong.rollout.ray_executor import RayExecutor

        return RayExecutor(self._model_factory(), self.tokenizer, address=self.config.ray_address)

    # -- the serving engine (rollout_backend: vllm) ----------------------------------------------------------------

    @property
    def sync_mode(self) -> str:
        cfg = self.config
        return cfg.weight_sync if cfg.weight_sync != "auto" else ("lora" if cfg.lora is not None else "full")

    async def _start_server(self, state: dict[str, Any]) -> None:
        """Start the server with the current policy (or attach to one and give it the current policy), and check it."""
        from klong.models.vllm_server import VLLMServer
        from klong.train import weight_sync

        cfg = self.config
        if cfg.generation.base_url:
            self.server = await asyncio.to_thread(VLLMServer.attach, cfg.generation.base_url)
            behind = bool(state["done"])
        elif self.sync_mode == "lora":
            launch = cfg.generation.vllm.model_copy(update={"enable_lora": True})
            self.server = await asyncio.to_thread(VLLMServer.start, cfg.policy_path, launch)
            behind = bool(state["done"]) and (self.out / "checkpoints" / "latest" / "policy").exists()
        else:  # started from the current weights: nothing to sync, only to check
            folder = await asyncio.to_thread(weight_sync.write_serving_folder, self.policy, self.tokenizer,
                                             self.out / "serving" / "policy")  # fmt: skip
            self.server = await asyncio.to_thread(VLLMServer.start, folder, cfg.generation.vllm)
            behind = False
        self.server.version = self.version
        self._synced = await self._sync() if behind else {"sync_seconds": 0.0, "probe_max_diff": await self._verify()}

    async def _sync(self) -> dict[str, float]:
        """Give the server the current policy (after an update, or on resume) and check that it took it."""
        from klong.train import weight_sync

        cfg = self.config
        if self.sync_mode == "lora":
            folder = self.out / "checkpoints" / "latest" / "policy"
        else:
            folder = await asyncio.to_thread(weight_sync.write_serving_folder, self.policy, self.tokenizer,
                                             self.out / "serving" / "policy")  # fmt: skip
        seconds = await asyncio.wait_for(
            asyncio.to_thread(
                weight_sync.sync, self.server, folder, self.sync_mode, timeout=cfg.sync_timeout, version=self.version
            ),
            cfg.sync_timeout + 30,
        )
        return {"sync_seconds": seconds, "probe_max_diff": await self._verify()}

    async def _verify(self) -> float:
        from klong.train import weight_sync

        return await asyncio.to_thread(weight_sync.verify, self.server, self.policy, self.tokenizer,
                                       self.config.probe_tolerance)  # fmt: skip

    async def _iteration(self, m: int, i: int, stage, queue: GradingQueue, state: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        done = state["done"]
        rng = random.Random(cfg.seed * 7919 + done)
        tasks = rng.sample(self.tasks, min(cfg.tasks_per_iteration, len(self.tasks)))
        out = self.out / "stages" / f"s{m}" / f"it{i}"
        agent = self._agent_config(stage.timeout, stage.max_turns, stage.context_tokens)
        started = asyncio.get_running_loop().time()
        results, counts = await self._rollouts(tasks, out, agent, cfg.group_size, queue, "train")
        graded = asyncio.get_running_loop().time()
        rollout_seconds = counts.pop("rollouts_done_at") - started
        windows, skipped = self._windows(results)
        update = await self._update(windows, rng) if windows else {"windows": 0}
        rewards = [float(r["grade"]["score"]) for r in results.values()] or [0.0]
        trajs = [r["trajectory"] for r in results.values()]
        record = {
            "iteration": done + 1, "stage": m, "stage_iteration": i, "timeout": stage.timeout,
            "tasks": [t.id for t in tasks], "rollouts": len(results), "reward_mean": statistics.mean(rewards),
            "reward_std": statistics.pstdev(rewards),
            "timeout_share": sum(t.stop_reason is StopReason.TIMEOUT for t in trajs) / max(1, len(trajs)),
            "turns_per_rollout": statistics.mean(t.assistant_turns() for t in trajs) if trajs else 0.0,
            "tokens_per_rollout": statistics.mean(sum(len(m.token_ids or []) for m in t.messages) for t in trajs)
            if trajs else 0.0,
            **counts, "groups_without_baseline": skipped,
            "judge_latency": statistics.mean(r["latency"] for r in results.values()) if results else 0.0,
            "judge_queue_depth_max": self._depth, "rollout_seconds": rollout_seconds,
            "grading_tail_seconds": graded - started - rollout_seconds,
            "seconds": asyncio.get_running_loop().time() - started, **update,
        }  # fmt: skip
        state.update({"stage": m, "iteration": i + 1, "done": done + 1})
        if i + 1 == stage.iterations:
            state.update({"stage": m + 1, "iteration": 0})
        record.update(self._synced)  # how the weights these rollouts sampled from reached the server
        self.metrics.write(record, done + 1)
        self._save(state)
        self.version = done + 1
        if cfg.rollout_backend == "vllm":
            self._synced = await self._sync()
        if cfg.rollout_backend == "openai" and cfg.reload_command:
            command = cfg.reload_command.replace(
                "{checkpoint}", shlex.quote(str(self.out / "checkpoints" / "latest" / "policy"))
            )
            if subprocess.run(command, shell=True).returncode != 0:
                raise KlongError(f"reload_command failed: {command}")
        if self.progress:
            self._log(f"{stage_label(cfg.stages, m)}, iteration {i + 1}/{stage.iterations}: reward "
                      f"{record['reward_mean']:.3f} +- {record['reward_std']:.3f}, kl {record.get('kl', 0):.4f}, "
                      f"clip {record.get('clip_fraction', 0):.3f}"
                      + (f", {counts['infra_failures']} infrastructure failures" if counts["infra_failures"] else ""))  # fmt: skip
        return record

    @staticmethod
    def _log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)  # progress goes to stderr: stdout is for results (`--json`)

    async def _evaluate(self, m: int, queue: GradingQueue) -> dict[str, Any]:
        cfg = self.config
        timeout = cfg.eval_timeout or cfg.stages[-1].timeout
        out = self.out / "stages" / f"s{m}" / "eval"
        agent = self._agent_config(timeout, None, None)
        results, counts = await self._rollouts(self.eval_tasks, out, agent, 1, queue, "eval")
        scores = [float(r["grade"]["score"]) for r in results.values()]
        record = {"eval_after_stage": m, "eval_timeout": timeout,
                  "eval_score": statistics.mean(scores) if scores else None,
                  "eval_scores": {k: float(r["grade"]["score"]) for k, r in sorted(results.items())},
                  "eval_infra_failures": counts["infra_failures"], "eval_left_out": counts["left_out"]}  # fmt: skip
        self.metrics.write(record, m)
        if self.progress:
            score = "n/a" if record["eval_score"] is None else f"{record['eval_score']:.3f}"
            self._log(f"{stage_label(cfg.stages, m)}: evaluation score {score} over {len(scores)} held-out tasks "
                      f"(timeout {format_duration(timeout)})")  # fmt: skip
        return record


RUN_FILES = ("state.json", "checkpoints", "stages", "metrics.jsonl", "config.yaml", "meta.json")
"""What an RL run writes into its output dir (what `--redo` sets aside)."""


def run_rl(
    config: RLConfig, *, resume: bool = False, redo: bool = False, progress: bool = True
) -> list[dict[str, Any]]:
    """Train; `resume` continues the run `output_dir` holds from its last finished iteration, `redo` sets that run
    aside (`output_dir/replaced/<k>/`) and starts over; with neither, an `output_dir` holding a run is an error (and
    nothing in it is touched)."""
    if resume and redo:
        raise ConfigError("--resume and --redo exclude each other")
    out = Path(config.output_dir)
    threads = apply_torch_threads(config.torch_threads)
    if progress:
        RLTrainer._log(threads.describe())
    trainer = RLTrainer(config, progress=progress)  # inputs first: tasks, tokenizer, judge
    if redo:
        set_aside(out, RUN_FILES)
    if (out / "state.json").exists() and not resume:
        raise ConfigError(f"{out} holds an RL run already: continue it with --resume, start over with --redo (the old "
                          "run is kept under replaced/), or use another output_dir")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_config(out / "config.yaml", config)
    from klong.provenance import collect_run_meta
    from klong.schema import write_run_meta

    meta = collect_run_meta()
    meta.extra = {"torch_threads": threads.threads, "torch_threads_reason": threads.reason}
    write_run_meta(out / "meta.json", meta)
    return asyncio.run(trainer._run(resume))


class ServedPolicy:
    """`rollout_backend: vllm` on Ray: a model on a worker sampling from the trainer's vLLM server as it is now."""

    def __init__(self, policy_path: str, generation, view) -> None:
        self.policy_path, self.generation, self.view = policy_path, generation, view

    def __call__(self):
        from klong.models.vllm_model import VLLMModel
        from klong.models.vllm_server import VLLMServer

        return VLLMModel(self.policy_path, self.generation, server=VLLMServer.from_view(self.view))
