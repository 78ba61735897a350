"""`klong factory STAGE`: the Research-Factory's stages, each reading the previous stage's files.

The commands live in three files, by concern: sources and filtering (`factory_sources`), paper text and blacklists
(`factory_text`), rubric drafting, quality gates and packaging (`factory_rubric`).
"""

from __future__ import annotations

import typer

from klong.cli.common import app

factory_app = typer.Typer(
    name="factory",
    help="Research-Factory: papers in, PaperBench-format replication tasks out.",
    no_args_is_help=True,
)
app.add_typer(factory_app, name="factory")

# Registration order is the order `klong factory --help` lists the stages in: the pipeline's order.
# isort: off
from klong.cli import factory_sources  # noqa: E402,F401
from klong.cli import factory_text  # noqa: E402,F401
from klong.cli import factory_rubric  # noqa: E402,F401
# isort: on
