"""Grading end to end through the `openai` backend against a deterministic judge server on 127.0.0.1."""

import asyncio
import json
import shutil

import pytest

from klong.judge.base import JudgeConfig
from klong.judge.cache import JudgeCache
from klong.judge.check import CheckJudge
from klong.judge.grade import grade_submission, make_judge
from klong.judge.reproduce import reproduce
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.task import Task, read_task, write_task
from tests.judge.fake_judge import judge_reply
from tests.shared import shared_path


def fixture_task(tmp_path, rubric_name: str) -> Task:
    rubric = json.loads(shared_path("paperbench", "fixtures", "rubrics", f"{rubric_name}.json").read_text())
    return read_task(
        write_task(
            tmp_path / "tasks" / rubric_name, Task(id=rubric_name, paper="# Flags\n\nWrite hex flags.\n", rubric=rubric)
        )
    )


def gold(tmp_path, name: str):
    dst = tmp_path / "submissions" / name
    if name == "empty":
        dst.mkdir(parents=True)
    else:
        shutil.copytree(shared_path("paperbench", "fixtures", "submissions", name, "gold"), dst)
    return dst


def grade(server, task, submission, cache=None, **kw):
    judge = make_judge("openai:judge", ModelConfig(base_url=server.base_url, max_retries=2, temperature=0.0))
    return asyncio.run(grade_submission(submission, task, judge, cache=cache, **kw))


@pytest.mark.parametrize(
    ("rubric", "submission", "expected"),
    [("hex_flag", "hex_flag", 1.0), ("hex_flags", "hex_flags", 1.0), ("nested_hex_flags", "nested_hex_flags", 1.0),
     ("hex_flag_context", "hex_flag", 1.0), ("trivial", "hex_flag", 1.0), ("impossible", "hex_flag", 0.0),
     ("empty", "empty", 1.0), ("empty", "hex_flag", 0.0), ("hex_flags", "empty", 0.0)],
)  # fmt: skip
def test_paperbench_fixtures_get_the_expected_scores(tmp_path, rubric, submission, expected):
    with FakeOpenAIServer(judge_reply) as server:
        result = grade(server, fixture_task(tmp_path, rubric), gold(tmp_path, submission))
    assert result["score"] == expected
    assert result["num_invalid_leaf_nodes"] == 0
    tree = result["graded_task_tree"]
    assert set(tree) == {"id", "requirements", "weight", "score", "valid_score", "task_category",
                         "finegrained_task_category", "explanation", "judge_metadata", "sub_tasks"}  # fmt: skip


def test_partial_credit_and_token_usage(tmp_path):
    task = fixture_task(tmp_path, "nested_hex_flags")
    sub = gold(tmp_path, "nested_hex_flags")
    (sub / "directory" / "flag.txt").write_text("0xdeadbeef")
    with FakeOpenAIServer(judge_reply) as server:
        result = grade(server, task, sub)
    # root children (weights 1, 1, 1): flag.txt ok (1), other_directory ok (1),
    # directory = mean(own flag wrong 0, nested = mean(flag ok 1, other_nested ok 1) = 1) = 0.5 -> (1 + 1 + 0.5) / 3
    assert result["score"] == pytest.approx(2.5 / 3)
    leaves = 5
    # one ranking and one grading call per leaf, in PaperBench's TokenUsage shape: {model: {in, out}}
    assert result["token_usage"] == {"judge": {"in": leaves * (100 + 1000), "out": leaves * (10 + 50)}}
    assert result["completer_config"] == {"model": "judge", "temperature": 0.0, "top_p": 1.0, "max_tokens": 4096}
    leaf = result["graded_task_tree"]["sub_tasks"][0]
    meta = leaf["judge_metadata"]
    assert meta["token_usage"] == {"judge": {"in": 1100, "out": 60}} and meta["klong"]["calls"] == 2
    # the whole answer is kept; the explanation is its Reality and Score parts, never empty
    assert meta["full_judge_response"].startswith("# Expectations\n")
    assert (
        leaf["explanation"].startswith("# Reality\nfiles seen: ['directory/flag.txt',")
        and "Score: 1" in leaf["explanation"]
    )


def test_second_grade_makes_no_model_calls(tmp_path):
    task = fixture_task(tmp_path, "hex_flags")
    sub = gold(tmp_path, "hex_flags")
    cache = JudgeCache(tmp_path / "cache")
    with FakeOpenAIServer(judge_reply) as server:
        first = grade(server, task, sub, cache=cache)
        calls = len(server.requests)
        second = grade(server, task, sub, cache=JudgeCache(tmp_path / "cache"))
        assert len(server.requests) == calls == 10
        (sub / "1.txt").write_text("0x00000000")  # a changed submission is graded again
        third = grade(server, task, sub, cache=JudgeCache(tmp_path / "cache"))
        assert len(server.requests) == 20
    assert first["score"] == second["score"] == 1.0 and third["score"] == 0.8
    assert second["klong"]["model_calls"] == 0 and second["klong"]["cache_hits"] == 5


def test_unreadable_answers_and_failures_are_invalid_leaves(tmp_path):
    task = fixture_task(tmp_path, "hex_flags")
    sub = gold(tmp_path, "hex_flags")

    def replies(body):
        prompt = body["messages"][-1]["content"]
        if "List the files" in prompt:
            return {"content": "1.txt 2.txt 3.txt 4.txt 5.txt"}  # not one per line: known names are still picked up
        if "<answer>" in prompt:  # the parsing step finds no score either
            return {"content": '{"valid_score": false, "score": 0, "explanation": "no score"}'}
        if "'1.txt'" in prompt.split("Criterion (")[1]:
            return {"content": "Looks fine to me."}  # no score at all
        if "'2.txt'" in prompt.split("Criterion (")[1]:
            return {"status": 500}
        return {"content": 'Reasoning first.\n{"expectations": "e", "reality": "r", "score": "1"}'}

    with FakeOpenAIServer(replies) as server:
        result = grade(server, task, sub)
    assert result["num_invalid_leaf_nodes"] == 2 and result["score"] == pytest.approx(3 / 5)
    invalid = [leaf for leaf in result["graded_task_tree"]["sub_tasks"] if not leaf["valid_score"]]
    assert {leaf["id"][:4] for leaf in invalid} == {"1234", "2345"}
    assert any("unreadable judge answer" in leaf["explanation"] for leaf in invalid)
    assert any("judge model failed" in leaf["explanation"] for leaf in invalid)


def test_judge_sees_what_its_category_allows(tmp_path):
    """Result leaves see only files the reproduction produced; execution leaves see reproduce.sh and its log."""
    rubric = {"id": "r", "requirements": "paper", "weight": 1, "task_category": None, "finegrained_task_category": None,
              "sub_tasks": [
                  {"id": "cd", "requirements": "model.py implements the model", "weight": 1, "sub_tasks": [],
                   "task_category": "Code Development", "finegrained_task_category": "Method Implementation"},
                  {"id": "ce", "requirements": "the training ran", "weight": 1, "sub_tasks": [],
                   "task_category": "Code Execution", "finegrained_task_category": "Experimental Setup"},
                  {"id": "ra", "requirements": "accuracy is above 0.9", "weight": 1, "sub_tasks": [],
                   "task_category": "Result Analysis", "finegrained_task_category": "Logging, Analysis & Presentation"}]}  # fmt: skip
    task = read_task(write_task(tmp_path / "t", Task(id="t", paper="# P\n", rubric=rubric)))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "model.py").write_text("class Model: pass\n")
    (sub / "stale_results.csv").write_text("accuracy,0.99\n")  # a table written by hand, before the reproduction
    (sub / "NOTES.md").write_text("Accuracy is about 0.95.\n")  # docs: shown to result leaves too (PaperBench)
    (sub / "reproduce.sh").write_text("echo training...; echo 'accuracy,0.95' > results.csv\n")
    asyncio.run(reproduce(sub, tmp_path / "repro"))
    prompts = {}

    def replies(body):
        prompt = body["messages"][-1]["content"]
        if "List the files" not in prompt:
            prompts[prompt.split("Criterion (")[1].split(")")[0]] = prompt
        return {"content": json.dumps({"files": ["results.csv", "model.py", "stale_results.csv", "NOTES.md"],
                                       "expectations": "", "reality": "", "score": 1})}  # fmt: skip

    with FakeOpenAIServer(replies) as server:
        result = grade(server, task, tmp_path / "repro")
    assert result["score"] == 1.0
    ra, ce, cd = prompts["Result Analysis"], prompts["Code Execution"], prompts["Code Development"]
    assert "## File: results.csv" in ra and "## File: NOTES.md" in ra and "training..." in ra
    assert "## File: stale_results.csv" not in ra and "## File: model.py" not in ra  # an old table; code
    assert "# reproduce.log (exit code 0" in ce and "accuracy,0.95" in ce and "## File: model.py" in ce
    assert "reproduce.log" not in cd and "## File: model.py" in cd and "# reproduce.sh\n```\necho training" in cd
    assert "## File: results.csv" not in cd  # not code: Code Development leaves see docs and code only
    # rubric context as PaperBench gives it: the root, then earlier siblings of the leaf
    assert "<preceding_criteria>\n -> paper\n</preceding_criteria>" in cd
    assert "<preceding_criteria>\n -> paper\n -> model.py implements the model\n -> the training ran\n" in ra
    # an empty explanation from the model is not an empty explanation in the grade
    assert all(leaf["explanation"] for leaf in result["graded_task_tree"]["sub_tasks"])


def test_check_judge_and_disqualification(tmp_path):
    rubric = {"id": "r", "requirements": "paper", "weight": 1, "task_category": None, "finegrained_task_category": None,
              "sub_tasks": [
                  {"id": "a", "requirements": "out.txt says 42", "weight": 3, "sub_tasks": [], "task_category": "Result Analysis",
                   "finegrained_task_category": None, "check": {"command": "grep -qx 42 out.txt"}},
                  {"id": "b", "requirements": "config uses lr 0.1", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
                   "finegrained_task_category": None, "check": {"command": "grep -q 'lr: 0.1' config.yaml"}},
                  {"id": "c", "requirements": "no check here", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
                   "finegrained_task_category": None}]}  # fmt: skip
    task = read_task(write_task(tmp_path / "t", Task(id="t", paper="# P\n", rubric=rubric)))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "out.txt").write_text("42\n")
    (sub / "config.yaml").write_text("lr: 0.01\n")
    result = asyncio.run(grade_submission(sub, task, CheckJudge()))
    assert result["score"] == pytest.approx(3 / 5) and result["num_invalid_leaf_nodes"] == 1
    assert result["judge_type"] == "check"
    dq = asyncio.run(grade_submission(sub, task, CheckJudge(), disqualified="fetched the authors' repository"))
    assert dq["score"] == 0.0 and "disqualified" in dq["graded_task_tree"]["sub_tasks"][0]["explanation"]


def test_code_only_and_depth_variants(tmp_path):
    rubric = json.loads(shared_path("paperbench", "papers", "fre", "rubric.json").read_text())
    task = read_task(write_task(tmp_path / "fre", Task(id="fre", paper="# FRE\n", rubric=rubric)))
    sub = tmp_path / "sub"
    sub.mkdir()
    calls = []

    def replies(body):
        calls.append(1)
        return {"content": '{"expectations": "", "reality": "", "score": 0}'}

    async def both(judge):
        code = await grade_submission(sub, task, judge, code_only_=True, concurrency=32)
        return code, await grade_submission(sub, task, judge, max_depth=2, concurrency=32)

    with FakeOpenAIServer(replies) as server:
        judge = make_judge("openai:j", ModelConfig(base_url=server.base_url), JudgeConfig(rank_files=False))
        code, shallow = asyncio.run(both(judge))
    assert code["num_leaf_nodes"] == 306 and code["klong"]["code_only"]
    assert shallow["num_leaf_nodes"] == len(rubric["sub_tasks"])
    # an unreproduced submission: Result Analysis leaves score 0 without a model call, as in PaperBench
    shallow_ra = [
        leaf for leaf in shallow["graded_task_tree"]["sub_tasks"] if leaf["task_category"] == "Result Analysis"
    ]
    assert all(leaf["explanation"].startswith("Reproduce.sh did not touch any files") for leaf in shallow_ra)
    assert len(calls) == 306 + len(rubric["sub_tasks"]) - len(shallow_ra)
