"""`klong split`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from klong.cli.common import app, console, err_console, handle_errors

# flag -> ContextConfig field
_FIELDS = {"max_len": "max_context_tokens", "overlap": "overlap_tokens", "pin_turns": "pin_turns",
           "pin_marker": "pin_marker", "max_prefix": "max_prefix_tokens", "reserve": "reserve_tokens",
           "policy": "policy"}  # fmt: skip


@app.command("split")
@handle_errors
def split_cmd(
    targets: Annotated[list[Path], typer.Argument(help="klong trajectory files or folders of them.")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet file, one row per window.")],
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer", help="Tokenizer folder with chat template.", show_default="the rollouts' hf: model"
        ),
    ] = None,
    max_len: Annotated[
        int | None, typer.Option("--max-len", help="Window size in tokens.", show_default="the run's context window")
    ] = None,
    overlap: Annotated[
        int | None,
        typer.Option("--overlap", help="Tokens of recent turns carried into a new epoch.", show_default="the run's"),
    ] = None,
    pin_turns: Annotated[
        int | None,
        typer.Option("--pin-turns", help="Turns after the task pinned in every window.", show_default="the run's"),
    ] = None,
    pin_marker: Annotated[
        str | None, typer.Option("--pin-marker", help="Pin turns up to one containing this.", show_default="the run's")
    ] = None,
    max_prefix: Annotated[
        int | None, typer.Option("--max-prefix", help="Token budget of the pinned prefix.", show_default="the run's")
    ] = None,
    reserve: Annotated[
        int | None,
        typer.Option("--reserve", help="Tokens kept free for generation.", show_default="the run's max_tokens"),
    ] = None,
    policy: Annotated[
        str | None, typer.Option("--policy", help="epoch, truncate, sliding or full.", show_default="the run's")
    ] = None,
    chat_template: Annotated[
        Path | None, typer.Option("--chat-template", help="A .jinja template to use.", show_default="the tokenizer's")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Split trajectories into training windows with the same ContextPolicy the runtime used.

    Every context setting comes from what the run recorded in each trajectory (`meta.context`) unless given here; with
    the recorded settings each window is checked against the prompts the model was given. Imported trajectories
    (no recorded settings) need --max-len. Turns no window can hold (a generation longer than the window with the
    task prompt; under `truncate`, every turn once the window is full) are dropped and listed with the reason; --json
    lists each one under `dropped`. The output records what made it (tokenizer, chat template, context settings,
    klong version) in its Parquet schema metadata."""
    from klong.data.split import SampleWriter, SplitStats, split_trajectory, windows_provenance
    from klong.data.stats import trajectory_files
    from klong.exceptions import ConfigError
    from klong.models.tokenizer import load_tokenizer
    from klong.schema import read_trajectory

    flags = {"max_len": max_len, "overlap": overlap, "pin_turns": pin_turns, "pin_marker": pin_marker,
             "max_prefix": max_prefix, "reserve": reserve, "policy": policy}  # fmt: skip
    given = {_FIELDS[flag]: value for flag, value in flags.items() if value is not None}
    files = [f for target in targets for f in trajectory_files(target)]
    trajectories = [(f, read_trajectory(f)) for f in files]
    tokenizer_dir = _tokenizer_dir(tokenizer, trajectories)
    tok = load_tokenizer(tokenizer_dir, chat_template)
    if given and any(t.meta.get("context") is not None for _, t in trajectories):
        settings = ", ".join(f"{k}={v}" for k, v in given.items())
        err_console.print(f"note: {settings} override the settings the runs recorded; these windows are not checked "
                          "against the prompts the model was given", highlight=False)  # fmt: skip
    # every trajectory's settings first: a bad one is an error before anything is split or written
    jobs = [(path, traj, _context(path, traj, given)) for path, traj in trajectories]
    provenance = windows_provenance(tok, [config for _, _, config in jobs], tokenizer_path=tokenizer_dir,
                                    chat_template=chat_template, overrides=given,
                                    inputs=[(traj.id, path) for path, traj, _ in jobs], sources=targets)  # fmt: skip
    stats = SplitStats()
    policies: set[str] = set()
    writer = SampleWriter(out, given.get("policy", "epoch"), provenance)
    try:
        for _, traj, config in jobs:
            result = split_trajectory(traj, tok, config, check=None if given else True)
            writer.write(result.samples, config.policy)
            policies.add(config.policy)
            stats.add(result)
        if stats.windows == 0:
            reasons = "; ".join(stats.dropped_summary(limit=2, more=""))
            raise ConfigError(
                f"no training windows from {len(files)} trajectories ({reasons or 'no assistant turn'}); "
                f"{out} was not written"
            )
    except BaseException:
        writer.abort()
        raise
    summary = stats.as_dict()
    writer.close(report=summary)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    table = Table(title=f"split ({', '.join(sorted(policies))}) -> {out}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("trajectories", "turns", "windows", "tokens", "trained_tokens", "assistant_tokens", "dropped_turns",
                "checked_calls"):  # fmt: skip
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row("duplication (tokens / unique)", f"{stats.duplication:.3f}")
    console.print(table)
    if stats.dropped:
        err_console.print(f"dropped {stats.dropped_turns} turn(s) no window can train (not in {out}):", highlight=False)
        for line in stats.dropped_summary():
            err_console.print(f"  {line}", highlight=False, soft_wrap=True)


def _context(path: Path, traj, given: dict[str, Any]):
    """The recorded settings with the given ones on top; imported trajectories need at least --max-len."""
    from pydantic import ValidationError

    from klong.chat.context import ContextConfig
    from klong.exceptions import ConfigError
    from klong.io import format_validation_error

    recorded = traj.meta.get("context")
    if recorded is None and "max_context_tokens" not in given:
        raise ConfigError(f"{path}: the trajectory records no context settings (not a klong rollout): pass --max-len")
    try:
        return ContextConfig.model_validate({**(recorded or {}), **given})
    except ValidationError as e:
        raise ConfigError(f"{path}: invalid split settings: {format_validation_error(e)}") from None


def _tokenizer_dir(tokenizer: Path | None, trajectories) -> Path:
    """--tokenizer, else the folder of the `hf:` model that produced the rollouts (one for all of them)."""
    from klong.exceptions import ConfigError

    if tokenizer is not None:
        return tokenizer
    models = {t.model for _, t in trajectories}
    folders = {Path(m.removeprefix("hf:")) for m in models if m and m.startswith("hf:")}
    if len(folders) == 1 and len(models) == 1 and next(iter(folders)).is_dir():
        return next(iter(folders))
    raise ConfigError(
        f"--tokenizer is needed: the trajectories come from {', '.join(sorted(map(str, models)))} (not from one "
        "local hf: model folder)"
    )
