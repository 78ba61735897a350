"""Configuration of `klong sft` (YAML + dotted overrides; the resolved config is saved in the run dir), and the choice
of torch's CPU thread count shared by the SFT and RL trainers."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from klong.chat.context import ContextConfig
from klong.exceptions import ConfigError


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    r: int = 16
    """Rank of the adapters."""
    alpha: int = 32
    """Scaling numerator (`lora_alpha`)."""
    dropout: float = 0.0
    target_modules: list[str] | str = "all-linear"
    """Modules that get adapters (peft's `target_modules`); `all-linear` for every linear layer but the output."""


class SFTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    """Path of a Hugging Face causal LM (`hf:` prefix accepted)."""
    output_dir: str
    """Run dir: config.yaml, meta.json, metrics.jsonl, checkpoints/, final/."""
    train_data: list[str]
    """Parquet files from `klong split`, or trajectory files/folders (split on the fly with `split`)."""
    eval_data: list[str] = Field(default_factory=list)
    """Held-out windows (same forms); evaluated every `eval_every` steps and at the end."""
    split: ContextConfig | None = None
    """Context policy used to split trajectories given as training data (default: the settings each one recorded)."""
    tokenizer: str | None = None
    """Tokenizer folder for on-the-fly splitting (default: the model's)."""
    chat_template: str | None = None
    """A `.jinja` chat template replacing the tokenizer's (on-the-fly splitting)."""

    lora: LoraConfig | None = None
    """Train LoRA adapters (peft) instead of every weight."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Weights and compute precision (bf16 runs as mixed precision through accelerate)."""
    gradient_checkpointing: bool = True
    checkpoint_every_n_layers: int = 1
    """Selective recomputation: checkpoint only every n-th decoder layer (more memory, less recompute)."""
    attn_implementation: str = "sdpa"
    """`sdpa`, `eager` or `flash_attention_2` (padding-free packing works with all three)."""
    loss_impl: Literal["fused", "logits_to_keep", "full"] = "fused"
    """How the loss is computed (see `klong.train.loss`); `full` is the plain reference."""
    ce_chunk: int = 4096
    """Trained positions per chunk of the fused cross-entropy."""
    compile: bool = False
    """`torch.compile` the model."""

    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    """Gradient clipping (0 disables)."""
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = 0.03
    """Fraction of the steps with a linear warmup."""
    min_lr_ratio: float = 0.0
    """Cosine floor as a fraction of the peak learning rate."""

    epochs: int = 1
    max_steps: int | None = None
    """Stop after this many optimizer steps (default: every epoch)."""
    pack_length: int = 32768
    """Tokens per packed row; windows never cross rows and never attend to each other."""
    rows_per_step: int = 8
    """Packed rows per optimizer step (across all processes: gradient accumulation x data parallel)."""
    loss_weighting: Literal["token", "trajectory"] = "token"
    """`token`: loss averaged per trained token; `trajectory`: each trajectory weighs the same however many windows."""
    seed: int = 0

    save_every: int = 0
    """Checkpoint every N steps (0: only at the end). `--resume` continues from the last one exactly."""
    keep_checkpoints: int = 2
    eval_every: int = 0
    log_with: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    """Also report metrics to these trackers (through accelerate)."""
    save_merged: bool = True
    """With LoRA: also save the adapters merged into the base model."""
    torch_threads: int | None = None
    """CPU threads torch uses (`torch.set_num_threads`). Default: `KLONG_TORCH_THREADS`, else an explicit
    `OMP_NUM_THREADS`, else the cores this process may use (affinity, cgroup quota) divided by the local processes."""

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.rows_per_step < 1 or self.pack_length < 2 or self.epochs < 1:
            raise ValueError("rows_per_step >= 1, pack_length >= 2 and epochs >= 1 are required")
        return self

    @property
    def model_path(self) -> str:
        return self.model.removeprefix("hf:")


THREADS_ENV = "KLONG_TORCH_THREADS"


class ThreadChoice(NamedTuple):
    threads: int
    reason: str

    def describe(self) -> str:
        """The line the trainers log."""
        return f"torch threads: {self.threads} ({self.reason}; torch_threads or {THREADS_ENV} sets it)"


def choose_torch_threads(configured: int | None, *, env: Mapping[str, str], affinity: int, cpu_quota: float | None
                         ) -> ThreadChoice:  # fmt: skip
    """How many CPU threads torch should use in this process (pure: every input is given).

    In order: `configured` (the config's `torch_threads`), `KLONG_TORCH_THREADS`, an explicit `OMP_NUM_THREADS`
    (respected as given), else the cores the process may use, `min(affinity, cgroup quota)` (a quota of 1.5 CPUs is
    1 core: more threads than the quota are throttled), divided by the processes on this machine (`LOCAL_WORLD_SIZE`,
    set by `accelerate launch` and torchrun). Uncapped, torch starts a thread per core it sees, whatever the quota or the
    other processes; on a busy 2-core machine that made an SFT step 12x slower."""
    if configured is not None:
        if configured < 1:
            raise ConfigError(f"torch_threads must be at least 1 (got {configured})")
        return ThreadChoice(configured, "torch_threads in the config")
    raw = env.get(THREADS_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"{THREADS_ENV}={raw!r}: expected a whole number of threads, at least 1")
        return ThreadChoice(int(raw), f"{THREADS_ENV}={raw}")
    omp = env.get("OMP_NUM_THREADS", "").strip().split(",")[0].strip()  # OpenMP allows a list (nested levels)
    if omp.isdigit() and int(omp) >= 1:
        return ThreadChoice(int(omp), f"OMP_NUM_THREADS={omp}")
    cores = max(1, affinity)
    why = f"{affinity} cores in the affinity mask"
    if cpu_quota is not None and math.floor(cpu_quota) < cores:
        cores = max(1, math.floor(cpu_quota))
        why = f"a cgroup quota of {cpu_quota:g} CPUs ({affinity} cores in the affinity mask)"
    local = env.get("LOCAL_WORLD_SIZE", "1").strip()
    procs = int(local) if local.isdigit() and int(local) >= 1 else 1
    threads = max(1, cores // procs)
    return ThreadChoice(threads, why + (f", shared by {procs} local processes" if procs > 1 else ""))


def parse_cpu_max(text: str | None) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` (`"200000 100000"` -> 2.0; `"max 100000"` -> None: no quota)."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup (v2 `cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), or None."""

    def read(path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None

    v2 = read(root / "cpu.max")
    if v2 is not None:
        return parse_cpu_max(v2)
    quota, period = read(root / "cpu" / "cpu.cfs_quota_us"), read(root / "cpu" / "cpu.cfs_period_us")
    return parse_cpu_max(f"{quota} {period}") if quota and period and not quota.startswith("-") else None


def apply_torch_threads(configured: int | None) -> ThreadChoice:
    """Choose (`choose_torch_threads`, from this process's real affinity, cgroup and environment) and apply
    `torch.set_num_threads`; the trainers log `describe()` and record the choice in `meta.json`."""
    import torch

    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    choice = choose_torch_threads(configured, env=os.environ, affinity=affinity, cpu_quota=cgroup_cpu_quota())
    torch.set_num_threads(choice.threads)
    return choice
