"""Progressive RL end to end on CPU: the tiny model, synthetic tasks graded by programmatic checks, virtual clock."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from transformers import AutoModelForCausalLM

from klong.config import load_config
from klong.schema import read_trajectory
from klong.task import Task, write_task
from klong.train.rl import run_rl
from klong.train.rl_config import RLConfig


def synthetic_tasks(root, n=2):
    """Each task's single leaf is checked by a command. The rollout's attempt number shows in the submission's path,
    so attempts 0 and 2 pass and 1 and 3 fail: a deterministic spread of rewards within every group (a random-weight
    model cannot earn any on merit) that exercises the whole machinery."""
    for i in range(n):
        rubric = {"id": "r", "requirements": "paper", "weight": 1, "task_category": None, "finegrained_task_category": None,
                  "sub_tasks": [{"id": "leaf", "requirements": "even attempt", "weight": 1, "sub_tasks": [],
                                 "task_category": "Result Analysis", "finegrained_task_category": None,
                                 "check": {"command": "pwd | grep -q '__a[02]/submission'"}}]}  # fmt: skip
        write_task(root / f"task{i}", Task(id=f"task{i}", paper=f"# Paper {i}\n\nDo experiment {i}.\n", rubric=rubric))
    return root


def settings(tmp_path, model, out, iterations=1, tasks=1, group=4):
    return [f"policy={model}", f"output_dir={out}", f"tasks=[{synthetic_tasks(tmp_path / 'tasks')}]",
            f"stages=[{{timeout: 100, iterations: {iterations}}}, {{timeout: 200, iterations: 1}}]",
            f"tasks_per_iteration={tasks}", f"group_size={group}", "agent.clock=virtual", "agent.mandatory_reading=false",
            "agent.turn_cost=30", "agent.context.max_context_tokens=4096", "generation.max_tokens=8",
            "generation.seed=0", "learning_rate=1e-3", "beta=0.05", "ppo_epochs=2", "concurrency=8",
            "gradient_checkpointing=false", "pack_length=4096"]  # fmt: skip


def test_two_stages_end_to_end(tmp_path, tiny_model_dir):
    out = tmp_path / "rl"
    before = {n: p.clone() for n, p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).named_parameters()}
    records = run_rl(load_config(RLConfig, settings(tmp_path, tiny_model_dir, out)), progress=False)
    assert [r["stage"] for r in records] == [0, 1] and [r["timeout"] for r in records] == [100, 200]
    for r in records:
        assert r["rollouts"] == 4 and r["reward_mean"] == 0.5 and r["reward_std"] == 0.5
        assert r["timeout_share"] == 1.0 and r["windows"] >= 4  # every rollout hit the stage's limit, was graded, used
        for key in (
            "kl",
            "clip_fraction",
            "policy_loss",
            "judge_latency",
            "judge_queue_depth_max",
            "tokens_per_rollout",
        ):
            assert key in r
    # 30 s per turn: 4 turns fit 100 s, 7 fit 200 s
    assert records[0]["turns_per_rollout"] == 4 and records[1]["turns_per_rollout"] == 7
    task = records[0]["tasks"][0]
    traj = read_trajectory(out / "stages" / "s0" / "it0" / "rollouts" / "trajectories" / f"{task}__a0.json")
    assert traj.time_limit == 100 and all(m.token_ids for m in traj.messages if m.role == "assistant")
    grade = json.loads((out / "stages" / "s0" / "it0" / "grades" / f"{task}__a0.json").read_text())
    assert grade["score"] == 1.0
    after = dict(AutoModelForCausalLM.from_pretrained(out / "checkpoints" / "latest" / "policy").named_parameters())
    assert [n for n, p in before.items() if torch.equal(p, after[n])] == []
    assert json.loads((out / "state.json").read_text()) == {"stage": 2, "iteration": 0, "done": 2}


def test_resume_after_a_kill_continues_from_the_last_finished_iteration(tmp_path, tiny_model_dir):
    out = tmp_path / "rl"
    cfg = settings(tmp_path, tiny_model_dir, out, iterations=2, group=2)
    args = [a for kv in cfg for a in ("-c", kv)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "klong", "rl", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while not (out / "state.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-3000:]
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = json.loads((out / "state.json").read_text())["done"]
    assert done_before >= 1
    with pytest.raises(Exception, match="--resume"):
        run_rl(load_config(RLConfig, cfg), progress=False)
    records = run_rl(load_config(RLConfig, cfg), resume=True, progress=False)
    assert [r["iteration"] for r in records] == list(range(done_before + 1, 4))
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["iteration"] for x in lines] == [1, 2, 3]
    assert json.loads((out / "state.json").read_text())["done"] == 3
