"""The typer app, the consoles, the error handling and the conventions shared by every command.

Conventions (every command follows them; `tests/test_cli_conventions.py` checks them on the real CLI):
- `-h` and `--help` everywhere; every option has a help text and shows its default (a default resolved later, from a
  config or the run, is shown as the text saying where it comes from).
- Results go to stdout; progress, notes and errors to stderr. `--json` prints the result as one JSON document instead of
  tables and sentences, on every command that prints a result.
- Earlier work in the output: `--resume` continues it, `--redo` starts over and sets the old output aside (kept under
  `replaced/`). Batch stages whose units are recorded one by one (the factory stages, the demo) resume by default
  (`--resume/--redo`, default resume: rerun the same command to continue). Long jobs whose state a stopped process
  leaves half-way (`klong run`'s episodes, `klong sft`, `klong rl`) take `--resume` and `--redo` and, with neither,
  refuse an output holding such state: klong cannot tell a killed process from one still running, and continuing
  changes what happens (an interrupted command is reported to the model; a training run goes on from a checkpoint).
  Finished work is never redone without `--redo`.
- Bad input is one line, `error: ...`, naming the file or option, with exit status 2.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from klong import __version__
from klong.exceptions import ConfigError, KlongError
from klong.redact import redact

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
"""Context settings of every typer app and command: `-h` is `--help`."""

app = typer.Typer(
    name="klong",
    help="Train and evaluate LLM agents on extremely long-horizon tasks (the KLong recipe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=HELP_OPTIONS,
)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


F = TypeVar("F", bound=Callable[..., Any])


def sub_app(name: str, help: str) -> typer.Typer:
    """A verb group (`klong NAME ...`) registered on the root app, with the shared conventions."""
    group = typer.Typer(help=help, no_args_is_help=True, context_settings=HELP_OPTIONS)
    app.add_typer(group, name=name)
    return group


JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON (progress and notes go to stderr).")]
RedoOutputDirOpt = Annotated[
    bool, typer.Option("--redo", help="Start over; the run in output_dir is kept under output_dir/replaced/<k>/.")
]
"""`--redo` of the training commands (`klong sft`, `klong rl`), whose output is `output_dir`."""


def print_json(data: Any) -> None:
    """The result of a `--json` command: one JSON document on stdout."""
    print(json.dumps(data, indent=2, default=str))


def exclusive_resume_redo(resume: bool, redo: bool) -> None:
    if resume and redo:
        raise ConfigError("--resume and --redo exclude each other")


DEBUG = {"on": False}
"""Set by `klong --debug`: unexpected errors show their traceback."""
_USAGE_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ in ("ClickException", "Abort"))
"""typer's own usage errors (a bad option value): it prints them itself."""


def handle_errors(fn: F) -> F:
    """Print klong's own errors as one line (no traceback, secrets redacted) and exit with status 2; any other error
    is a bug, printed as one line too unless `--debug` asks for the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KlongError as e:
            err_console.print(f"[red]error[/red]: {escape(redact(str(e)) or '')}", highlight=False)
            raise typer.Exit(code=2) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit, *_USAGE_ERRORS):
            raise
        except Exception as e:
            if DEBUG["on"]:
                raise
            text = escape(redact(f"{type(e).__name__}: {e}") or "")
            err_console.print(f"[red]error[/red]: unexpected {text} (klong --debug ... shows the traceback; please "
                              "report it)", highlight=False)  # fmt: skip
            raise typer.Exit(code=1) from None

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
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of unexpected errors.")] = False,
) -> None:
    """klong: long-horizon agent training and evaluation."""
    DEBUG["on"] = debug
