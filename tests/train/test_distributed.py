"""Data-parallel SFT is one model: a real `accelerate launch` with two processes (gloo, on CPU) gives every rank the
same gradients, equal to one process on the same global batch, for every loss path; a whole `klong sft` run under two
processes (with a short last step and evaluation) logs the losses of a one-process run.

FSDP and DeepSpeed ZeRO-3 need GPUs under accelerate: the `gpu` test below (and benchmarks/gpu_check.sh) covers them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from klong.config import load_config
from klong.train.config import SFTConfig
from klong.train.sft import run_sft
from tests.train.test_sft import windows, write_windows

PROBE = Path(__file__).with_name("dist_probe.py")
IMPLS = ["fused", "logits_to_keep", "full"]


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _launch(args: list[str], *, procs: int, extra: list[str] | None = None, env: dict | None = None, timeout=600):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(procs), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", _port(),
           *(extra if extra is not None else ["--multi_gpu"]), *args]  # fmt: skip
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env if env is not None else {"ACCELERATE_USE_CPU": "1"})}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=run_env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def _compare(out: Path, procs: int, impl: str) -> None:
    ranks = [torch.load(out / f"{impl}-{procs}-rank{r}.pt") for r in range(procs)]
    single = torch.load(out / f"{impl}-1-rank0.pt")
    assert sum(r["loss"] for r in ranks) == pytest.approx(single["loss"], rel=1e-6)
    for name, ref in single["grads"].items():
        denom = ref.norm().clamp_min(1e-30)
        for r, rank in enumerate(ranks):
            assert torch.equal(rank["grads"][name], ranks[0]["grads"][name]), (impl, name, r)  # synchronised
            assert float((rank["grads"][name] - ref).norm() / denom) < 1e-5, (impl, name)


def test_two_processes_give_every_rank_the_gradient_of_the_global_batch(tmp_path, tiny_model_dir):
    data = write_windows(tmp_path / "w.parquet", windows(n=7, seed=4))  # 7 windows: a step of 4 rows
    out = tmp_path / "grads"
    out.mkdir()
    _launch([str(PROBE), str(tiny_model_dir), str(data), str(out), *IMPLS], procs=2)
    from tests.train.dist_probe import main as one_process

    one_process(str(tiny_model_dir), str(data), str(out), IMPLS)
    for impl in IMPLS:
        _compare(out, 2, impl)


def _losses(run: Path) -> dict[int, float]:
    return {
        m["step"]: m["loss"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in m
    }


@pytest.mark.slow
def test_klong_sft_under_two_processes_logs_the_losses_of_one(tmp_path, tiny_model_dir):
    """Whole runs: 7 windows at 4 rows per step make a short last step (3 rows: one rank pads with a zero-weight row);
    evaluation runs on an odd number of rows. Unsynchronised ranks would drift apart from the second step on."""
    data = write_windows(tmp_path / "w.parquet", windows(n=7, seed=5))
    settings = [f"model={tiny_model_dir}", f"train_data=[{data}]", f"eval_data=[{data}]", "pack_length=130",
                "rows_per_step=4", "learning_rate=3e-3", "epochs=2", "warmup_ratio=0", "schedule=constant",
                "max_grad_norm=0", "gradient_checkpointing=false"]  # fmt: skip
    run_sft(load_config(SFTConfig, [*settings, f"output_dir={tmp_path / 'one'}"]), progress=False)
    args = ["-m", "klong", "sft", *[a for kv in [*settings, f"output_dir={tmp_path / 'two'}"] for a in ("-c", kv)]]
    _launch(args, procs=2)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) >= 4
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-4), step
    final = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()][-1]
    reference = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final_eval_loss"] == pytest.approx(reference["final_eval_loss"], rel=1e-4)


def test_processes_without_distribution_are_refused(tmp_path, tiny_model_dir):
    """`accelerate launch --multi_gpu` on a machine without GPUs and without ACCELERATE_USE_CPU starts processes that
    each believe they are alone: klong refuses to train that way."""
    data = write_windows(tmp_path / "w.parquet", windows(n=4))
    settings = [f"model={tiny_model_dir}", f"train_data=[{data}]", f"output_dir={tmp_path / 'run'}", "max_steps=1"]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", _port(),
           "-m", "klong", "sft", *[a for kv in settings for a in ("-c", kv)]]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "ACCELERATE_USE_CPU"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode != 0 and "ACCELERATE_USE_CPU=1" in done.stderr


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["fsdp", "zero3"])
def test_sharded_training_gives_the_gradient_of_the_global_batch(tmp_path, tiny_model_dir, backend):
    """FSDP2 and ZeRO-3 gather the root parameters (embeddings, output layer) only inside the wrapped forward: the
    fused loss runs there (TokenLoss), so sharded gradients equal the unsharded one-process gradients."""
    if backend == "zero3":
        pytest.importorskip("deepspeed")
    procs = min(2, torch.cuda.device_count())
    data = write_windows(tmp_path / "w.parquet", windows(n=7, seed=4))
    out = tmp_path / "grads"
    out.mkdir()
    extra = (["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
              "--fsdp_reshard_after_forward", "true"] if backend == "fsdp"
             else ["--use_deepspeed", "--zero_stage", "3", "--zero3_init_flag", "false"])  # fmt: skip
    _launch([str(PROBE), str(tiny_model_dir), str(data), str(out), *IMPLS], procs=procs, extra=extra, env={})
    from tests.train.dist_probe import main as one_process

    one_process(str(tiny_model_dir), str(data), str(out), IMPLS)
    for impl in IMPLS:
        single = torch.load(out / f"{impl}-1-rank0.pt", map_location="cpu")
        sharded = torch.load(out / f"{impl}-{procs}-rank0.pt", map_location="cpu")
        assert sharded["grads"].keys() == single["grads"].keys()
        for name, ref in single["grads"].items():
            rel = float((sharded["grads"][name].float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30))
            assert rel < 1e-4, (backend, impl, name, rel)
