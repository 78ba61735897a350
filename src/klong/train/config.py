"""Configuration of `klong sft` (YAML + dotted overrides; the resolved config is saved in the run dir)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from klong.chat.context import ContextConfig


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

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.rows_per_step < 1 or self.pack_length < 2 or self.epochs < 1:
            raise ValueError("rows_per_step >= 1, pack_length >= 2 and epochs >= 1 are required")
        return self

    @property
    def model_path(self) -> str:
        return self.model.removeprefix("hf:")
