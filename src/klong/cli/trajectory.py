"""`klong trajectory import|stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from klong.cli.common import app, console, err_console, handle_errors
from klong.exceptions import KlongError

trajectory_app = typer.Typer(help="Import and inspect trajectories.", no_args_is_help=True)
app.add_typer(trajectory_app, name="trajectory")


@trajectory_app.command("import")
@handle_errors
def trajectory_import(
    files: Annotated[list[Path], typer.Argument(help="Source trajectory files.")],
    source_format: Annotated[str, typer.Option("--from", help="Source format: swe-agent, mini-swe-agent or openai.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the klong trajectories (one <id>.json each).")],
) -> None:
    """Convert other agents' trajectories into klong trajectories, keeping every turn."""
    from klong.importers import IMPORTERS, import_trajectory_file
    from klong.schema import write_trajectory

    if source_format not in IMPORTERS:
        raise typer.BadParameter(
            f"unknown format {source_format!r}; choose one of: {', '.join(IMPORTERS)}", param_hint="--from"
        )
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    failures = 0
    for path in files:
        try:
            traj = import_trajectory_file(path, source_format)
        except KlongError as e:
            err_console.print(f"[red]error[/red]: {escape(str(e))}", highlight=False)
            failures += 1
            continue
        base, n = traj.id, 1
        while traj.id in used:
            n += 1
            traj.id = f"{base}-{n}"
        used.add(traj.id)
        target = out / f"{traj.id}.json"
        write_trajectory(target, traj)
        console.print(
            f"{path.name} -> {target}  ({len(traj.messages)} messages, {traj.assistant_turns()} assistant turns, "
            f"{traj.tool_call_count()} tool calls)"
        )
    console.print(f"imported {len(files) - failures} of {len(files)} files into {out}")
    if failures:
        raise typer.Exit(code=1)


@trajectory_app.command("stats")
@handle_errors
def trajectory_stats_cmd(
    target: Annotated[Path, typer.Argument(help="A klong trajectory file, or a folder of them.")],
    tokenizer: Annotated[
        Path | None, typer.Option("--tokenizer", help="Hugging Face tokenizer folder; counts template tokens.")
    ] = None,
    chat_template: Annotated[
        Path | None, typer.Option("--chat-template", help="A .jinja chat template to use instead of the tokenizer's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Messages, assistant turns, tool calls, characters and tokens per trajectory, with totals."""
    from klong.data.stats import totals, trajectory_files, trajectory_stats
    from klong.models.tokenizer import load_tokenizer
    from klong.schema import read_trajectory

    tok = load_tokenizer(tokenizer, chat_template) if tokenizer is not None else None
    rows = [trajectory_stats(read_trajectory(f), tok, f) for f in trajectory_files(target)]
    total = totals(rows)
    if as_json:
        print(json.dumps({"trajectories": [r.model_dump() for r in rows], "total": total}, indent=2))
        return
    table = Table(title=f"trajectories in {target}")
    for col in ("id", "messages", "assistant", "tool calls", "chars", "tokens", "stop"):
        table.add_column(col, justify="left" if col in ("id", "stop") else "right", overflow="fold")
    for r in rows:
        table.add_row(
            r.id,
            str(r.messages),
            str(r.assistant_turns),
            str(r.tool_calls),
            str(r.characters),
            "-" if r.tokens is None else str(r.tokens),
            r.stop_reason or "-",
        )
    table.add_section()
    table.add_row(
        f"total ({total['trajectories']})",
        str(total["messages"]),
        str(total["assistant_turns"]),
        str(total["tool_calls"]),
        str(total["characters"]),
        "-" if total["tokens"] is None else str(total["tokens"]),
        "",
    )
    console.print(table)
