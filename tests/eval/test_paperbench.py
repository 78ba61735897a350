"""`klong eval paperbench` end to end on one of PaperBench's own papers (its rubric, config and blacklist from
../shared/data, a paper text beside it), with a scripted agent and a deterministic judge server on 127.0.0.1: the
agent's reproduce.sh really runs in a fresh sandbox and the judge sees its output; grades, PaperBench's run group and
the results table come out; a second run of the command grades nothing again; Code-Dev grades the code leaves without
reproducing; PaperBench's own classes read the grades where its code is present."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from klong.cli import app
from klong.eval.paperbench import split_ids
from klong.models.fake_openai import FakeOpenAIServer
from tests.export.paperbench_code import PaperBenchCode, _root
from tests.shared import shared_path

runner = CliRunner()
PAPER = "semantic-self-consistency"
RESULT = "accuracy 0.9"
"""What reproduce.sh prints into results.txt; its text (`0.$((3*3))`) does not contain it: only a judge shown the
reproduction's output can see it."""


def judge(body):
    prompt = body["messages"][-1]["content"]
    if "List the files most useful" in prompt:
        return {"content": "results.txt\nreproduce.sh"}
    score = int(RESULT in prompt)
    return {"content": f"# Expectations\nresults\n# Reality\nseen\n# Score\nScore: {score}"}


@pytest.fixture
def paperbench_code_optional():
    """PaperBench's own code where a clone is present (its checks run), else None (the rest of the test still does)."""
    root = _root()
    return PaperBenchCode(root) if root is not None else None


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return build_bench(tmp_path_factory.mktemp("pb"))


def build_bench(tmp):
    """PaperBench's data folder with one paper, its splits, a file of ids and the agent's script."""
    shared = shared_path("paperbench", "papers", PAPER)
    paper_md = shared_path("papers", "md", "2310.06825.md")
    data = tmp / "paperbench" / "data"
    shutil.copytree(shared, data / "papers" / PAPER)
    shutil.copy(paper_md, data / "papers" / PAPER / "paper.md")
    (data / "papers" / PAPER / "addendum.md").write_text("No clarifications.\n")
    (data / "papers" / PAPER / "assets").mkdir()
    (data / "papers" / PAPER / "assets" / "fig1.txt").write_text("a figure\n")
    shutil.copytree(shared_path("paperbench", "splits"), tmp / "paperbench" / "experiments" / "splits")
    (tmp / "one.txt").write_text(f"{PAPER}\n")
    script = tmp / "agent.yaml"
    reproduce = 'echo "accuracy 0.$((3*3))" > results.txt\n'
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "read", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]},
        {"content": "look", "tool_calls": [{"name": "bash", "arguments": {"command": "ls paper/assets > submission/assets.txt"}}]},
        {"content": "write", "tool_calls": [{"name": "write_file",
                                             "arguments": {"path": "submission/reproduce.sh", "content": reproduce}}]},
        {"content": "done", "tool_calls": [{"name": "end_task", "arguments": {}}]}]}))  # fmt: skip
    return tmp, data, script


def _args(tmp, data, script, server, out, *extra):
    return ["eval", "paperbench", "--data", str(data), "--split", str(tmp / "one.txt"), "--model",
            f"scripted:{script}", "--judge", "openai:gpt-4.1", "--judge-base-url", server.base_url, "--out", str(out),
            "--cache", str(tmp / "cache"), "-c", "clock=virtual", "-c", "page_chars=1000000", *extra]  # fmt: skip


def test_splits_as_paperbench_names_them(bench):
    _, data, _ = bench
    dev = split_ids(data, "dev")
    assert len(dev) == 3 and PAPER in dev
    test = split_ids(data, "test")  # no test.txt: `all`, PaperBench's 20 evaluation papers (none of them dev papers)
    assert len(test) == 20 and not set(test) & set(dev) and test == split_ids(data, "all")


def test_full_paperbench_run_reproduces_grades_and_resumes(bench, paperbench_code_optional):
    tmp, data, script = bench
    out = tmp / "full"
    with FakeOpenAIServer(judge) as server:
        r = runner.invoke(app, [*_args(tmp, data, script, server, out, "--attempts", "2"), "--json"])
        assert r.exit_code == 0, r.output
        calls = len(server.requests)
        doc = json.loads(r.stdout)
        again = runner.invoke(app, _args(tmp, data, script, server, out, "--attempts", "2"))
        assert again.exit_code == 0, again.output
        assert len(server.requests) == calls  # finished episodes and their grades are kept, not redone
    assert doc["benchmark"] == "paperbench" and doc["setting"] == "full" and doc["attempts"] == 2
    assert doc["overall"]["mean"] == 1.0 and doc["overall"]["std"] == 0.0 and doc["overall"]["graded_runs"] == 2
    (task,) = doc["per_task"]
    assert task["task_id"] == PAPER and task["scores"] == [1.0, 1.0] and task["metrics"]["reproduced"] == 1.0
    assert [ref["value"] for ref in doc["references"]] == [0.3863, 0.5592, 0.5729, 0.5865, 0.6259]
    for a in (0, 1):
        ws = out / "workspaces" / f"{PAPER}__a{a}"
        assert not (ws / "submission" / "results.txt").exists()  # the agent never ran it: the reproduction did
        assert (ws / "submission.reproduced" / "results.txt").read_text() == RESULT + "\n"
        assert (ws / "submission" / "assets.txt").read_text() == "fig1.txt\n"  # assets/ reached paper/assets/
        grade = json.loads((out / "grades" / f"{PAPER}__a{a}.json").read_text())
        assert grade["score"] == 1.0 and grade["num_leaf_nodes"] == 77 and grade["num_invalid_leaf_nodes"] == 0
    manifest = json.loads((out / "paperbench" / "klong-export.json").read_text())
    assert len(manifest["runs"]) == 2 and all(run["score"] == 1.0 for run in manifest["runs"])
    for run in manifest["runs"]:
        pb_grade = json.loads((out / "paperbench" / run["grade"]).read_text())
        result = pb_grade["paperbench_result"]
        assert result["paper_id"] == PAPER and pb_grade["score"] == 1.0 and not result["skipped_reproduction"]
        repro = result["reproduction_metadata"]
        assert repro["repro_script_exists"] and "results.txt" in repro["files_after_reproduce"].split("\n")
        assert "results.txt" not in repro["files_before_reproduce"].split("\n") and not repro["timedout"]
        if paperbench_code_optional is not None:
            from tests.export.test_paperbench import CompleterConfig

            pb = paperbench_code_optional
            pb.load("paperbench/rubric/tasks.py", ["VALID_TASK_CATEGORIES", "VALID_FINEGRAINED_TASK_CATEGORIES",
                                                   "T_Node", "TaskNode"], module="paperbench.rubric.tasks")  # fmt: skip
            pb.load("paperbench/judge/graded_task_node.py", ["GradedTaskNode"],
                    module="paperbench.judge.graded_task_node")  # fmt: skip
            pb.load("paperbench/judge/token_usage.py", ["TokenUsage", "_get_leaf_node_token_usages",
                                                        "get_total_token_usage"], module="paperbench.judge.token_usage")  # fmt: skip
            jo = pb.load("paperbench/grade.py", ["JudgeOutput"], module="paperbench.grade").JudgeOutput.from_dict(
                pb_grade["paperbench_result"]["judge_output"], CompleterConfig=CompleterConfig
            )
            assert jo.score == 1.0 and jo.num_leaf_nodes == 77
            structs = pb.load("paperbench/nano/structs.py", ["ReproScriptRunOutcome", "ReproductionMetadata"],
                              module="paperbench.nano.structs")  # fmt: skip
            meta = structs.ReproductionMetadata.from_dict(repro)
            assert meta.repro_script_exists and meta.repro_execution_time == repro["repro_execution_time"]
    md = (out / "results.md").read_text()
    assert (
        "| semantic-self-consistency | 2 | 100.00 | 0.00 |" in md
        and "KLong 106B, trajectory-splitting SFT | 55.92" in md
    )
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_code_dev_grades_code_leaves_without_reproducing(bench):
    tmp, data, script = bench
    out = tmp / "code-dev"
    with FakeOpenAIServer(judge) as server:
        r = runner.invoke(app, [*_args(tmp, data, script, server, out, "--code-dev"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["setting"] == "code-dev" and doc["references"] == []  # the paper's figures are for the full benchmark
    assert doc["overall"]["mean"] == 0.0  # the judge never saw the reproduction's output
    assert not (out / "workspaces" / f"{PAPER}__a0" / "submission.reproduced").exists()
    grade = json.loads((out / "grades" / f"{PAPER}__a0.json").read_text())
    assert grade["num_leaf_nodes"] == 50 and grade["klong"]["code_only"] is True


def test_bad_inputs_are_one_line_and_write_nothing(bench):
    tmp, data, script = bench
    out = tmp / "bad"
    cases = [
        (["--split", "nosuch"], "--split 'nosuch'"),
        (["--split", "dev"], "no folder for"),  # the dev papers are not all in this data folder
    ]
    for extra, wanted in cases:
        r = runner.invoke(app, ["eval", "paperbench", "--data", str(data), "--model", f"scripted:{script}",
                                "--judge", "check", "--out", str(out), *extra])  # fmt: skip
        assert r.exit_code == 2 and wanted in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = runner.invoke(app, ["eval", "paperbench", "--data", str(tmp), "--model", f"scripted:{script}", "--judge",
                            "check", "--out", str(out), "--split", str(tmp / "one.txt")])  # fmt: skip
    assert r.exit_code == 2 and "not PaperBench's data folder" in r.output
    assert not out.exists()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")
def test_in_bwrap_the_agent_cannot_read_the_rubric_and_the_reproduction_runs_there(bench):
    tmp, data, _ = bench
    rubric = data / "papers" / PAPER / "rubric.json"
    script = tmp / "peek.yaml"
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "read", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]},
        {"content": "peek", "tool_calls": [{"name": "bash", "arguments": {
            "command": f"cat {rubric} > submission/leak.txt 2>&1; echo 'echo accuracy 0.$((3*3)) > results.txt' "
                       "> submission/reproduce.sh"}}]},
        {"content": "done", "tool_calls": [{"name": "end_task", "arguments": {}}]}]}))  # fmt: skip
    out = tmp / "bwrap"
    with FakeOpenAIServer(judge) as server:
        args = _args(tmp, data, script, server, out, "--sandbox", "bwrap")
        r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    ws = out / "workspaces" / f"{PAPER}__a0"
    leak = (ws / "submission" / "leak.txt").read_text()
    assert "requirements" not in leak and "No such file" in leak  # the task dir is not there for the agent
    assert (ws / "submission.reproduced" / "results.txt").read_text() == RESULT + "\n"
    assert json.loads(r.stdout)["overall"]["mean"] == 1.0


def test_a_paper_given_only_as_pdf_is_converted(tmp_path):
    from klong.eval.paperbench import read_paper
    from klong.factory.pdf2md import pdf_to_markdown

    folder = tmp_path / "papers" / PAPER
    shutil.copytree(shared_path("paperbench", "papers", PAPER), folder)
    pdf = shared_path("papers", "pdf", "2305.03393v1-pg9.pdf")
    shutil.copy(pdf, folder / "paper.pdf")
    task = read_paper(folder)
    assert task.id == PAPER and task.path == folder and task.rubric["id"]
    assert task.paper == pdf_to_markdown(pdf).markdown and len(task.paper) > 1000
    assert not (folder / "paper.md").exists()  # the data folder is left as it was
