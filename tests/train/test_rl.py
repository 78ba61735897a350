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
        # on-policy first step: the trainer's log-probabilities are the recorded sampling ones
        assert r["first_step_ratio_dev_max"] < 1e-4 and r["first_step_clip_fraction"] == 0.0
        assert r["infra_failures"] == 0
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


@pytest.mark.slow
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


@pytest.mark.parametrize("mode", ["rerun", "drop"])
def test_infrastructure_failures_are_never_trained(tmp_path, tiny_model_dir, qwen_tokenizer, mode):
    """The policy is served over HTTP (a real OpenAI-compatible server on 127.0.0.1 answering with token ids and
    logprobs); its first answer is a 500 with no SDK retry left, so one rollout ends with `model_error`. That rollout
    is never graded nor trained: re-run (and its failed attempt kept) or left out of its group, and counted."""
    from klong.models.fake_openai import FakeOpenAIServer
    from klong.schema import StopReason

    end = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    answered = []

    def respond(body):
        answered.append(body)
        if len(answered) == 1:
            return {"status": 500, "message": "the inference server lost a GPU"}
        text = f"thinking about step {len(answered)}"
        ids = qwen_tokenizer.encode(text) + [end]
        return {"content": text, "token_ids": ids, "logprobs": [-0.7] * len(ids)}

    out = tmp_path / "rl"
    with FakeOpenAIServer(respond) as server:
        cfg = settings(tmp_path, tiny_model_dir, out) + [
            "rollout_backend=openai", f"generation.base_url={server.base_url}", "generation.max_retries=0",
            "concurrency=1", f"infra_failures={mode}", "stages=[{timeout: 100, iterations: 1}]",
        ]  # fmt: skip
        records = run_rl(load_config(RLConfig, cfg), progress=False)
    record = records[0]
    assert record["infra_failures"] == 1
    it = out / "stages" / "s0" / "it0"
    grades = sorted(p.stem for p in (it / "grades").glob("*.json"))
    trajectories = [read_trajectory(p) for p in (it / "rollouts" / "trajectories").glob("*.json")]
    if mode == "rerun":
        assert record["reruns"] == 1 and record["left_out"] == 0 and record["rollouts"] == 4 and len(grades) == 4
        (failed,) = (it / "rollouts" / "failed").iterdir()
        assert read_trajectory(failed / "trajectory.json").stop_reason is StopReason.MODEL_ERROR
        assert all(not t.stop_reason.is_infrastructure for t in trajectories)
    else:
        assert record["reruns"] == 0 and record["left_out"] == 1 and record["rollouts"] == 3 and len(grades) == 3
        bad = [t for t in trajectories if t.stop_reason.is_infrastructure]
        assert len(bad) == 1 and bad[0].id not in grades
    # exactly the graded rollouts' windows are trained
    from klong.data.split import split_trajectory

    graded = [t for t in trajectories if t.id in grades]
    assert record["windows"] == sum(
        s.num_trained > 0 for t in graded for s in split_trajectory(t, qwen_tokenizer).samples
    )
    assert all(m.sampling.logprobs == "raw" for t in trajectories for m in t.messages if m.role == "assistant"
               and m.logprobs is not None)  # fmt: skip
