"""The typer app, the consoles and the error handling shared by every command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from klong import __version__
from klong.exceptions import KlongError
from klong.redact import redact

app = typer.Typer(
    name="klong",
    help="Train and evaluate LLM agents on extremely long-horizon tasks (the KLong recipe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


F = TypeVar("F", bound=Callable[..., Any])


DEBUG = {"on": False}
_USAGE_ERRORS = tuple(c for c in typer.BadParameter.__mro__ if c.__name__ in ("ClickException", "Abort"))
"""typer's own usage errors (a bad option value): it prints them itself."""
"""Set by `klong --debug`: unexpected errors show their traceback."""


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
