"""`klong rl`."""

from __future__ import annotations

from typing import Annotated

import typer

from klong.cli.common import app, console, handle_errors


@app.command("rl")
@handle_errors
def rl_cmd(
    config: Annotated[list[str], typer.Option("-c", "--config", help="YAML file or key.path=value (repeat).")],
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the last finished iteration.")] = False,
) -> None:
    """Progressive RL: stages with growing rollout timeouts, judge rewards, PPO-clip over split trajectories."""
    from klong.config import load_config
    from klong.train.rl import run_rl
    from klong.train.rl_config import RLConfig

    cfg = load_config(RLConfig, config)
    records = run_rl(cfg, resume=resume)
    console.print(f"done: {len([r for r in records if 'iteration' in r])} iterations run -> {cfg.output_dir}")
