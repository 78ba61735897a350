"""`klong eval mlebench`: MLE-bench competitions run with klong's runtime, graded by `mlebench grade` or the local
stand-in, with MLE-bench's grading reports (`klong.eval.mlebench`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from klong.cli.eval import RunOptions, eval_command, launch

CompetitionsOpt = Annotated[
    Path,
    typer.Option("--competitions", help="Folder of competitions, <id>/prepared/{public,private}/ (MLE-bench's data "
                 "dir layout), with description.md, grade.py, leaderboard.csv per competition."),
]  # fmt: skip
IdsOpt = Annotated[
    list[str] | None,
    typer.Option("--ids", help="Competition ids (repeat, or comma-separated).", show_default="every competition"),
]
LiteOpt = Annotated[bool, typer.Option("--lite", help="MLE-bench Lite: the 22 low-complexity competitions.")]
GraderOpt = Annotated[
    str,
    typer.Option("--grader", help="auto: mlebench grade where MLE-bench is installed and knows the competition, "
                 "else local (the competition's grade.py + MLE-bench's medal rule); or mlebench, or local."),
]  # fmt: skip
MlebenchPythonOpt = Annotated[
    str | None,
    typer.Option("--mlebench-python", help="A Python that can `import mlebench` (official grading).",
                 show_default="$KLONG_MLEBENCH_PYTHON, else none"),
]  # fmt: skip


def split_ids(values: list[str] | None) -> list[str] | None:
    ids = [i.strip() for v in values or [] for i in v.split(",") if i.strip()]
    return list(dict.fromkeys(ids)) or None


@eval_command("mlebench")
def eval_mlebench(
    opts: RunOptions,
    competitions: CompetitionsOpt,
    ids: IdsOpt = None,
    lite: LiteOpt = False,
    grader: GraderOpt = "auto",
    mlebench_python: MlebenchPythonOpt = None,
) -> None:
    """Run MLE-bench competitions (24 h per attempt by default) and grade the submissions by MLE-bench's rules."""
    from klong.eval.mlebench import MLEBench

    selected = split_ids(ids)
    setting = "lite" if lite else "selected" if selected else "all"
    launch(lambda sandbox: MLEBench(competitions, ids=selected, lite=lite, grader=grader,  # type: ignore[arg-type]
                                    mlebench_python=mlebench_python),
           opts, extra={"split": setting, "competitions": str(competitions.resolve()),
                                         "grader": grader})  # fmt: skip
