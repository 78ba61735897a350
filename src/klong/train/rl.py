"""Progressive RL: stages of growing rollout timeouts, judge rewards, PPO-clip with a KL penalty over split windows.

    for stage m (timeout T_m), for each iteration:
        sample tasks; run n rollouts per task with the current policy under T_m (the runtime: same sandbox, tools,
            context policy); a rollout that reaches T_m ends normally and is graded like any other
        grade each rollout as soon as it finishes (a judge queue beside the rollouts; evaluation jobs first) -> Q
        split every rollout with the runtime's own ContextPolicy into windows (the sampled ids and logprobs as recorded)
        advantages: Q minus the mean Q over all windows of the task's n rollouts (`klong.train.rl_loss`)
        `ppo_epochs` passes of PPO-clip + beta * KL(reference) averaged over the n x K windows
        save the policy and the iteration's state; a restart continues from the last finished iteration
    after each stage: roll out and grade the evaluation tasks

Layout: `state.json`, `metrics.jsonl` (one line per iteration, plus `eval` lines), `checkpoints/latest/` (policy,
optimizer, RNG), `stages/s<m>/it<i>/{rollouts,grades}/`.
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from klong.chat.context import ContextConfig
from klong.config import write_config
from klong.data.split import split_trajectory
from klong.exceptions import ConfigError, KlongError, StopReason
from klong.io import atomic_write_json, read_json
from klong.judge.grade import grade_submission, make_judge, write_grade
from klong.judge.queue import GradingQueue
from klong.rollout.runner import run_id_for, run_rollouts
from klong.schema import Trajectory, read_trajectory
from klong.task import Task, find_tasks
from klong.train.common import MetricsLog, load_model, make_optimizer, row_tensors
from klong.train.data import Window, pack
from klong.train.loss import target_logprobs
from klong.train.rl_config import RLConfig
from klong.train.rl_loss import ppo_kl_loss, rollout_advantages


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

    # -- state -----------------------------------------------------------------------------------------------------
    def _load(self, resume: bool) -> dict[str, Any]:
        state_path = self.out / "state.json"
        latest = self.out / "checkpoints" / "latest"
        if state_path.exists() and not resume:
            raise ConfigError(
                f"{self.out} holds an RL run already: continue it with --resume or use another output_dir"
            )
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
        cfg = self.config
        if cfg.rollout_backend == "hf":
            from klong.models.hf_local import HFModel

            shared = HFModel.from_loaded(self.policy, self.tokenizer, cfg.generation)
            return lambda: shared
        from klong.models import load_model as load_spec

        return lambda: load_spec(f"openai:{cfg.served_model}", cfg.generation.model_copy(update={"logprobs": True}))

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
                        priority: str) -> dict[str, dict[str, Any]]:  # fmt: skip
        """Run the rollouts, submitting each to the judge queue as it finishes; returns run id -> grade."""
        by_id = {t.id: t for t in tasks}
        futures: dict[str, asyncio.Future] = {}
        self._depth = 0

        def submit(traj: Trajectory) -> None:
            if traj.id not in futures:
                futures[traj.id] = queue.submit((traj, out, by_id[traj.task_id]), priority)  # type: ignore[arg-type]
                self._depth = max(self._depth, queue.depth)

        await run_rollouts(tasks, model_factory=self._model_factory(), sandbox=self.config.sandbox, config=agent,
                           out_dir=out / "rollouts", attempts=attempts, concurrency=self.config.concurrency,
                           resume=True, tokenizer=self.tokenizer,
                           on_update=lambda traj, event: submit(traj) if traj.finished else None)  # fmt: skip
        for task in tasks:  # rollouts finished by an earlier process are graded too
            for a in range(attempts):
                rid = run_id_for(task, a)
                if rid not in futures:
                    submit(read_trajectory(out / "rollouts" / "trajectories" / f"{rid}.json"))
        return {rid: await f for rid, f in futures.items()}

    async def _grade(self, job) -> dict[str, Any]:
        traj, out, task = job
        path = out / "grades" / f"{traj.id}.json"
        if path.exists():
            return {"grade": read_json(path), "trajectory": traj, "latency": 0.0}
        violations = traj.meta.get("monitor", {}).get("blacklist_violations", [])
        started = time.monotonic()
        grade = await grade_submission(out / "rollouts" / "workspaces" / traj.id / "submission", task, self.judge,
                                       disqualified=violations[0]["resource"] if violations else None)  # fmt: skip
        write_grade(path, grade)
        return {"grade": grade, "trajectory": traj, "latency": time.monotonic() - started}

    # -- the update ------------------------------------------------------------------------------------------------
    def _windows(self, results: dict[str, dict[str, Any]]) -> list[Window]:
        cfg = self.config
        groups: dict[str, list[tuple[float, list[Window]]]] = {}
        for rid, r in sorted(results.items()):
            traj: Trajectory = r["trajectory"]
            context = ContextConfig.model_validate(traj.meta["context"])
            samples = split_trajectory(traj, self.tokenizer, context).samples
            windows = [Window(s.input_ids, s.loss_mask, rid, s.window, s.logprobs) for s in samples if s.num_trained]
            groups.setdefault(traj.task_id or "", []).append((float(r["grade"]["score"]), windows))
        out: list[Window] = []
        for rollouts in groups.values():
            adv = rollout_advantages([q for q, _ in rollouts], [len(w) for _, w in rollouts], baseline=cfg.baseline,
                                     std_normalize=cfg.std_normalize)  # fmt: skip
            for a, (_, windows) in zip(adv, rollouts, strict=True):
                for w in windows:
                    w.advantage = a
                    out.append(w)
        return out

    def _logprobs(self, model, row, grad: bool) -> torch.Tensor:
        t = row_tensors(row, self.device)
        with torch.set_grad_enabled(grad):
            _, logp = target_logprobs(model, t["input_ids"], t["position_ids"], t["positions"], t["targets"],
                                      impl="logits_to_keep", temperature=self.config.generation.temperature)  # fmt: skip
        return logp

    def update(self, windows: list[Window], rng: random.Random) -> dict[str, float]:
        cfg = self.config
        order = list(windows)
        rng.shuffle(order)
        batches = [order[i :: cfg.minibatches] for i in range(cfg.minibatches) if order[i :: cfg.minibatches]]
        plans = []
        for batch in batches:
            weights = {(w.trajectory_id, w.window): 1.0 / (max(1, sum(w.loss_mask[1:])) * len(batch)) for w in batch}
            rows = [r for r in pack(batch, cfg.pack_length, weights) if r.targets]
            plans.append(rows)
        self.policy.eval()
        with torch.no_grad():  # reference logprobs, and old logprobs where the rollout did not record them
            extra = [[(self._logprobs(self.reference, r, False),
                       self._logprobs(self.policy, r, False) if not any(r.old_logprobs) else None) for r in rows]
                     for rows in plans]  # fmt: skip
        self.policy.train()
        stats: list[Any] = []
        grad_norms = []
        for _ in range(cfg.ppo_epochs):
            for rows, refs in zip(plans, extra, strict=True):
                self.optimizer.zero_grad(set_to_none=True)
                for row, (ref, recomputed_old) in zip(rows, refs, strict=True):
                    t = row_tensors(row, self.device)
                    logp = self._logprobs(self.policy, row, True)
                    old = recomputed_old if recomputed_old is not None else t["old_logprobs"]
                    loss, s = ppo_kl_loss(logp, old, ref, t["advantages"], t["weights"], eps_low=cfg.eps_low,
                                          eps_high=cfg.eps_high, beta=cfg.beta)  # fmt: skip
                    loss.backward()
                    stats.append(s)
                if cfg.max_grad_norm > 0:
                    grad_norms.append(
                        float(torch.nn.utils.clip_grad_norm_(self.policy.parameters(), cfg.max_grad_norm))
                    )
                self.optimizer.step()
        n = max(1, cfg.ppo_epochs * len(plans))
        return {"policy_loss": sum(s.policy_loss for s in stats) / n, "kl": sum(s.kl for s in stats) / n,
                "clip_fraction": sum(s.clip_fraction for s in stats) / n, "ratio_mean": sum(s.ratio_mean for s in stats) / n,
                "grad_norm": statistics.mean(grad_norms) if grad_norms else 0.0,
                "windows": len(windows), "trained_tokens": sum(len(r.targets) for rows in plans for r in rows)}  # fmt: skip

    # -- the loop --------------------------------------------------------------------------------------------------
    async def _run(self, resume: bool) -> list[dict[str, Any]]:
        cfg = self.config
        state = self._load(resume)
        records = []
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
        return records

    async def _iteration(self, m: int, i: int, stage, queue: GradingQueue, state: dict[str, Any]) -> dict[str, Any]:
        cfg = self.config
        done = state["done"]
        rng = random.Random(cfg.seed * 7919 + done)
        tasks = rng.sample(self.tasks, min(cfg.tasks_per_iteration, len(self.tasks)))
        out = self.out / "stages" / f"s{m}" / f"it{i}"
        agent = self._agent_config(stage.timeout, stage.max_turns, stage.context_tokens)
        started = time.monotonic()
        results = await self._rollouts(tasks, out, agent, cfg.group_size, queue, "train")
        rollout_seconds = time.monotonic() - started
        windows = self._windows(results)
        update = await asyncio.to_thread(self.update, windows, rng) if windows else {"windows": 0}
        rewards = [float(r["grade"]["score"]) for r in results.values()]
        trajs = [r["trajectory"] for r in results.values()]
        record = {
            "iteration": done + 1, "stage": m, "stage_iteration": i, "timeout": stage.timeout,
            "tasks": [t.id for t in tasks], "rollouts": len(results), "reward_mean": statistics.mean(rewards),
            "reward_std": statistics.pstdev(rewards),
            "timeout_share": sum(t.stop_reason is StopReason.TIMEOUT for t in trajs) / len(trajs),
            "turns_per_rollout": statistics.mean(t.assistant_turns() for t in trajs),
            "tokens_per_rollout": statistics.mean(sum(len(m.token_ids or []) for m in t.messages) for t in trajs),
            "judge_latency": statistics.mean(r["latency"] for r in results.values()),
            "judge_queue_depth_max": self._depth, "rollout_seconds": rollout_seconds,
            "seconds": time.monotonic() - started, **update,
        }  # fmt: skip
        state.update({"stage": m, "iteration": i + 1, "done": done + 1})
        if i + 1 == stage.iterations:
            state.update({"stage": m + 1, "iteration": 0})
        self.metrics.write(record, done + 1)
        self._save(state)
        if cfg.rollout_backend == "openai" and cfg.reload_command:
            command = cfg.reload_command.replace(
                "{checkpoint}", shlex.quote(str(self.out / "checkpoints" / "latest" / "policy"))
            )
            if subprocess.run(command, shell=True).returncode != 0:
                raise KlongError(f"reload_command failed: {command}")
        if self.progress:
            print(f"stage {m} (timeout {stage.timeout:.0f}s) iteration {i}: reward {record['reward_mean']:.3f} "
                  f"+- {record['reward_std']:.3f}, kl {record.get('kl', 0):.4f}, clip {record.get('clip_fraction', 0):.3f}")  # fmt: skip
        return record

    async def _evaluate(self, m: int, queue: GradingQueue) -> dict[str, Any]:
        cfg = self.config
        timeout = cfg.eval_timeout or cfg.stages[-1].timeout
        out = self.out / "stages" / f"s{m}" / "eval"
        results = await self._rollouts(self.eval_tasks, out, self._agent_config(timeout, None, None), 1, queue, "eval")
        scores = [float(r["grade"]["score"]) for r in results.values()]
        record = {"eval_after_stage": m, "eval_timeout": timeout, "eval_score": statistics.mean(scores),
                  "eval_scores": {k: float(r["grade"]["score"]) for k, r in sorted(results.items())}}  # fmt: skip
        self.metrics.write(record, m)
        return record


def run_rl(config: RLConfig, *, resume: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trainer = RLTrainer(config, progress=progress)
    write_config(out / "config.yaml", config)
    from klong.provenance import collect_run_meta
    from klong.schema import write_run_meta

    write_run_meta(out / "meta.json", collect_run_meta())
    return asyncio.run(trainer._run(resume))
