"""`klong demo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from klong.cli.common import JsonOpt, app, console, err_console, handle_errors, print_json
from klong.exceptions import ConfigError


@app.command("demo")
@handle_errors
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="Where everything goes (tasks, runs, models, report).")] = Path(
        "runs/demo"
    ),
    seed: Annotated[int, typer.Option("--seed", help="Seed of the tasks, the teacher, the models and the RL.")] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="The 3-minute version (a smoke test of every stage).")] = False,
    long: Annotated[
        bool, typer.Option("--long", help="Longer RL: three stages, compared with one stage at the longest timeout.")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--redo",
            help="--resume: reuse what an earlier demo with the same settings left in OUT "
            "(rerun the command to continue); --redo: start over, the earlier demo kept under OUT/replaced/.",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """The KLong recipe in miniature, offline on CPU: tasks, teacher, split, SFT, evaluation, progressive RL, report.

    Prints report.md (with --json: the results behind it, report.json); the phases are shown on stderr with --json."""
    from klong.config import set_aside
    from klong.demo.pipeline import DemoConfig, run_demo

    if quick and long:
        raise ConfigError("--quick and --long exclude each other")
    config = DemoConfig.quick(seed) if quick else DemoConfig.long(seed) if long else DemoConfig(seed=seed)
    if not resume:
        set_aside(out)
    _check_same_demo(out, config)
    results = run_demo(out, config, err_console if as_json else console)
    if as_json:
        print_json(results)
        return
    console.print((out / "report.md").read_text(), markup=False, highlight=False)


def _check_same_demo(out: Path, config) -> None:
    """An OUT holding a demo with other settings (another seed, --quick) is not silently mixed with this one."""
    saved = out / "demo_config.json"
    if not saved.exists():
        return
    try:
        old = json.loads(saved.read_text())
    except ValueError:
        return  # a half-written file from a killed demo: it is written again
    new = json.loads(config.model_dump_json())
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        raise ConfigError(f"{out} holds a demo with other settings ({', '.join(changed)}): use the same options to "
                          "continue it, --redo to start over, or another --out")  # fmt: skip
