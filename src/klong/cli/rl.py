"""`klong rl`."""

from __future__ import annotations

from typing import Annotated

import typer

from klong.cli.common import JsonOpt, RedoOutputDirOpt, app, console, exclusive_resume_redo, handle_errors, print_json


@app.command("rl")
@handle_errors
def rl_cmd(
    config: Annotated[list[str], typer.Option("-c", "--config", help="YAML file or key.path=value (repeat).")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in output_dir from its last finished iteration.")
    ] = False,
    redo: RedoOutputDirOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Progressive RL: stages with growing rollout timeouts, judge rewards, PPO-clip over split trajectories.

    An output_dir holding a run needs --resume (continue) or --redo (start over). Progress lines go to stderr."""
    from klong.config import load_config
    from klong.train.rl import run_rl
    from klong.train.rl_config import RLConfig

    exclusive_resume_redo(resume, redo)
    cfg = load_config(RLConfig, config)
    records = run_rl(cfg, resume=resume, redo=redo)
    iterations = [r for r in records if "iteration" in r]
    if as_json:
        print_json({"output_dir": cfg.output_dir, "iterations": iterations,
                    "evaluations": [r for r in records if "eval_after_stage" in r]})  # fmt: skip
        return
    console.print(f"done: {len(iterations)} iterations run -> {cfg.output_dir}")
