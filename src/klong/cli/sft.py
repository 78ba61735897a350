"""`klong sft`."""

from __future__ import annotations

from typing import Annotated

import typer

from klong.cli.common import JsonOpt, RedoOutputDirOpt, app, console, exclusive_resume_redo, handle_errors, print_json


@app.command("sft")
@handle_errors
def sft_cmd(
    config: Annotated[list[str], typer.Option("-c", "--config", help="YAML file or key.path=value (repeat).")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in output_dir from its last checkpoint, exactly.")
    ] = False,
    redo: RedoOutputDirOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Trajectory-splitting SFT of a Hugging Face causal LM (multi-GPU: `accelerate launch -m klong sft ...`).

    An output_dir holding checkpoints needs --resume (continue) or --redo (start over)."""
    from klong.config import load_config
    from klong.train.config import SFTConfig
    from klong.train.sft import run_sft

    exclusive_resume_redo(resume, redo)
    cfg = load_config(SFTConfig, config)
    last = run_sft(cfg, resume=resume, redo=redo)
    if as_json:
        print_json({**last, "output_dir": cfg.output_dir, "final": f"{cfg.output_dir}/final"})
        return
    console.print(f"done: step {last.get('step')}, loss {last.get('loss', float('nan')):.4f}"
                  + (f", eval loss {last['eval_loss']:.4f}" if "eval_loss" in last else "") + f" -> {cfg.output_dir}/final")  # fmt: skip
