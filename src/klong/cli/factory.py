"""`klong factory STAGE`: the Research-Factory's stages, each reading the previous stage's files.

The commands live in three files, by concern: sources and filtering (`factory_sources`), paper text and blacklists
(`factory_text`), rubric drafting, quality gates and packaging (`factory_rubric`).
"""

from __future__ import annotations

from klong.cli.common import sub_app

factory_app = sub_app("factory", "Research-Factory: papers in, PaperBench-format replication tasks out.")

# Registration order is the order `klong factory --help` lists the stages in: the pipeline's order.
# isort: off
from klong.cli import factory_sources  # noqa: E402,F401
from klong.cli import factory_text  # noqa: E402,F401
from klong.cli import factory_rubric  # noqa: E402,F401
# isort: on
