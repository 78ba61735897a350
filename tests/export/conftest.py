"""A real klong run dir to export: two tasks x two attempts run by `klong run` with the scripted model, the first
attempt of each graded by `klong grade --judge check` into RUN_DIR/grades/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from klong.cli import app
from klong.task import Task, read_task, write_task
from tests.export.paperbench_code import paperbench_code  # noqa: F401  (fixture)

runner = CliRunner()

RUBRIC = {
    "id": "root", "requirements": "The paper's result is replicated.", "weight": 1, "task_category": None,
    "finegrained_task_category": None,
    "sub_tasks": [
        {"id": "code", "requirements": "run.py computes the answer.", "weight": 1, "sub_tasks": [],
         "task_category": "Code Development", "finegrained_task_category": "Method Implementation",
         "check": {"command": "test -f run.py"}},
        {"id": "result", "requirements": "result.txt holds 42.", "weight": 2, "sub_tasks": [],
         "task_category": "Result Analysis", "finegrained_task_category": "Logging, Analysis & Presentation",
         "check": {"command": "grep -qx 42 result.txt"}},
    ],
}  # fmt: skip
LEAKED = "https://github.com/authors/rice-code"
SCRIPT = {"turns": [
    {"content": "I read the paper first.", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]},
    {"content": "Now the code and the result, in one go.", "tool_calls": [
        {"name": "write_file", "arguments": {"path": "submission/run.py", "content": "print(6 * 7)\n"}},
        {"name": "bash", "arguments": {"command": f"cd submission && python3 run.py > result.txt\n"
                                                  f"echo 'not run here: git clone {LEAKED}'"}},
    ]},
    {"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {"summary": "run.py and result.txt"}}]},
]}  # fmt: skip


@dataclass
class ExportRun:
    tasks: Path
    run_dir: Path
    graded: dict[str, Path]
    """klong run id -> its grade file."""


def make_task(root: Path, task_id: str, blacklist: list[str]) -> Task:
    paper = "# A small result\n\n" + "The answer, computed by a short program, is 42. " * 20 + "\n"
    task = Task(id=task_id, title=f"Paper {task_id}", paper=paper, addendum="Write run.py and result.txt.",
                blacklist=blacklist, rubric=RUBRIC, config={})  # fmt: skip
    return read_task(write_task(root / task_id, task))


@pytest.fixture(scope="module")
def export_run(tmp_path_factory) -> ExportRun:
    root = tmp_path_factory.mktemp("export-run")
    tasks = root / "tasks"
    make_task(tasks, "rice", [LEAKED])  # `rice` is a PaperBench paper id; its blacklist is what the agent cites
    make_task(tasks, "toy", ["https://example.org/never-cited"])
    script = root / "script.yaml"
    script.write_text(yaml.safe_dump(SCRIPT))
    run_dir = root / "run"
    result = runner.invoke(app, ["run", str(tasks), "--model", f"scripted:{script}", "--attempts", "2", "--out",
                                 str(run_dir), "--clock", "virtual", "-c", "page_chars=100000"])  # fmt: skip
    assert result.exit_code == 0, result.output
    judge = root / "judge.yaml"  # a model judge (scripted) for one run: token usage per leaf, as a real judge has
    judge.write_text(yaml.safe_dump({"turns": [{"content": '{"explanation": "Present and right.", "score": 1}'}] * 8}))
    graded = {}
    for run_id, spec in (("rice__a0", "check"), ("toy__a0", "check"), ("toy__a1", f"scripted:{judge}")):
        task_id = run_id.split("__")[0]
        grade = run_dir / "grades" / f"{run_id}.json"
        args = ["grade", str(run_dir / "workspaces" / run_id / "submission"), "--task", str(tasks / task_id),
                "--judge", spec, "--trajectory", str(run_dir / "trajectories" / f"{run_id}.json"), "--no-cache",
                "--out", str(grade)]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        graded[run_id] = grade
    return ExportRun(tasks, run_dir, graded)
