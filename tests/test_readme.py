"""Every shell example of README.md runs as written, in order, from a folder holding only the repository's `examples/`
(what a fresh clone has: nothing from ../shared/data), with the installed `klong` on PATH.

The blocks that install klong, run the 11-minute demo or run the test suites are not run here; they are named below,
and the test fails when the README gains a block that is neither run nor named. The README's test command must be
the one `.ci/run` runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
NOT_RUN = {
    "python3 -m venv .venv\n.venv/bin/pip install torch==2.13.0 -e": "installs klong (what this suite runs in)",
    "python3 -m venv .venv\n.venv/bin/pip install torch==2.13.0 --index-url": "installs from the network",
    "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e \".[dev]\" && .venv/bin/klong demo": (
        "installs and runs the full demo (tests/demo runs the demo)"),
    "python3 -m venv .venv && .venv/bin/pip install -q torch==2.13.0 -e \".[dev]\" && .venv/bin/ruff": (
        "the test command itself (.ci/run runs it)"),
    ".venv/bin/python -m pytest -q --run-slow -m slow": "the slow tier (.ci/run runs it)",
}  # fmt: skip


def shell_blocks() -> list[str]:
    return [m.group(1) for m in re.finditer(r"^```(?:bash|sh|shell)\n(.*?)^```", README.read_text(), re.M | re.S)]


def not_run(block: str) -> str | None:
    return next((why for start, why in NOT_RUN.items() if block.startswith(start)), None)


def test_every_block_is_run_or_named_and_the_test_command_is_ci_s():
    blocks = shell_blocks()
    named = [b for b in blocks if not_run(b)]
    assert len(named) == len(NOT_RUN), "a block named in NOT_RUN is gone from the README, or matches twice"
    assert len(blocks) - len(named) >= 6
    (test_command,) = [b.strip() for b in named if "pytest -q" in b and "--run-slow" not in b]
    assert test_command in (REPO / ".ci" / "run").read_text().splitlines()


@pytest.mark.slow  # about 25 s; .ci/run runs the slow tier
def test_readme_examples_run_from_a_fresh_clone(tmp_path):
    work = tmp_path / "clone"
    shutil.copytree(REPO / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HOME": str(home), "KLONG_SHARED_DATA": str(tmp_path / "no-shared-data")}  # fmt: skip
    env.pop("OPENAI_BASE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    for block in shell_blocks():
        if not_run(block):
            continue
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True,
                                text=True, timeout=300)  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"README block failed (exit {result.returncode}):\n{block}\n--- stdout\n{result.stdout[-3000:]}"
                        f"\n--- stderr\n{result.stderr[-3000:]}")  # fmt: skip
    runs = work / "runs"
    assert len(list((runs / "imported").glob("*.json"))) == 2
    assert (runs / "windows.parquet").stat().st_size > 0
    assert (runs / "eval" / "grades" / "median-note__a0.json").exists()
    assert (runs / "paperbench" / "submissions" / "median-note" / "submission" / "results.json").exists()
    assert len(list((runs / "paperbench" / "runs").glob("*/median-note_*/grade.json"))) == 1
    assert len((runs / "chat.jsonl").read_text().splitlines()) == 3
    assert (runs / "factory" / "package" / "papers" / "tiny-paper" / "rubric.json").exists()
