"""Run under `accelerate launch`: one SFT optimizer step's forward/backward through klong's own step function, on the
same global batch whatever the number of processes; every process saves the full gradients it ends up with.

    accelerate launch --multi_gpu --num_processes 2 tests/train/dist_probe.py MODEL WINDOWS.parquet OUT IMPL...
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import parse_flag_from_env

from klong.train.common import load_model, make_optimizer
from klong.train.data import epoch_steps, read_windows
from klong.train.loss import TokenLoss
from klong.train.sft import step_loss


def full_grad(param) -> torch.Tensor | None:
    """The whole gradient of a parameter, sharded (FSDP2: a DTensor; ZeRO-3: held by DeepSpeed) or not."""
    if hasattr(param, "ds_id"):
        from deepspeed.utils import safe_get_full_grad

        grad = safe_get_full_grad(param)
    else:
        grad = param.grad
    if grad is not None and hasattr(grad, "full_tensor"):
        grad = grad.full_tensor()
    return grad.detach().float().cpu().clone() if grad is not None else None


def main(model_path: str, windows_path: str, out: str, impls: list[str], rows_per_step: int = 4) -> None:
    windows = read_windows(windows_path)
    rows = epoch_steps(windows, seed=0, epoch=0, pack_length=400, rows_per_step=rows_per_step)[0]
    procs = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).num_processes
    micro = rows_per_step // procs
    for impl in impls:
        accelerator = Accelerator(gradient_accumulation_steps=micro)
        model = load_model(model_path, gradient_checkpointing=impl == "fused")
        optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95), eps=1e-8)
        model, optimizer = accelerator.prepare(TokenLoss(model, impl=impl, chunk=64), optimizer)
        state = accelerator.state
        if getattr(state, "deepspeed_plugin", None) is not None and state.deepspeed_plugin.zero_stage == 3:
            accelerator.unwrap_model(model).register_zero3()
        loss = step_loss(model, rows, accelerator, procs=procs, micro=micro)
        grads = {n: g for n, p in accelerator.unwrap_model(model).model.named_parameters()
                 if (g := full_grad(p)) is not None}  # fmt: skip
        torch.save({"loss": loss, "grads": grads}, Path(out) / f"{impl}-{procs}-rank{accelerator.process_index}.pt")
        accelerator.wait_for_everyone()
        accelerator.free_memory()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
