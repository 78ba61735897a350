"""The `klong` command line. Each verb reads the previous stage's files and writes its own."""

from __future__ import annotations

from klong.cli import (  # noqa: F401  (registers the commands)
    demo,
    eval,
    eval_mlebench,
    eval_paperbench,
    eval_swebench,
    export,
    factory,
    grade,
    rl,
    rubric,
    run,
    select,
    sft,
    split,
    trajectory,
)
from klong.cli.common import app


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
