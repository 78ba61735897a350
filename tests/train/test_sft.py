"""SFT on CPU with the tiny-model fixture: equivalence of the loss paths, learning, LoRA, exact resume."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM

from klong.config import load_config
from klong.train.common import load_model, row_tensors
from klong.train.config import SFTConfig
from klong.train.data import Window, epoch_steps, pack, token_weights
from klong.train.loss import target_logprobs
from klong.train.sft import run_sft


def windows(n=6, length=120, seed=0, vocab=(1000, 60000)):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ln = length - rng.randint(0, 40)
        mask = [0] * (ln // 2) + [1] * (ln - ln // 2)
        out.append(Window([rng.randrange(*vocab) for _ in range(ln)], mask, f"traj{i % 3}", i // 3))
    return out


def write_windows(path, ws):
    pq.write_table(pa.table({"input_ids": [w.input_ids for w in ws], "loss_mask": [w.loss_mask for w in ws],
                             "trajectory_id": [w.trajectory_id for w in ws], "window": [w.window for w in ws]}), path)  # fmt: skip
    return path


@pytest.fixture(scope="module")
def small_model(tiny_model_dir):
    return str(tiny_model_dir)


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_loss_paths_and_packing_compute_the_same_thing(small_model):
    ws = windows(n=3)
    weights = token_weights(ws, "token")
    results = {}
    for impl in ("full", "logits_to_keep", "fused"):
        model = load_model(small_model, gradient_checkpointing=impl == "fused")
        row = pack(ws, 10_000, weights)[0]
        t = row_tensors(row, torch.device("cpu"))
        loss, logps = target_logprobs(
            model, t["input_ids"], t["position_ids"], t["positions"], t["targets"], impl=impl, chunk=50
        )
        loss.backward()
        results[impl] = (float(loss), _grads(model), logps.detach())
    # the plain path, one window at a time (no packing)
    model = load_model(small_model, gradient_checkpointing=False)
    total = 0.0
    for w in ws:
        ids = torch.tensor([w.input_ids])
        labels = torch.tensor([[-100 if not m else i for i, m in zip(w.input_ids, w.loss_mask, strict=True)]])
        out = model(input_ids=ids, labels=labels, use_cache=False)
        n = int(sum(w.loss_mask[1:]))
        (out.loss * n).backward()
        total += float(out.loss) * n
    results["unpacked"] = (total, _grads(model), None)
    ref_loss, ref_grads, ref_logps = results["full"]
    for name, (loss, grads, logps) in results.items():
        assert loss == pytest.approx(ref_loss, rel=1e-5), name
        assert grads.keys() == ref_grads.keys()
        for key, g in grads.items():
            denom = ref_grads[key].norm().clamp_min(1e-12)
            assert float((g - ref_grads[key]).norm() / denom) < 1e-4, (name, key)
        if logps is not None:
            assert torch.allclose(logps, ref_logps, atol=1e-5)


def test_packing_plan_is_deterministic_and_complete():
    ws = windows(n=20, length=200)
    a = epoch_steps(ws, seed=3, epoch=1, pack_length=450, rows_per_step=2)
    b = epoch_steps(ws, seed=3, epoch=1, pack_length=450, rows_per_step=2)
    c = epoch_steps(ws, seed=3, epoch=2, pack_length=450, rows_per_step=2)
    assert [[r.windows for r in s] for s in a] == [[r.windows for r in s] for s in b]
    assert [[r.windows for r in s] for s in a] != [[r.windows for r in s] for s in c]
    for step in a:
        for row in step:
            assert len(row) <= 450
            starts = [i for i, p in enumerate(row.position_ids) if p == 0]
            assert len(starts) == len(row.windows)  # position ids restart at every window
    tw = token_weights(ws, "trajectory")
    per_traj = {}
    for w in ws:
        per_traj.setdefault(w.trajectory_id, 0.0)
        per_traj[w.trajectory_id] += tw[(w.trajectory_id, w.window)] * sum(w.loss_mask[1:])
    assert all(v == pytest.approx(1.0) for v in per_traj.values())


def _config(tmp_path, model, data, **kw):
    base = {"model": model, "output_dir": str(tmp_path / "run"), "train_data": [str(data)], "pack_length": 300,
            "rows_per_step": 2, "learning_rate": 3e-3, "warmup_ratio": 0.0, "schedule": "constant", "seed": 1}  # fmt: skip
    return SFTConfig(**{**base, **kw})


def test_loss_falls_and_every_parameter_changes(tmp_path, small_model):
    data = write_windows(tmp_path / "w.parquet", windows(n=4))
    before = {n: p.clone() for n, p in AutoModelForCausalLM.from_pretrained(small_model).named_parameters()}
    cfg = _config(tmp_path, small_model, data, epochs=12, eval_data=[str(data)], max_grad_norm=1.0)
    last = run_sft(cfg, progress=False)
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert losses[-1] < losses[0] - 1.0 and last["eval_loss"] < losses[0] - 1.0
    for key in ("lr", "grad_norm", "tokens", "trained_tokens", "tokens_per_s", "peak_memory_mb"):
        assert key in metrics[0]
    after = dict(AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final").named_parameters())
    unchanged = [n for n, p in before.items() if torch.equal(p, after[n])]
    assert unchanged == []


def test_lora_trains_adapters_and_saves_adapter_and_merged(tmp_path, small_model):
    from peft import PeftModel

    data = write_windows(tmp_path / "w.parquet", windows(n=4))
    cfg = _config(tmp_path, small_model, data, epochs=3, lora={"r": 4, "alpha": 8})
    run_sft(cfg, progress=False)
    final = tmp_path / "run" / "final"
    base = AutoModelForCausalLM.from_pretrained(small_model)
    adapted = PeftModel.from_pretrained(base, final / "adapter")
    lora_weights = {n: p for n, p in adapted.named_parameters() if "lora_B" in n}
    assert lora_weights and all(float(p.abs().sum()) > 0 for p in lora_weights.values())  # B starts at zero
    merged = AutoModelForCausalLM.from_pretrained(final / "merged")
    ids = torch.tensor([windows(n=1)[0].input_ids[:50]])
    with torch.no_grad():
        a = adapted(input_ids=ids).logits
        b = merged(input_ids=ids).logits
        c = AutoModelForCausalLM.from_pretrained(small_model)(input_ids=ids).logits
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(b, c, atol=1e-4)


@pytest.mark.slow
def test_stopped_and_resumed_run_gives_the_same_losses(tmp_path, small_model):
    """Reference run in process; a second run killed with SIGKILL after a checkpoint, then resumed."""
    data = write_windows(tmp_path / "w.parquet", windows(n=30, length=60))
    settings = [f"model={small_model}", f"train_data=[{data}]", "pack_length=150", "rows_per_step=2",
                "learning_rate=3e-3", "epochs=2", "save_every=2", "warmup_ratio=0.2"]  # fmt: skip
    run_sft(load_config(SFTConfig, [*settings, f"output_dir={tmp_path / 'a'}"]), progress=False)

    args = [a for kv in settings for a in ("-c", kv)]
    proc = subprocess.Popen([sys.executable, "-m", "klong", "sft", *args, "-c", f"output_dir={tmp_path / 'b'}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (tmp_path / "b" / "checkpoints" / "step-4" / "trainer_state.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_sft(load_config(SFTConfig, [*settings, f"output_dir={tmp_path / 'b'}"]), resume=True, progress=False)

    def losses(out):
        return {
            m["step"]: m["loss"]
            for m in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if "loss" in m
        }

    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    steps_logged = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged == sorted(set(steps_logged))  # what the killed process logged past step 4 was dropped
    assert a.keys() == b.keys() and len(a) >= 8
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-6), step


def test_trajectories_split_on_the_fly(tmp_path, small_model):
    import shutil

    from tests.shared import shared_path

    src = shared_path("trajectories", "mini-swe-agent")
    subprocess.run([sys.executable, "-m", "klong", "trajectory", "import", *map(str, src.glob("*.json")), "--from",
                    "mini-swe-agent", "--out", str(tmp_path / "trajs")], check=True, capture_output=True)  # fmt: skip
    cfg = load_config(SFTConfig, [f"model={small_model}", f"output_dir={tmp_path / 'run'}", f"train_data=[{tmp_path / 'trajs'}]",
                                  "split.max_context_tokens=1024", "split.overlap_tokens=128", "split.max_prefix_tokens=600",
                                  "pack_length=1024", "rows_per_step=1", "max_steps=2"])  # fmt: skip
    last = run_sft(cfg, progress=False)
    assert last["step"] == 2 and last["trained_tokens"] > 0
    shutil.rmtree(tmp_path / "run")


def test_epochs_whose_packing_differs_in_length_are_all_trained(tmp_path, small_model):
    """Each epoch packs a new shuffle; when that changes its number of steps, every epoch is still trained whole."""
    ws = windows(n=9, length=150, seed=1)
    counts = [len(epoch_steps(ws, seed=1, epoch=e, pack_length=260, rows_per_step=1)) for e in range(4)]
    assert len(set(counts)) > 1, counts  # the fixture must exercise the uneven case
    data = write_windows(tmp_path / "w.parquet", ws)
    run_sft(_config(tmp_path, small_model, data, epochs=4, pack_length=260, rows_per_step=1), progress=False)
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if "loss" in m]
    assert len(steps) == sum(counts)
    assert [sum(1 for m in steps if m["epoch"] == e) for e in range(4)] == counts


def test_the_short_last_step_of_an_epoch_is_trained(tmp_path, small_model):
    """5 windows, one per row, 2 rows per step: 3 steps per epoch, the last with one row; every trained token counts."""
    ws = windows(n=5, length=120, seed=2)
    data = write_windows(tmp_path / "w.parquet", ws)
    run_sft(_config(tmp_path, small_model, data, epochs=2, pack_length=130, rows_per_step=2), progress=False)
    steps = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in steps if "loss" in m]
    assert [m["epoch"] for m in steps] == [0, 0, 0, 1, 1, 1]
    per_epoch = sum(sum(w.loss_mask[1:]) for w in ws)
    assert sum(m["trained_tokens"] for m in steps if m["epoch"] == 0) == per_epoch
