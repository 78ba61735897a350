"""The `klong` command line. Each verb reads the previous stage's files and writes its own."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from klong import __version__
from klong.exceptions import KlongError

app = typer.Typer(
    name="klong",
    help="Train and evaluate LLM agents on extremely long-horizon tasks (the KLong recipe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
trajectory_app = typer.Typer(help="Import and inspect trajectories.", no_args_is_help=True)
app.add_typer(trajectory_app, name="trajectory")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Print klong's own errors as one line (no traceback) and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KlongError as e:
            err_console.print(f"[red]error[/red]: {e}", markup=True, highlight=False)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"klong {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """klong: long-horizon agent training and evaluation."""


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
            err_console.print(f"[red]error[/red]: {e}", highlight=False)
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


@app.command("split")
@handle_errors
def split_cmd(
    targets: Annotated[list[Path], typer.Argument(help="klong trajectory files or folders of them.")],
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="Hugging Face tokenizer folder (with chat template).")],
    max_len: Annotated[int, typer.Option("--max-len", help="Window size in tokens (the model's context).")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file, one row per window.")],
    overlap: Annotated[int, typer.Option("--overlap", help="Tokens of recent turns carried into a new epoch.")] = 4096,
    pin_turns: Annotated[int, typer.Option("--pin-turns", help="Turns after the task pinned in every window.")] = 0,
    pin_marker: Annotated[str | None, typer.Option("--pin-marker", help="Pin turns up to one containing this.")] = None,
    max_prefix: Annotated[int | None, typer.Option("--max-prefix", help="Token budget of the pinned prefix.")] = None,
    reserve: Annotated[
        int, typer.Option("--reserve", help="Tokens kept free for generation (runtime max_tokens).")
    ] = 0,
    policy: Annotated[str, typer.Option("--policy", help="epoch, truncate, sliding or full.")] = "epoch",
    chat_template: Annotated[Path | None, typer.Option("--chat-template", help="A .jinja template to use.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Split trajectories into training windows with the same ContextPolicy the runtime uses."""
    from pydantic import ValidationError

    from klong.agent.context import ContextConfig
    from klong.data.split import SampleWriter, SplitStats, split_trajectory
    from klong.data.stats import trajectory_files
    from klong.exceptions import ConfigError
    from klong.io import format_validation_error
    from klong.models.tokenizer import load_tokenizer
    from klong.schema import read_trajectory

    try:
        config = ContextConfig(policy=policy, max_context_tokens=max_len, overlap_tokens=overlap, pin_turns=pin_turns,
                               pin_marker=pin_marker, max_prefix_tokens=max_prefix, reserve_tokens=reserve)  # fmt: skip
    except ValidationError as e:
        raise ConfigError(f"invalid split settings: {format_validation_error(e)}") from None
    tok = load_tokenizer(tokenizer, chat_template)
    files = [f for target in targets for f in trajectory_files(target)]
    stats = SplitStats()
    writer = SampleWriter(out, policy)
    for path in files:
        result = split_trajectory(read_trajectory(path), tok, config)
        writer.write(result.samples)
        stats.add(result)
    writer.close()
    summary = stats.as_dict()
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=f"split ({policy}, window {max_len}) -> {out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("trajectories", "turns", "windows", "tokens", "trained_tokens", "assistant_tokens", "dropped_turns"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("duplication (tokens / unique)", f"{stats.duplication:.3f}")
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
