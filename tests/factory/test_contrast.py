import asyncio
import json
import re

from klong.factory.contrast import ContrastConfig, build_submissions, numbers_text, run_contrast, training_judge
from klong.factory.draft.stage import run_draft
from klong.factory.fake_drafter import FakeDrafter, judge_reply
from klong.judge.grade import make_judge
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.task import Task
from tests.factory.tiny_factory import TINY, TITLE, draft_config, make_factory

PAPER = (TINY / "paper.md").read_text()


def _task(tmp_path):
    make_factory(tmp_path)
    run_draft(tmp_path, draft_config(model="fake"))
    out = tmp_path / "draft" / "gatenorm"
    return Task(id="gatenorm", title=TITLE, paper=PAPER, addendum=(out / "addendum.md").read_text(),
                rubric=json.loads((out / "rubric.json").read_text()))  # fmt: skip


def test_submissions_are_built_from_the_task(tmp_path):
    task = Task(id="t", paper=PAPER, rubric={})
    subs = build_submissions(task, TINY / "code", tmp_path / "subs")
    assert (subs["official"] / "train.py").exists() and not (subs["official"] / ".git").exists()
    assert (subs["scaffold"] / "reproduce.sh").read_text().strip().endswith("exit 0")
    results = (subs["numbers_only"] / "results.md").read_text()
    assert "| ResNet-20 + GateNorm | 92.4 | 0 / 5 |" in results and "92.4%" in results
    assert "Deep residual learning" not in numbers_text(PAPER)  # references are not the paper's numbers
    assert set(build_submissions(task, None, tmp_path / "subs2")) == {"scaffold", "numbers_only"}


def test_contrast_on_the_tiny_task_with_the_fake_training_judge(tmp_path):
    task = _task(tmp_path)
    config = ContrastConfig()
    with training_judge(config) as make:
        report = asyncio.run(run_contrast(task, TINY / "code", tmp_path / "contrast", make(), config))
    assert report["official_code"] and report["official_dev_share"] >= 0.75
    assert report["scores"]["scaffold"] == 0.0 and report["numbers_only_result_passes"] == 0
    assert report["passed"] and report["invalid_outcomes"] == 0
    cats = {o["category"] for o in report["per_leaf"].values()}
    assert {"Code Development", "Result Analysis"} <= cats
    assert all(
        "official" in o and "scaffold" in o for o in report["per_leaf"].values() if o["category"] == "Code Development"
    )
    assert all(o.get("numbers_only") == 0.0 for o in report["per_leaf"].values() if o["category"] == "Result Analysis")
    # the numbers-only repository was really reproduced: its log holds the paper's numbers
    log = (tmp_path / "contrast" / "submissions" / "numbers_only.reproduced" / "reproduce.log").read_text()
    assert "92.4" in log
    assert all(f["reason"] == "the official code fails it" for f in report["failing_leaves"])


def gullible(body):
    """A judge that passes any result leaf whose numbers the reproduction log shows, and every code leaf."""
    prompt = body["messages"][-1]["content"]
    if "List the files most useful" in prompt:
        return judge_reply(body)
    category, criterion = re.search(r"^Criterion \(([^)]*)\): (.*)$", prompt, re.MULTILINE).groups()
    if category == "Result Analysis":
        numbers = set(re.findall(r"\d+\.\d+", criterion))
        score = int(bool(numbers) and all(n in prompt.split("# reproduce.log", 1)[-1] for n in numbers))
    else:
        score = 1
    return {"content": json.dumps({"expectations": "", "reality": "", "score": score})}


def test_leaves_passed_by_copying_the_numbers_or_by_a_scaffold_fail(tmp_path):
    task = _task(tmp_path)
    config = ContrastConfig(policy="report")
    with FakeOpenAIServer(gullible) as server:
        judge = make_judge("openai:gullible", ModelConfig(base_url=server.base_url))
        report = asyncio.run(run_contrast(task, TINY / "code", tmp_path / "c", judge, config))
    reasons = {f["reason"] for f in report["failing_leaves"]}
    assert "a repository that only prints the paper's numbers passes it" in reasons
    assert "the empty scaffold passes it" in reasons
    assert report["numbers_only_result_passes"] > 0 and not report["passed"]
    assert any("numbers-only repository passes" in r for r in report["reasons"])
    assert any("empty scaffold scores 1.00" in r for r in report["reasons"])
    assert FakeDrafter() is not None
