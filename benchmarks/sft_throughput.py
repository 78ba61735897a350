"""SFT throughput on agent-like windows: klong's training step against plain transformers and TRL's SFTTrainer.

Windows of `--window` tokens look like agent trajectories: a pinned prefix (about 30 %, untrained), then turns of
assistant tokens (trained, about 20 % of the window in all) between long tool outputs (untrained). Each method runs in
its own process (so peak memory is its own), on the same windows, for `--steps` optimizer steps of one window each
after one warm-up step:

  plain   transformers forward with labels (-100 on untrained tokens), full T x vocab logits, AdamW step;
  trl     TRL SFTTrainer, pre-tokenized `input_ids` + `completion_mask`, `completion_only_loss`, gradient
          checkpointing (padding-free and Liger when installed on a GPU: its best configuration);
  klong   klong's step: packed row, loss only at trained positions (fused chunked CE, or Liger on CUDA),
          gradient checkpointing.

Trained tokens per second and peak memory of each are printed, and the ratios klong / TRL and klong / plain last.

    python benchmarks/sft_throughput.py --model tiny --window 2048            # CPU
    python benchmarks/sft_throughput.py --model qwen2-0.5b --window 32768    # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128),
    "qwen2-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       intermediate_size=4864),
}  # fmt: skip
VOCAB = 151936


def make_windows(n: int, length: int, trained: float, prefix: float, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randrange(1000, VOCAB - 1000) for _ in range(length)]
        mask = [0] * length
        budget = int(trained * length)
        pos = int(prefix * length)
        while budget > 0 and pos < length:
            turn = min(budget, rng.randint(50, 400), length - pos)
            mask[pos : pos + turn] = [1] * turn
            budget -= turn
            pos += turn + rng.randint(200, 2000)  # a tool output follows
        out.append({"input_ids": ids, "completion_mask": mask})
    return out


def build_model(shape: str, device: str, attn: str):
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=VOCAB, tie_word_embeddings=True, max_position_embeddings=131072, **SHAPES[shape])
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return AutoModelForCausalLM.from_config(cfg, dtype=dtype, attn_implementation=attn).to(device)


def peak_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_method(args) -> dict:
    import torch

    windows = make_windows(args.steps + 1, args.window, args.trained, args.prefix)
    trained = [sum(w["completion_mask"][1:]) for w in windows]
    attn = "flash_attention_2" if args.device == "cuda" and _has("flash_attn") else "sdpa"
    model = build_model(args.model, args.device, attn)
    times = []
    if args.method in ("plain", "klong"):
        model.config.use_cache = False
        if args.method == "klong" or args.plain_gc:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        from klong.train.data import Window, pack
        from klong.train.loss import TokenLoss

        step_model = TokenLoss(model, impl="fused")  # what `klong sft` runs (inside the distributed wrapper there)

        for i, w in enumerate(windows):
            if args.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            ids = torch.tensor([w["input_ids"]], device=args.device)
            if args.method == "plain":
                labels = torch.tensor([[t if m else -100 for t, m in zip(w["input_ids"], w["completion_mask"], strict=True)]],
                                      device=args.device)  # fmt: skip
                loss = model(input_ids=ids, labels=labels, use_cache=False).loss
            else:
                row = pack([Window(w["input_ids"], w["completion_mask"], "t", i)], args.window, {("t", i): 1.0})[0]
                pos = torch.tensor([row.position_ids], device=args.device)
                loss_sum, _ = step_model(ids, pos, torch.tensor(row.loss_positions, device=args.device),
                                         torch.tensor(row.targets, device=args.device), need_logprobs=False)  # fmt: skip
                loss = loss_sum / len(row.targets)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    else:
        times = run_trl(model, windows, args)
    steady = times[1:]  # the first step warms up
    tokens = sum(trained[1 : 1 + len(steady)])
    return {"method": args.method, "trained_tokens_per_s": tokens / sum(steady), "seconds_per_step": sum(steady) / len(steady),
            "peak_memory_mb": peak_mb(args.device), "attn": attn}  # fmt: skip


def run_trl(model, windows, args) -> list[float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if args.device == "cuda":
                import torch

                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            if args.device == "cuda":
                import torch

                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.t0)

    gpu = args.device == "cuda"
    cfg = SFTConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=1, gradient_accumulation_steps=1,
                    max_steps=len(windows), learning_rate=1e-5, gradient_checkpointing=True,
                    completion_only_loss=True, max_length=args.window, report_to=[], save_strategy="no",
                    logging_strategy="no", bf16=gpu, use_cpu=not gpu, padding_free=gpu and _has("flash_attn"),
                    use_liger_kernel=gpu and _has("liger_kernel"), dataloader_num_workers=0, seed=0)  # fmt: skip
    from klong.models.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)  # TRL wants a processing class even for pre-tokenized data
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(windows), processing_class=tok,
                         callbacks=[Timer()])  # fmt: skip
    trainer.train()
    return times


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--window", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--trained", type=float, default=0.2)
    ap.add_argument("--prefix", type=float, default=0.3)
    ap.add_argument("--device", default=None)
    ap.add_argument("--methods", nargs="+", default=["plain", "trl", "klong"])
    ap.add_argument("--plain-gc", action="store_true", help="gradient checkpointing for the plain baseline too")
    ap.add_argument(
        "--tokenizer",
        type=Path,
        default=Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tokenizers" / "qwen2.5",
    )
    ap.add_argument("--method", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.method:
        print(json.dumps(run_method(args)))
        return
    results = {}
    for method in args.methods:
        if method == "trl" and not _has("trl"):
            print("trl: not installed (pip install 'klong[bench]'), skipped")
            continue
        cmd = [sys.executable, __file__, "--method", method, "--model", args.model, "--window", str(args.window),
               "--steps", str(args.steps), "--trained", str(args.trained), "--prefix", str(args.prefix),
               "--device", args.device, "--tokenizer", str(args.tokenizer), *(["--plain-gc"] if args.plain_gc else [])]  # fmt: skip
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        )
        if proc.returncode != 0:
            print(f"{method}: failed\n{proc.stderr[-3000:]}")
            continue
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"model {args.model}, window {args.window}, {args.trained:.0%} trained, prefix {args.prefix:.0%}, "
          f"device {args.device}, {args.steps} steps after warm-up")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:6s} {r['trained_tokens_per_s']:10.1f} trained tokens/s  {r['seconds_per_step']:8.3f} s/step  "
            f"peak {r['peak_memory_mb']:9.1f} MiB  ({r['attn']})"
        )
    if "klong" in results:
        for base in ("trl", "plain"):
            if base in results:
                k, b = results["klong"], results[base]
                print(
                    f"ratio klong/{base}: {k['trained_tokens_per_s'] / b['trained_tokens_per_s']:.2f}x tokens/s, "
                    f"{k['peak_memory_mb'] / b['peak_memory_mb']:.2f}x peak memory"
                )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
