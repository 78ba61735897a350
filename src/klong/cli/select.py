"""`klong select`: keep the teacher trajectories worth distilling (rejection sampling on their grades)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from klong.cli.common import JsonOpt, app, console, handle_errors, print_json


@app.command("select")
@handle_errors
def select_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run dirs of `klong run` (with trajectories/).")],
    out: Annotated[Path, typer.Option("--out", help="Where the selected trajectories and the report go.")],
    grades: Annotated[
        Path | None,
        typer.Option("--grades", help="Folder of grades, <run_id>.json.", show_default="RUN_DIR/grades"),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Keep runs scoring at least this.", show_default="no threshold"),
    ] = None,
    best_of_k: Annotated[
        int | None, typer.Option("--best-of-k", help="Keep the k best runs of each task.", show_default="all")
    ] = None,
    floor: Annotated[float, typer.Option("--floor", help="Absolute minimum score, whatever the rank.")] = 0.0,
    tasks: Annotated[
        list[Path] | None,
        typer.Option("--tasks", help="Task dirs for the blacklists (repeatable).", show_default="the run's workspace"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Select trajectories: threshold and/or per-task best-of-k with a floor; valid grades only, clean monitor, no
    infrastructure failure. Writes OUT/trajectories/ (for `klong split OUT`), selection.jsonl, selection.md and
    regrade.txt."""
    from pydantic import ValidationError

    from klong.data.select import SelectConfig, select_runs, task_blacklists, write_selection
    from klong.exceptions import ConfigError
    from klong.io import format_validation_error

    try:
        config = SelectConfig(threshold=threshold, best_of_k=best_of_k, floor=floor)
    except ValidationError as e:
        raise ConfigError(f"invalid selection settings: {format_validation_error(e)}") from None
    decisions = select_runs(run_dirs, config, grades=grades, task_blacklists=task_blacklists(tasks) if tasks else None)
    summary = write_selection(decisions, out)
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"selection -> {out}")
    table.add_column("reason")
    table.add_column("runs", justify="right")
    for kind, n in sorted(summary["reasons"].items()):
        table.add_row(kind, str(n))
    console.print(table)
    console.print(f"{summary.get('selected', 0)} of {summary['runs']} runs selected "
                  f"({summary['tasks_with_selection']} of {summary['tasks']} tasks); "
                  f"{summary.get('regrade', 0)} to re-grade (regrade.txt); report: {out / 'selection.md'}")  # fmt: skip
