"""`klong demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from klong.cli.common import app, console, handle_errors
from klong.exceptions import ConfigError


@app.command("demo")
@handle_errors
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Where everything goes (tasks, runs, models, report).")] = Path(
        "runs/demo"
    ),
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="The 3-minute version (a smoke test of every stage).")] = False,
    long: Annotated[
        bool, typer.Option("--long", help="Longer RL: three stages, compared with one stage at the longest timeout.")
    ] = False,
) -> None:
    """The KLong recipe in miniature, offline on CPU: tasks, teacher, split, SFT, evaluation, progressive RL, report."""
    from klong.demo.pipeline import DemoConfig, run_demo

    if quick and long:
        raise ConfigError("--quick and --long exclude each other")
    config = DemoConfig.quick(seed) if quick else DemoConfig.long(seed) if long else DemoConfig(seed=seed)
    run_demo(out, config, console)
    console.print((out / "report.md").read_text(), markup=False, highlight=False)
