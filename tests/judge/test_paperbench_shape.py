"""klong's grade files have PaperBench's judge-output shape.

Always: a schema written from PaperBench's own readers validates klong's output and PaperBench's real grader outputs
(the human gradings of `judge_eval`), and those re-score exactly. When PaperBench's source is at hand and its
modules import with the installed packages: PaperBench's own `GradedTaskNode.from_dict`,
`TokenUsage.from_dict`, `get_total_token_usage` and `update_all_grades` (and `JudgeOutput.from_dict` when
`paperbench.grade` imports) load klong's output. PaperBench's source: `$KLONG_FRONTIER_EVALS` (a clone of
openai/frontier-evals, or a bare git dir), else `../frontier-evals`; its judge modules need structlog, python-dotenv,
blobfile and tenacity (e.g. `pip install --target DIR ...` and `PYTHONPATH=DIR`).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from klong.judge.check import CheckJudge
from klong.judge.grade import grade_submission, make_judge
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.rubric.graded import GradedNode, aggregate
from tests.judge.fake_judge import judge_reply
from tests.judge.test_grade import fixture_task, gold
from tests.shared import shared_path

# --- the schema ------------------------------------------------------------------------------------------------------
# Mirrors openai/frontier-evals @ 51052ce, project/paperbench/paperbench/:
#   grade.py                  JudgeOutput.from_dict: the six required keys; completer_config and token_usage optional
#   judge/graded_task_node.py GradedTaskNode.from_dict: id, requirements, weight, sub_tasks, task_category, score,
#                             valid_score, explanation required; judge_metadata optional; other keys ignored
#   rubric/tasks.py           TaskNode.__post_init__: weight a number >= 0; task_category one of the valid ones;
#                             leaves must have one, inner nodes must not
#   judge/token_usage.py      TokenUsage.from_dict: {model: {"in": int, "out": int}}; get_total_token_usage reads each
#                             leaf's judge_metadata["token_usage"] with it
#   ../common/preparedness_turn_completer/.../oai_completions_turn_completer.py  OpenAICompletionsTurnCompleter.Config:
#                             `model` required; temperature, max_tokens, top_p optional; other keys ignored

CATEGORIES = Literal["Code Development", "Code Execution", "Result Analysis", "Subtree"]


class TokenCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    in_: StrictInt = Field(alias="in")
    out: StrictInt


class CompleterConfig(BaseModel):
    model: StrictStr
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None


class GradedTaskNode(BaseModel):
    id: StrictStr
    requirements: StrictStr
    weight: StrictInt | StrictFloat = Field(ge=0)
    sub_tasks: list[GradedTaskNode]
    task_category: CATEGORIES | None
    score: StrictInt | StrictFloat
    valid_score: StrictBool | StrictInt | StrictFloat  # unchecked by PaperBench: its `rice` grading has 1.0
    explanation: StrictStr
    judge_metadata: Any = None  # unchecked by PaperBench (its `pinn` grading has ""); token_usage read when present

    @model_validator(mode="after")
    def _paperbench_rules(self) -> GradedTaskNode:
        if self.sub_tasks and self.task_category:
            raise ValueError(f"inner node {self.id} has a task category")
        if not self.sub_tasks and not self.task_category:
            raise ValueError(f"leaf {self.id} has no task category")
        if isinstance(self.judge_metadata, dict) and "token_usage" in self.judge_metadata:
            for counts in dict(self.judge_metadata["token_usage"]).values():
                TokenCounts.model_validate(counts)
        return self


class JudgeOutput(BaseModel):
    judge_type: StrictStr
    score: StrictInt | StrictFloat
    num_leaf_nodes: StrictInt
    num_invalid_leaf_nodes: StrictInt
    graded_at: StrictStr
    graded_task_tree: GradedTaskNode
    completer_config: CompleterConfig | None = None
    token_usage: dict[str, TokenCounts] | None = None


# --- klong's outputs -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def klong_outputs(tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("shape")
    out = {}
    with FakeOpenAIServer(judge_reply) as server:
        judge = make_judge("openai:gpt-4.1", ModelConfig(base_url=server.base_url, max_retries=1, temperature=0.0))
        out["simple"] = asyncio.run(
            grade_submission(gold(tmp, "nested_hex_flags"), fixture_task(tmp, "nested_hex_flags"), judge)
        )
    sub = gold(tmp, "hex_flags")
    out["check"] = asyncio.run(grade_submission(sub, fixture_task(tmp, "hex_flags"), CheckJudge()))
    out["disqualified"] = asyncio.run(grade_submission(sub, fixture_task(tmp, "hex_flags"), CheckJudge(),
                                                       disqualified="fetched the authors' code"))  # fmt: skip
    return out


@pytest.mark.parametrize("kind", ["simple", "check", "disqualified"])
def test_klong_output_matches_paperbench_schema(klong_outputs, kind):
    grade = klong_outputs[kind]
    JudgeOutput.model_validate(grade)
    stack = [grade["graded_task_tree"]]
    while stack:  # klong writes booleans, as PaperBench's own judge does
        node = stack.pop()
        assert isinstance(node["valid_score"], bool) and isinstance(node["explanation"], str) and node["explanation"]
        assert node["judge_metadata"] is None or isinstance(node["judge_metadata"], dict)
        stack += node["sub_tasks"]
    if kind == "simple":
        assert grade["judge_type"] == "simple" and grade["completer_config"]["model"] == "gpt-4.1"
        assert grade["token_usage"] == {"gpt-4.1": {"in": 5 * 1100, "out": 5 * 60}}
        leaf = grade["graded_task_tree"]["sub_tasks"][0]
        assert leaf["judge_metadata"]["full_judge_response"].startswith("# Expectations")
        assert leaf["judge_metadata"]["token_usage"] == {"gpt-4.1": {"in": 1100, "out": 60}}
    else:
        assert grade["token_usage"] is None and grade["completer_config"] is None


def test_schema_rejects_klongs_old_token_usage(klong_outputs):
    old = json.loads(json.dumps(klong_outputs["simple"]))
    old["token_usage"] = {"prompt_tokens": 5500, "completion_tokens": 300, "total_tokens": 5800}
    with pytest.raises(ValueError):
        JudgeOutput.model_validate(old)


# --- PaperBench's real grader outputs --------------------------------------------------------------------------------

SHARED = ["all-in-one", "semantic-self-consistency", "stay-on-topic-with-classifier-free-guidance"]


def _rescore(tree: dict) -> tuple[float, int]:
    node = aggregate(GradedNode.model_validate(tree))
    return node.score, len(node.leaves())


@pytest.mark.parametrize("paper", SHARED)
def test_paperbench_gradings_fit_the_schema_and_rescore_exactly(paper):
    tree = json.loads(shared_path("paperbench", "judge_eval", paper, "expected_result.json").read_text())
    GradedTaskNode.model_validate(tree)
    score, _ = _rescore(tree)
    assert score == pytest.approx(tree["score"], abs=1e-12)


# --- PaperBench's own classes ----------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]
FETCHED = "/work/.mirror/openai+frontier-evals/repo"


@pytest.fixture(scope="module")
def paperbench_src(tmp_path_factory) -> Path:
    """`project/paperbench` of openai/frontier-evals: `$KLONG_FRONTIER_EVALS` (a clone, or a bare git dir), else
    `../frontier-evals` beside the repository, else where the session's `fetch` tool leaves it."""
    candidates = [os.environ.get("KLONG_FRONTIER_EVALS"), str(REPO.parent / "frontier-evals"), FETCHED]
    root = next((Path(c) for c in candidates if c and Path(c).exists()), None)
    if root is None:
        pytest.skip("PaperBench's code not found: set KLONG_FRONTIER_EVALS to a clone of openai/frontier-evals")
    if (root / "project" / "paperbench").is_dir():
        return root / "project" / "paperbench"
    if shutil.which("git") is None:
        pytest.skip("git is needed to read PaperBench from a bare clone")
    archive = subprocess.run(["git", f"--git-dir={root}", "archive", "HEAD", "project/paperbench/paperbench",
                              "project/paperbench/data/judge_eval"], capture_output=True, check=False)  # fmt: skip
    if archive.returncode != 0:
        pytest.skip(f"cannot read PaperBench from {root}: {archive.stderr.decode()[:200]}")
    dest = tmp_path_factory.mktemp("paperbench")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "project" / "paperbench"


@pytest.fixture(scope="module")
def paperbench(paperbench_src):
    sys.path.insert(0, str(paperbench_src))
    try:
        graded = importlib.import_module("paperbench.judge.graded_task_node")
        usage = importlib.import_module("paperbench.judge.token_usage")
    except ImportError as e:
        pytest.skip(f"PaperBench's judge modules need packages not installed here: {e}")
    finally:
        sys.path.remove(str(paperbench_src))
    try:
        grade_module = importlib.import_module("paperbench.grade")
    except ImportError:
        grade_module = None  # paperbench.grade needs nanoeval, tiktoken, blobfile...: load through its parts
    return graded, usage, grade_module


def _load_with_paperbench(paperbench, data: dict):
    """PaperBench's JudgeOutput.from_dict when importable, else exactly the calls it makes."""
    graded, usage, grade_module = paperbench
    if grade_module is not None:
        from preparedness_turn_completer.oai_completions_turn_completer import OpenAICompletionsTurnCompleter

        out = grade_module.JudgeOutput.from_dict(data, OpenAICompletionsTurnCompleter.Config)
        return out.graded_task_tree, out.token_usage
    tree = graded.GradedTaskNode.from_dict(data["graded_task_tree"])
    token_usage = usage.TokenUsage.from_dict(data["token_usage"]) if data.get("token_usage") else None
    return tree, token_usage


@pytest.mark.parametrize("kind", ["simple", "check", "disqualified"])
def test_paperbench_loads_klong_output(paperbench, klong_outputs, kind):
    graded, usage, _ = paperbench
    data = json.loads(json.dumps(klong_outputs[kind]))
    tree, token_usage = _load_with_paperbench(paperbench, data)
    assert len(tree.get_leaf_nodes()) == data["num_leaf_nodes"]
    assert graded.update_all_grades(tree).score == pytest.approx(data["score"], abs=1e-12)
    total = usage.get_total_token_usage(tree).to_dict()
    if kind == "simple":
        assert token_usage.to_dict() == total == {"gpt-4.1": {"in": 5 * 1100, "out": 5 * 60}}
    else:
        assert token_usage is None and total == {}


FIVE = ["all-in-one", "pinn", "rice", "semantic-self-consistency", "stay-on-topic-with-classifier-free-guidance"]


def _grading(paperbench_src: Path, paper: str) -> dict:
    return json.loads(
        (paperbench_src / "data" / "judge_eval" / paper / "0" / "grading" / "expected_result.json").read_text()
    )


@pytest.mark.parametrize("paper", FIVE)
def test_paperbench_rescores_its_five_grader_outputs(paperbench, paperbench_src, paper):
    """The five judge_eval gradings in PaperBench's repository: PaperBench's own classes load and re-score them to the
    recorded score, and the schema above accepts them."""
    graded, _, _ = paperbench
    data = _grading(paperbench_src, paper)
    GradedTaskNode.model_validate(data)
    assert graded.update_all_grades(graded.GradedTaskNode.from_dict(data)).score == pytest.approx(
        data["score"], abs=1e-12
    )


@pytest.mark.parametrize("paper", FIVE)
def test_klong_rescores_paperbench_five_grader_outputs(paperbench, paperbench_src, paper):
    graded, _, _ = paperbench
    data = _grading(paperbench_src, paper)
    ours, leaves = _rescore(data)
    assert ours == pytest.approx(data["score"], abs=1e-12)
    assert leaves == len(graded.GradedTaskNode.from_dict(data).get_leaf_nodes())
