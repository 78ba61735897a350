"""`klong trajectory import|stats`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from klong.cli.common import JsonOpt, console, err_console, handle_errors, print_json, sub_app
from klong.exceptions import KlongError

trajectory_app = sub_app("trajectory", "Import and inspect trajectories.")


@trajectory_app.command("import")
@handle_errors
def trajectory_import(
    files: Annotated[list[Path], typer.Argument(help="Source trajectory files.")],
    source_format: Annotated[str, typer.Option("--from", help="Source format: swe-agent, mini-swe-agent or openai.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the klong trajectories (one <id>.json each).")],
    as_json: JsonOpt = False,
) -> None:
    """Convert other agents' trajectories into klong trajectories, keeping every turn.

    A file that cannot be imported is reported (with the format it looks like, when it looks like another) and the
    others are still imported; the exit status is then 1."""
    from klong.importers import IMPORTERS, import_trajectory_file
    from klong.schema import write_trajectory

    if source_format not in IMPORTERS:
        raise typer.BadParameter(
            f"unknown format {source_format!r}; choose one of: {', '.join(IMPORTERS)}", param_hint="--from"
        )
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    imported: list[dict] = []
    failed: list[dict] = []
    for path in files:
        try:
            traj = import_trajectory_file(path, source_format)
        except KlongError as e:
            err_console.print(f"[red]error[/red]: {escape(str(e))}", highlight=False)
            failed.append({"source": str(path), "error": str(e)})
            continue
        base, n = traj.id, 1
        while traj.id in used:
            n += 1
            traj.id = f"{base}-{n}"
        used.add(traj.id)
        target = out / f"{traj.id}.json"
        write_trajectory(target, traj)
        row = {"source": str(path), "out": str(target), "messages": len(traj.messages),
               "assistant_turns": traj.assistant_turns(), "tool_calls": traj.tool_call_count()}  # fmt: skip
        imported.append(row)
        if not as_json:
            console.print(f"{path.name} -> {target}  ({row['messages']} messages, {row['assistant_turns']} assistant "
                          f"turns, {row['tool_calls']} tool calls)")  # fmt: skip
    if as_json:
        print_json({"format": source_format, "out": str(out), "imported": imported, "failed": failed})
    else:
        console.print(f"imported {len(imported)} of {len(files)} files into {out}")
    if failed:
        raise typer.Exit(code=1)


@trajectory_app.command("stats")
@handle_errors
def trajectory_stats_cmd(
    target: Annotated[Path, typer.Argument(help="A klong trajectory file, or a folder of them.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer", help="Hugging Face tokenizer folder; counts template tokens.", show_default="no token counts"
        ),
    ] = None,
    chat_template: Annotated[
        Path | None,
        typer.Option(
            "--chat-template",
            help="A .jinja chat template to use instead of the tokenizer's.",
            show_default="the tokenizer's",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Messages, assistant turns, tool calls, characters and tokens per trajectory, with totals."""
    from klong.data.stats import totals, trajectory_files, trajectory_stats
    from klong.models.tokenizer import load_tokenizer
    from klong.schema import read_trajectory

    tok = load_tokenizer(tokenizer, chat_template) if tokenizer is not None else None
    rows = [trajectory_stats(read_trajectory(f), tok, f) for f in trajectory_files(target)]
    total = totals(rows)
    if as_json:
        print_json({"trajectories": [r.model_dump() for r in rows], "total": total})
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
