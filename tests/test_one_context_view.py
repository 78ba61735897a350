"""The central invariant, driven end to end: what the runtime gave the model is what training sees.

A real `Episode` runs the tiny random-weight model (`hf:`) at T=0.7 from a checkpoint whose generation config asks for
a repetition penalty (and top-k, and another temperature) that klong must not apply; `max_tokens` is small, so most
generations are cut; the window is small, so there are several epochs; the model's own limit is below the window, so
the server-side context-length error forces new epochs; the run is killed with SIGKILL and resumed. Its trajectory is
then split with `klong split`'s default flags, and every window is compared with what the runtime recorded the model
was given at each call (prompt length and fingerprint, computed by the model backend from the ids it fed the model):
each window is that prompt followed by exactly the sampled ids. The first PPO step on these windows, with the recorded
sampling logprobs, has ratio 1 (1e-4) and clips nothing. The same for `epoch`, `truncate` and `sliding` where the
window's budget binds exactly (a call whose prompt plus `max_tokens` fills the window).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.chat.render import prompt_digest
from klong.data.split import read_samples, split_trajectory
from klong.models import load_model
from klong.models.config import ModelConfig
from klong.models.tiny import TinyModelConfig, build_tiny_model
from klong.models.tokenizer import load_tokenizer
from klong.rollout.runner import run_rollouts
from klong.schema import Trajectory, read_trajectory
from klong.train.common import load_model as load_trainable
from klong.train.common import make_optimizer
from klong.train.data import Window, read_windows, window_of
from klong.train.ppo import PPOUpdate
from klong.train.rl_config import RLConfig
from tests.tasks import make_task

WINDOW = 1700
MODEL_LIMIT = 1660  # the model refuses prompts + max_tokens above this: a context-length error inside the window
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    out = build_tiny_model(tmp_path_factory.mktemp("penalised"), qwen_tokenizer_dir,
                           TinyModelConfig(max_position_embeddings=MODEL_LIMIT, seed=3))  # fmt: skip
    config = json.loads((out / "generation_config.json").read_text())
    config.update(repetition_penalty=1.3, top_k=20, temperature=0.2, do_sample=True)  # what klong must not apply
    (out / "generation_config.json").write_text(json.dumps(config))
    return out


def _agent_args(policy: str) -> list[str]:
    return ["--clock", "virtual", "--max-len", str(WINDOW), "--temperature", "0.7", "--max-tokens", str(MAX_TOKENS),
            "-c", f"context.policy={policy}", "-c", "context.overlap_tokens=150", "-c", "context.pin_turns=1"]  # fmt: skip


def _assistants(traj: Trajectory):
    return [m for m in traj.messages if m.role == "assistant"]


def check_windows(traj: Trajectory, rows: list[dict], window: int = WINDOW) -> None:
    """Every recorded call has exactly one window holding the recorded prompt, then the sampled ids, trained."""
    owners = {t: r for r in rows for t in range(r["first_turn"], r["last_turn"] + 1)}
    for t, m in enumerate(_assistants(traj)):
        record = m.meta["context"]
        assert "prompt_sha" in record and "view_sha" in record  # the hf backend reports the ids it fed the model
        row = owners[t]
        k = record["prompt_tokens"]
        ids = row["input_ids"]
        assert prompt_digest(ids[:k]) == record["prompt_sha"], f"turn {t}: window prompt is not what the model got"
        assert ids[k : k + len(m.token_ids)] == m.token_ids, f"turn {t}: window does not continue with the sample"
        assert set(row["assistant_masks"][k : k + len(m.token_ids)]) == {1}
        assert len(ids) <= window
    assert len(owners) == len(_assistants(traj))  # every turn trained in exactly one window (first/last disjoint)
    assert sum(r["num_trained"] for r in rows) == sum(len(m.token_ids) for m in _assistants(traj))


def window_rows(result) -> list[dict]:
    """The split's windows as `check_windows` reads them (the columns of `klong split`'s output)."""
    return [{"input_ids": s.input_ids, "assistant_masks": s.loss_mask, "first_turn": s.first_turn,
             "last_turn": s.last_turn, "num_trained": s.num_trained} for s in result.samples]  # fmt: skip


def first_ppo_step(model_dir: Path, windows: list[Window], tmp_path: Path, window: int = WINDOW) -> dict:
    for i, w in enumerate(windows):
        w.advantage = 1.0 if i % 2 else -1.0
    cfg = RLConfig(policy=str(model_dir), output_dir=str(tmp_path / "rl"), tasks=[str(tmp_path)],
                   stages=[{"timeout": 60}], pack_length=2 * window, gradient_checkpointing=False)  # fmt: skip
    policy = load_trainable(str(model_dir), gradient_checkpointing=False)
    reference = load_trainable(str(model_dir), gradient_checkpointing=False)
    optimizer = make_optimizer(policy, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8)
    import torch

    update = PPOUpdate(policy, reference, optimizer, cfg, torch.device("cpu"), norm_tokens=window)
    return update(windows, random.Random(0))


def _klong(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "klong", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_epoch_run_killed_and_resumed_splits_into_exactly_its_views(tmp_path, model_dir):
    make_task(tmp_path / "tasks", paragraphs=2)
    out = tmp_path / "run"
    common = [str(tmp_path / "tasks" / "toy"), "--model", f"hf:{model_dir}", "--out", str(out), "--seed", "0",
              "--max-turns", "26", *_agent_args("epoch")]  # fmt: skip
    traj_path = out / "trajectories" / "toy__a0.json"
    proc = _klong("run", *common)
    deadline = time.monotonic() + 300
    while True:  # SIGKILL once a few turns are saved
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-3000:]
        try:
            if len(_assistants(read_trajectory(traj_path))) >= 10:
                break
        except Exception:
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    resumed = _klong("run", *common, "--resume")
    assert resumed.wait(300) == 0, resumed.stderr.read().decode()[-3000:]

    traj = read_trajectory(traj_path)
    assistants = _assistants(traj)
    records = [m.meta["context"] for m in assistants]
    assert len(assistants) == 26 and traj.stop_reason.value == "max_turns"
    assert len({r["epoch"] for r in records}) >= 3, "several epochs"
    assert any(r.get("forced") for r in records), "a new epoch forced by a context-length error"
    assert sum(m.finish_reason == "length" for m in assistants) >= 15, "generations cut at max_tokens"
    assert all(m.sampling.temperature == 0.7 and m.sampling.logprobs == "processed" for m in assistants)

    # klong split with its default flags: settings and tokenizer from the run itself; it checks every call too
    from typer.testing import CliRunner

    from klong.cli import app

    split = CliRunner().invoke(
        app, ["split", str(out / "trajectories"), "--out", str(tmp_path / "w.parquet"), "--json"]
    )
    assert split.exit_code == 0, split.output
    assert json.loads(split.stdout)["checked_calls"] == len(assistants)
    rows = read_samples(tmp_path / "w.parquet")
    assert len(rows) >= 3 and all(r["checked"] for r in rows)
    check_windows(traj, rows)

    stats = first_ppo_step(model_dir, read_windows(tmp_path / "w.parquet"), tmp_path)
    assert stats["first_step_ratio_dev_max"] < 1e-4, stats
    assert stats["first_step_clip_fraction"] == 0.0


@pytest.fixture(scope="module")
def roomy_model_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    """The same penalised checkpoint, but whose own limit is far above the window: only the window's budget binds."""
    out = build_tiny_model(tmp_path_factory.mktemp("roomy"), qwen_tokenizer_dir, TinyModelConfig(seed=3))
    config = json.loads((out / "generation_config.json").read_text())
    config.update(repetition_penalty=1.3, top_k=20, temperature=0.2, do_sample=True)
    (out / "generation_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def budget_binding_window(roomy_model_dir, tmp_path_factory) -> int:
    """A window at which the runtime's budget binds exactly: call 6's prompt plus `max_tokens` is the whole window.
    Measured on the same episode (same seed) with a window too large to bind: until the budget first binds, the views
    and hence the seeded samples are the same whatever the window, so call 6's prompt is known to the token."""
    root = tmp_path_factory.mktemp("calibrate")
    _, prompts = _episode(root, roomy_model_dir, "epoch", 8192, turns=7, seed=1)
    return prompts[6] + MAX_TOKENS


def _episode(root: Path, model_dir: Path, policy: str, window: int, *, turns: int, seed: int):
    task = make_task(root / "tasks", paragraphs=2)
    agent = AgentConfig(clock="virtual", max_turns=turns,
                        context=ContextConfig(policy=policy, max_context_tokens=window, overlap_tokens=150,
                                              pin_turns=1))  # fmt: skip
    gen = ModelConfig(temperature=0.7, max_tokens=MAX_TOKENS, seed=seed)
    asyncio.run(run_rollouts([task], model_factory=lambda: load_model(f"hf:{model_dir}", gen), sandbox="local",
                             config=agent, out_dir=root / "run"))  # fmt: skip
    traj = read_trajectory(root / "run" / "trajectories" / "toy__a0.json")
    return traj, [m.meta["context"]["prompt_tokens"] for m in _assistants(traj)]


@pytest.mark.parametrize("policy", ["epoch", "truncate", "sliding"])
def test_windows_are_the_views_where_the_budget_binds_exactly(tmp_path, roomy_model_dir, budget_binding_window, policy):
    """Cut generations at the exact edge of the window: the call whose prompt + max_tokens fills the window was made
    by the runtime, and the splitter must make the same decision (a window ends where sampling ended)."""
    window = budget_binding_window
    traj, prompts = _episode(tmp_path, roomy_model_dir, policy, window, turns=10, seed=1)
    assert any(p + MAX_TOKENS == window for p in prompts), (window, prompts)  # the budget did bind exactly
    if policy == "truncate":  # it keeps the start, so the episode ends once the window is full
        assert traj.stop_reason.value == "context_exhausted"
    else:
        assert len({m.meta["context"]["epoch"] for m in _assistants(traj)}) >= 2
    result = split_trajectory(traj, load_tokenizer(roomy_model_dir))  # the recorded settings, checked
    assert result.checked_calls == len(prompts) and not result.dropped_turns
    rows = window_rows(result)
    check_windows(traj, rows, window)
    stats = first_ppo_step(roomy_model_dir, [window_of(s) for s in result.samples], tmp_path, window)
    assert stats["first_step_ratio_dev_max"] < 1e-4 and stats["first_step_clip_fraction"] == 0.0
