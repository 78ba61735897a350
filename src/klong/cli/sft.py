"""`klong sft`."""

from __future__ import annotations

from typing import Annotated

import typer

from klong.cli.common import app, console, handle_errors


@app.command("sft")
@handle_errors
def sft_cmd(
    config: Annotated[list[str], typer.Option("-c", "--config", help="YAML file or key.path=value (repeat).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint, exactly.")] = False,
) -> None:
    """Trajectory-splitting SFT of a Hugging Face causal LM (multi-GPU: `accelerate launch -m klong sft ...`)."""
    from klong.config import load_config
    from klong.train.config import SFTConfig
    from klong.train.sft import run_sft

    cfg = load_config(SFTConfig, config)
    last = run_sft(cfg, resume=resume)
    console.print(f"done: step {last.get('step')}, loss {last.get('loss', float('nan')):.4f}"
                  + (f", eval loss {last['eval_loss']:.4f}" if "eval_loss" in last else "") + f" -> {cfg.output_dir}/final")  # fmt: skip
