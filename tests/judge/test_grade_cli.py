"""`klong grade` on the real CLI: a run dir is refused as a submission; `--tasks` grades every finished episode of a
real `klong run` into RUN_DIR/grades/<run>.json (PaperBench's shape), resumably, with a summary; help and `-h`."""

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from klong.cli import app
from klong.models.fake_openai import FakeOpenAIServer
from klong.task import Task, write_task
from tests.judge.test_paperbench_shape import JudgeOutput

runner = CliRunner()


def _rubric(requirement: str) -> dict:
    return {"id": "root", "requirements": "The paper is replicated.", "weight": 1, "task_category": None,
            "finegrained_task_category": None,
            "sub_tasks": [{"id": "leaf", "requirements": requirement, "weight": 1, "sub_tasks": [],
                           "task_category": "Code Development", "finegrained_task_category": "Method Implementation"}]}  # fmt: skip


def judge(body):
    """Passes a leaf when x.txt, as shown to the judge, holds the value the criterion asks for."""
    prompt = body["messages"][-1]["content"]
    if "List the files most useful" in prompt:
        return {"content": "x.txt"}
    wanted = prompt.split("Criterion (Code Development): x.txt holds ", 1)[1].split("\n", 1)[0]
    score = int(f"## File: x.txt\n```\n{wanted}\n```" in prompt)
    return {"content": f"# Expectations\nx.txt holds {wanted}\n# Reality\nseen\n# Score\nScore: {score}"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real run dir: two tasks, one scripted episode each, writing submission/x.txt = 1."""
    tmp = tmp_path_factory.mktemp("grade_cli")
    for task_id, want in (("alpha", "1"), ("beta", "2")):
        write_task(
            tmp / "tasks" / task_id, Task(id=task_id, paper="# Paper\n\nText.\n", rubric=_rubric(f"x.txt holds {want}"))
        )
    script = tmp / "s.yaml"
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "r", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]},
        {"content": "w", "tool_calls": [{"name": "write_file", "arguments": {"path": "submission/x.txt", "content": "1"}}]},
        {"content": "e", "tool_calls": [{"name": "end_task", "arguments": {}}]}]}))  # fmt: skip
    out = tmp / "run"
    r = runner.invoke(app, ["run", str(tmp / "tasks"), "--model", f"scripted:{script}", "--out", str(out), "--clock",
                            "virtual", "--time-limit", "1h"])  # fmt: skip
    assert r.exit_code == 0, r.output
    return tmp


def _copy(run_dir, tmp_path):
    shutil.copytree(run_dir, tmp_path / "w")
    return tmp_path / "w"


def test_a_run_dir_is_not_a_submission(run_dir, tmp_path):
    w = _copy(run_dir, tmp_path)
    r = runner.invoke(app, ["grade", str(w / "run"), "--task", str(w / "tasks" / "alpha"), "--out", str(w / "g.json")])
    assert r.exit_code == 2 and "is a run dir, not a submission" in r.output and "--tasks TASKS_DIR" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (w / "g.json").exists()
    r = runner.invoke(
        app, ["grade", str(w / "run" / "workspaces" / "alpha__a0" / "submission"), "--tasks", str(w / "tasks")]
    )
    assert r.exit_code == 2 and "--tasks" in r.output and "not a run dir" in r.output


def test_batch_grading_resumes_and_summarises(run_dir, tmp_path):
    w = _copy(run_dir, tmp_path)
    run, grades = w / "run", w / "run" / "grades"
    with FakeOpenAIServer(judge) as server:
        args = ["grade", str(run), "--tasks", str(w / "tasks"), "--judge", "openai:gpt-4.1", "--base-url",
                server.base_url, "--cache", str(w / "cache")]  # fmt: skip
        first = runner.invoke(app, [*args, "--json"])
        assert first.exit_code == 0, first.output
        result = json.loads(first.stdout)
        assert (result["graded"], result["skipped"], result["errors"]) == (2, 0, 0)
        assert {r["run_id"]: r["score"] for r in result["grades"]} == {"alpha__a0": 1.0, "beta__a0": 0.0}
        assert result["mean_score"] == 0.5 and len(server.requests) == 2
        for run_id in ("alpha__a0", "beta__a0"):
            grade = json.loads((grades / f"{run_id}.json").read_text())
            JudgeOutput.model_validate(grade)  # PaperBench's shape
            assert grade["klong"]["run_id"] == run_id and grade["token_usage"].keys() == {"gpt-4.1"}
        stamp = (grades / "alpha__a0.json").stat().st_mtime_ns

        again = runner.invoke(app, args)  # resumes: nothing to grade, the summary table still printed
        assert again.exit_code == 0, again.output
        assert len(server.requests) == 2 and (grades / "alpha__a0.json").stat().st_mtime_ns == stamp
        assert "alpha" in again.stdout and "skipped" in again.stdout and "0 graded, 2 already graded" in again.stdout

        redo = json.loads(runner.invoke(app, [*args, "--redo", "--json"]).stdout)
        assert redo["graded"] == 2 and len(server.requests) == 2  # graded again, every leaf from the cache
        assert all(r["cache_hits"] == 1 and r["model_calls"] == 0 for r in redo["grades"])


def test_batch_grading_checks_everything_first(run_dir, tmp_path):
    w = _copy(run_dir, tmp_path)
    shutil.rmtree(w / "tasks" / "beta")
    r = runner.invoke(app, ["grade", str(w / "run"), "--tasks", str(w / "tasks"), "--judge", "check"])
    assert (
        r.exit_code == 2 and "beta__a0: task 'beta' is not in --tasks" in r.output and "nothing was graded" in r.output
    )
    assert not (w / "run" / "grades").exists()


def test_blacklist_violation_in_a_run_disqualifies(run_dir, tmp_path):
    w = _copy(run_dir, tmp_path)
    traj_path = w / "run" / "trajectories" / "alpha__a0.json"
    traj = json.loads(traj_path.read_text())
    traj["meta"].setdefault("monitor", {})["blacklist_violations"] = [{"resource": "https://github.com/a/b", "line": 3}]
    traj_path.write_text(json.dumps(traj))
    with FakeOpenAIServer(judge) as server:
        r = runner.invoke(app, ["grade", str(w / "run"), "--tasks", str(w / "tasks"), "--judge", "openai:j",
                                "--base-url", server.base_url, "--no-cache", "--json"])  # fmt: skip
        assert r.exit_code == 0, r.output
        assert len(server.requests) == 1  # beta only
    grade = json.loads((w / "run" / "grades" / "alpha__a0.json").read_text())
    assert grade["score"] == 0.0 and "disqualified" in grade["graded_task_tree"]["sub_tasks"][0]["explanation"]


def test_help_shows_defaults_and_the_compare_subcommand():
    for args in (["grade", "-h"], ["grade", "--help"]):
        r = runner.invoke(app, args, env={"COLUMNS": "250"})
        assert r.exit_code == 0
        assert "compare" in r.output and "--tasks" in r.output and "[default: check]" in r.output
        assert "[default: (~/.cache/klong/judge)]" in r.output and "[default: 8]" in r.output
    r = runner.invoke(app, ["grade", "compare", "-h"])
    assert r.exit_code == 0 and "REFERENCE" in r.output.upper() and "--json" in r.output
    assert runner.invoke(app, ["reproduce", "-h"]).exit_code == 0
