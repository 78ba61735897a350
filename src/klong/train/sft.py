"""Trajectory-splitting SFT: any Hugging Face causal LM, trained on the windows of the shared `ContextPolicy`.

One optimizer step = `rows_per_step` packed rows; the loss of a step is the weighted mean of the token losses over all
its trained tokens (`loss_weighting`), computed only at the trained positions (`loss_impl`). Distribution, mixed
precision and checkpoint state go through accelerate; the data plan is deterministic in (seed, epoch), so `--resume`
continues the same run exactly (same data order, optimizer, scheduler and RNG state).
"""

from __future__ import annotations

import bisect
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from klong.config import set_aside, write_config
from klong.exceptions import ConfigError, InputFileError
from klong.train.common import (
    Checkpoints,
    MetricsLog,
    load_model,
    make_optimizer,
    make_schedule,
    peak_memory_mb,
    row_tensors,
)  # fmt: skip
from klong.train.config import SFTConfig, apply_torch_threads
from klong.train.data import PackedRow, Window, epoch_steps, load_windows
from klong.train.loss import TokenLoss

RUN_FILES = ("checkpoints", "final", "metrics.jsonl", "config.yaml", "meta.json")
"""What an SFT run writes into its output dir (what `--redo` sets aside)."""


def zero_weight(row: PackedRow) -> PackedRow:
    """A copy of `row` that contributes nothing (weights 0): the pass a process runs when a short step has no row
    left for it, since every process must take part in each gradient synchronisation."""
    return replace(row, weights=[0.0] * len(row.weights))


def rows_for_process(rows: list[PackedRow], rank: int, procs: int, micro: int) -> list[PackedRow]:
    """This process's `micro` rows of a step: every `procs`-th row, padded with zero-weight rows where the step is
    short (the last step of an epoch), so that every process runs the same number of passes."""
    mine = rows[rank::procs]
    return mine + [zero_weight(rows[0])] * (micro - len(mine))


def step_loss(model, rows: list[PackedRow], accelerator, *, procs: int, micro: int) -> float:
    """Forward and backward of one optimizer step (all `rows` of it, across processes); returns this process's part
    of the step's loss (sum it over processes).

    `model` is the prepared `TokenLoss`, so that the distributed wrapper's forward runs. The step's loss is the sum of
    the token losses over its total weight; `procs * micro` undoes accelerate's division by the accumulation steps and
    the wrapper's averaging over processes, so that the gradient is that of this weighted mean over the whole step,
    equal to one process taking every row."""
    total_weight = sum(sum(r.weights) for r in rows)
    loss_value = 0.0
    for row in rows_for_process(rows, accelerator.process_index, procs, micro):
        with accelerator.accumulate(model):
            t = row_tensors(row, accelerator.device)
            with accelerator.autocast():
                loss_sum, _ = model(t["input_ids"], t["position_ids"], t["positions"], t["targets"],
                                    weights=t["weights"], need_logprobs=False)  # fmt: skip
            loss = loss_sum / total_weight
            loss_value += float(loss.detach())
            accelerator.backward(loss * (procs * micro))
    return loss_value


@torch.no_grad()
def evaluate(model, windows: list[Window], accelerator, *, pack_length: int) -> float:
    """Mean cross-entropy per trained token over `windows` (packed, no shuffling). Every process runs the same number
    of forwards (padded with zero-weight rows), as the distributed wrapper may communicate in each."""
    model.eval()
    rows = [r for step in epoch_steps(windows, seed=0, epoch=0, pack_length=pack_length, rows_per_step=1, shuffle=False)
            for r in step]  # fmt: skip
    procs = accelerator.num_processes
    per_process = -(-len(rows) // procs)
    total, count = 0.0, 0
    for row in rows_for_process(rows, accelerator.process_index, procs, per_process):
        t = row_tensors(row, accelerator.device)
        with accelerator.autocast():
            loss_sum, _ = model(t["input_ids"], t["position_ids"], t["positions"], t["targets"], weights=t["weights"],
                                need_logprobs=False)  # fmt: skip
        total += float(loss_sum)
        count += int(sum(row.weights) > 0) * len(row.targets)
    sums = accelerator.reduce(torch.tensor([total, count], device=accelerator.device, dtype=torch.float64), "sum")
    model.train()
    return float(sums[0] / max(1.0, float(sums[1])))


def run_sft(config: SFTConfig, *, resume: bool = False, redo: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train; `resume` continues the run `output_dir` holds from its last checkpoint, `redo` sets that run aside
    (`output_dir/replaced/<k>/`) and starts over; with neither, an `output_dir` holding checkpoints is an error."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import parse_flag_from_env, set_seed

    if resume and redo:
        raise ConfigError("--resume and --redo exclude each other")
    threads = apply_torch_threads(config.torch_threads)
    out = Path(config.output_dir)
    # the process group as `Accelerator()` itself would set it up (ACCELERATE_USE_CPU: gloo on CPU)
    procs = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).num_processes
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != procs:
        raise ConfigError(
            f"{launched} processes were launched but accelerate set up {procs} (each would train alone): on a machine "
            "without GPUs, launch with ACCELERATE_USE_CPU=1 for gloo data parallelism"
        )
    if config.rows_per_step % procs:
        raise ConfigError(f"rows_per_step ({config.rows_per_step}) must be a multiple of the {procs} processes")
    micro = config.rows_per_step // procs
    accelerator = Accelerator(mixed_precision="bf16" if config.dtype == "bfloat16" else "no",
                              gradient_accumulation_steps=micro, log_with=config.log_with or None,
                              project_dir=str(out))  # fmt: skip
    if progress and accelerator.is_main_process:
        print(threads.describe(), file=sys.stderr)
    set_seed(config.seed)
    checkpoints = Checkpoints(out / "checkpoints", config.keep_checkpoints)
    # inputs first: a missing model or data file is an error before anything is written to the output dir
    if not (Path(config.model_path) / "config.json").is_file():
        from klong.models.tokenizer import hub_id_hint

        raise InputFileError(config.model_path, "not a Hugging Face model folder (no config.json)"
                             + hub_id_hint(config.model_path))  # fmt: skip
    from klong.models.tokenizer import load_tokenizer

    # trajectories are split with it; windows files are checked against the one they were made with
    tokenizer = load_tokenizer(config.tokenizer or config.model_path, config.chat_template)
    train = load_windows(config.train_data, tokenizer, config.split)
    evals = load_windows(config.eval_data, tokenizer, config.split) if config.eval_data else []
    if redo:
        if accelerator.is_main_process:
            set_aside(out, RUN_FILES)
        accelerator.wait_for_everyone()
    if not resume and checkpoints.latest() is not None:
        raise ConfigError(f"{out} holds an SFT run (checkpoints/): continue it with --resume, start over with --redo "
                          "(the old run is kept under replaced/), or choose another output_dir")  # fmt: skip
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_config(out / "config.yaml", config)
        from klong.provenance import collect_run_meta
        from klong.schema import write_run_meta

        meta = collect_run_meta()
        meta.extra = {"torch_threads": threads.threads, "torch_threads_reason": threads.reason}
        write_run_meta(out / "meta.json", meta)

    def plan(epoch: int) -> list:
        return epoch_steps(train, seed=config.seed, epoch=epoch, pack_length=config.pack_length,
                           rows_per_step=config.rows_per_step, weighting=config.loss_weighting)  # fmt: skip

    plans = {0: plan(0)}
    if not plans[0]:
        raise ConfigError(f"{', '.join(config.train_data)}: no training windows with a trained token")
    # Each epoch packs a new shuffle, so epochs may differ by a step: steps are located through cumulative counts.
    epoch_starts = [0, len(plans[0])]

    def locate(step: int) -> tuple[int, int]:
        while step >= epoch_starts[-1] or len(epoch_starts) <= config.epochs:
            epoch_starts.append(epoch_starts[-1] + len(plan(len(epoch_starts) - 1)))
        epoch = bisect.bisect_right(epoch_starts, step) - 1
        return epoch, step - epoch_starts[epoch]

    locate(0)
    total_steps = config.max_steps or epoch_starts[config.epochs]

    model = load_model(config.model_path, dtype=config.dtype, attn_implementation=config.attn_implementation,
                       lora=config.lora, gradient_checkpointing=config.gradient_checkpointing,
                       checkpoint_every_n_layers=config.checkpoint_every_n_layers, compile=config.compile)  # fmt: skip
    optimizer = make_optimizer(model, lr=config.learning_rate, weight_decay=config.weight_decay,
                               betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps)  # fmt: skip
    schedule = make_schedule(optimizer, total_steps=total_steps, warmup_ratio=config.warmup_ratio,
                             kind=config.schedule, min_ratio=config.min_lr_ratio)  # fmt: skip
    # the loss runs inside the distributed wrapper's forward (see klong.train.loss)
    model, optimizer = accelerator.prepare(TokenLoss(model, impl=config.loss_impl, chunk=config.ce_chunk), optimizer)
    if (
        getattr(accelerator.state, "deepspeed_plugin", None) is not None
        and accelerator.state.deepspeed_plugin.zero_stage == 3
    ):
        accelerator.unwrap_model(model).register_zero3()
    accelerator.register_for_checkpointing(schedule)
    if config.log_with:
        accelerator.init_trackers(
            "klong-sft", config={k: v for k, v in config.model_dump().items() if isinstance(v, int | float | str)}
        )

    global_step = 0
    metrics = MetricsLog(out / "metrics.jsonl", accelerator)
    if resume and (latest := checkpoints.latest()) is not None:
        global_step = Checkpoints.load(accelerator, latest)["global_step"]
        metrics.truncate_after(global_step)  # steps a killed process logged past its last checkpoint
    model.train()
    bar = _progress(progress and accelerator.is_main_process, total_steps, global_step)
    last: dict[str, Any] = {}
    while global_step < total_steps:
        epoch, index = locate(global_step)
        if epoch not in plans:
            plans = {epoch: plan(epoch)}
        rows = plans[epoch][index]
        t0 = time.perf_counter()
        loss = step_loss(model, rows, accelerator, procs=procs, micro=micro)
        grad_norm = None
        if config.max_grad_norm > 0:
            grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm))
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss = float(accelerator.reduce(torch.tensor(loss, device=accelerator.device), "sum"))
        elapsed = time.perf_counter() - t0
        global_step += 1
        tokens = sum(len(r) for r in rows)
        trained = sum(len(r.targets) for r in rows)
        last = {"step": global_step, "epoch": epoch, "loss": loss, "lr": schedule.get_last_lr()[0],
                "grad_norm": grad_norm, "tokens": tokens, "trained_tokens": trained, "tokens_per_s": tokens / elapsed,
                "trained_tokens_per_s": trained / elapsed, "peak_memory_mb": peak_memory_mb(accelerator.device),
                "step_seconds": elapsed}  # fmt: skip
        if config.eval_every and evals and global_step % config.eval_every == 0:
            last["eval_loss"] = evaluate(model, evals, accelerator, pack_length=config.pack_length)
        metrics.write(last, global_step)
        if bar is not None:
            bar[0].update(bar[1], advance=1, description=f"loss {loss:.4f}")
        if config.save_every and global_step % config.save_every == 0 and global_step < total_steps:
            checkpoints.save(accelerator, global_step, {"global_step": global_step})
    if bar is not None:
        bar[0].stop()
    if evals:
        last["eval_loss"] = evaluate(model, evals, accelerator, pack_length=config.pack_length)
        metrics.write({"step": global_step, "final_eval_loss": last["eval_loss"]}, global_step)
    checkpoints.save(accelerator, global_step, {"global_step": global_step})
    save_final(accelerator, model, config, out / "final", tokenizer)
    accelerator.end_training()
    return last


def save_final(accelerator, model, config: SFTConfig, final: Path, tokenizer=None) -> None:
    """The trained model in `final/` (LoRA: `final/adapter` and, with `save_merged`, `final/merged`). The weights come
    from `accelerator.get_state_dict` (a collective: FSDP and ZeRO-3 gather their shards), saved by the main process."""
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)
    unwrapped = accelerator.unwrap_model(model)
    unwrapped = getattr(unwrapped, "model", unwrapped)  # TokenLoss
    unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)  # torch.compile wrapper
    if not accelerator.is_main_process:
        return
    if state is not None:  # keys of the TokenLoss: drop its `model.` (and torch.compile's `_orig_mod.`) prefix
        state = {k.removeprefix("model.").replace("_orig_mod.", ""): v for k, v in state.items()}
    from klong.models.tokenizer import load_tokenizer

    tok = tokenizer or load_tokenizer(config.model_path)
    if config.lora is not None:
        unwrapped.save_pretrained(final / "adapter", state_dict=state)
        tok.save_pretrained(final / "adapter")
        if config.save_merged:
            merged = unwrapped.merge_and_unload()
            merged.save_pretrained(final / "merged")
            tok.save_pretrained(final / "merged")
    else:
        unwrapped.save_pretrained(final, state_dict=state)
        tok.save_pretrained(final)


def _progress(enabled: bool, total: int, done: int):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("sft"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))  # fmt: skip
    bar.start()
    return bar, bar.add_task("", total=total, completed=done)
