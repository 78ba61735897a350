"""Real `klong split` output for the file-format tests: real SWE-agent trajectories (../shared/data), imported and split
by the CLI with the real Qwen2.5 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

from tests.shared import shared_path

TRAJECTORIES = (
    "demonstrations__function_calling_simple.traj",
    "replay__marshmallow-code__marshmallow-1867__function_calling_replace__install-1__marshmallow-code__"
    "marshmallow-1867.traj",
)
"""Two function-calling SWE-agent runs whose task prompts (about 1K tokens) leave room in a 2K window."""
SPLIT_FLAGS = ("--max-len", "2048", "--overlap", "384", "--pin-turns", "1", "--max-prefix", "1536")


def klong(*args: str):
    from typer.testing import CliRunner

    from klong.cli import app

    return CliRunner().invoke(app, list(args))


def split_real(tmp_path: Path, tokenizer_dir: Path, *flags: str) -> tuple[Path, dict]:
    """`klong trajectory import` then `klong split --json` of the real trajectories; the output file and the report."""
    files = [shared_path("trajectories", "swe-agent", name) for name in TRAJECTORIES]
    imported = tmp_path / "imported"
    result = klong("trajectory", "import", *map(str, files), "--from", "swe-agent", "--out", str(imported))
    assert result.exit_code == 0, result.output
    out = tmp_path / "windows.parquet"
    result = klong("split", str(imported), "--tokenizer", str(tokenizer_dir), *(flags or SPLIT_FLAGS), "--out",
                   str(out), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)
