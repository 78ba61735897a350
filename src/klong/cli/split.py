"""`klong split`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from klong.cli.common import app, console, handle_errors


@app.command("split")
@handle_errors
def split_cmd(
    targets: Annotated[list[Path], typer.Argument(help="klong trajectory files or folders of them.")],
    tokenizer: Annotated[Path, typer.Option("--tokenizer", help="Hugging Face tokenizer folder (with chat template).")],
    max_len: Annotated[int, typer.Option("--max-len", help="Window size in tokens (the model's context).")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file, one row per window.")],
    overlap: Annotated[
        int | None,
        typer.Option("--overlap", help="Tokens of recent turns carried into a new epoch (default: window/8)."),
    ] = None,
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

    from klong.chat.context import ContextConfig
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
