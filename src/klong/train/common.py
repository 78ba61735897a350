"""Pieces shared by the SFT and RL trainers: model loading (full or LoRA), optimizer and schedule, checkpoints that
resume exactly, rows to tensors, metrics."""

from __future__ import annotations

import json
import math
import os
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from klong.io import append_jsonl, atomic_write_json, atomic_write_text, read_json
from klong.train.data import PackedRow


def load_model(path: str, *, dtype: str = "float32", attn_implementation: str = "sdpa", lora=None,
               gradient_checkpointing: bool = True, checkpoint_every_n_layers: int = 1, compile: bool = False):  # fmt: skip
    """A causal LM for training: fp32 weights (bf16 runs as mixed precision), optional LoRA adapters (peft),
    gradient checkpointing (non-reentrant)."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=attn_implementation,
                                                     local_files_only=True)  # fmt: skip
    except (OSError, ValueError) as e:
        from klong.exceptions import InputFileError

        raise InputFileError(path, f"cannot load a causal LM from this folder: {str(e).splitlines()[0]}") from None
    model.config.use_cache = False
    if gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5: selective recomputation
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False},
                                                  every_n_layers=checkpoint_every_n_layers)  # fmt: skip
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora is not None:
        from peft import LoraConfig, get_peft_model

        if gradient_checkpointing:
            model.enable_input_require_grads()
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=lora.target_modules, task_type="CAUSAL_LM"))  # fmt: skip
    if compile:
        model = torch.compile(model)
    return model


def make_optimizer(model, *, lr: float, weight_decay: float, betas: tuple[float, float], eps: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=betas, eps=eps)


def make_schedule(optimizer, *, total_steps: int, warmup_ratio: float, kind: str, min_ratio: float = 0.0):
    warmup = round(total_steps * warmup_ratio)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if kind == "linear":
            return max(min_ratio, 1.0 - progress * (1.0 - min_ratio))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def row_tensors(row: PackedRow, device) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.tensor([row.input_ids], device=device),
        "position_ids": torch.tensor([row.position_ids], device=device),
        "positions": torch.tensor(row.loss_positions, device=device, dtype=torch.long),
        "targets": torch.tensor(row.targets, device=device, dtype=torch.long),
        "weights": torch.tensor(row.weights, device=device, dtype=torch.float32),
        "old_logprobs": torch.tensor(row.old_logprobs, device=device, dtype=torch.float32),
        "advantages": torch.tensor(row.advantages, device=device, dtype=torch.float32),
        "temperatures": torch.tensor(row.temperatures, device=device, dtype=torch.float32),
    }


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Checkpoints:
    """`checkpoints/step-N/` holds the accelerate state (model, optimizer, registered scheduler, RNG states) and
    `trainer_state.json`; a checkpoint appears by an atomic rename only once complete."""

    def __init__(self, root: str | Path, keep: int = 2):
        self.root = Path(root)
        self.keep = keep

    def latest(self) -> Path | None:
        done = [p for p in self.root.glob("step-*") if p.is_dir() and (p / "trainer_state.json").exists()]
        return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)

    def save(self, accelerator, step: int, state: dict[str, Any]) -> Path:
        final = self.root / f"step-{step}"
        tmp = self.root / f".step-{step}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if accelerator.is_main_process:
            atomic_write_json(tmp / "trainer_state.json", state, indent=2)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in sorted(self.root.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()
        return final

    @staticmethod
    def load(accelerator, path: Path) -> dict[str, Any]:
        accelerator.load_state(str(path))
        return read_json(path / "trainer_state.json")


class MetricsLog:
    def __init__(self, path: str | Path, accelerator=None):
        self.path = Path(path)
        self.accelerator = accelerator
        self.start = time.monotonic()

    def truncate_after(self, step: int) -> None:
        """Drop records of steps after `step` (they are about to be redone)."""
        if (self.accelerator is None or self.accelerator.is_main_process) and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any], step: int) -> None:
        if self.accelerator is not None and not self.accelerator.is_main_process:
            return
        append_jsonl(self.path, record)
        if self.accelerator is not None and self.accelerator.trackers:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, int | float)}, step=step)


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
