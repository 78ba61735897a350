import copy
import json

import pytest

from klong.factory.leak import code_tokens, find_leaks, repo_paths
from tests.factory.tiny_factory import REPO_URL, TINY
from tests.shared import shared_path

PAPER = (TINY / "paper.md").read_text()
CODE = TINY / "code"


def _rubric(text="Code has been written to implement the gated residual block"):
    return {"id": "root", "requirements": "The paper has been reproduced", "weight": 1, "task_category": None,
            "finegrained_task_category": None,
            "sub_tasks": [{"id": "leaf1", "requirements": text, "weight": 1, "sub_tasks": [],
                           "task_category": "Code Development", "finegrained_task_category": "Method Implementation"}]}  # fmt: skip


@pytest.mark.parametrize("form", [
    "https://github.com/tinylab-ml/gatenorm", "github.com/TinyLab-ML/gatenorm.git", "git@github.com:tinylab-ml/gatenorm",
    "https://raw.githubusercontent.com/tinylab-ml/gatenorm/main/train.py", "codeload.github.com/tinylab-ml/gatenorm/zip",
    "the tinylab-ml/gatenorm repository",
])  # fmt: skip
def test_a_leaked_repo_url_in_the_addendum_is_caught_in_every_form(form):
    leaks = find_leaks(_rubric(), f"# Addendum\n\n- See {form} for details.\n", repo_urls=[REPO_URL], paper=PAPER)
    assert leaks and leaks[0].kind == "repository" and leaks[0].file == "addendum.md" and leaks[0].where == "line 3"
    assert "leak: repository" in str(leaks[0])


def test_file_names_and_identifiers_of_the_code_are_caught_in_the_rubric():
    tokens = code_tokens(CODE, PAPER)
    assert "gated_block.py" in tokens["file name"] and "gated_block" in tokens["file name"]
    assert {"train_one_seed", "gate_penalty"} <= tokens["identifier"]
    # public names: the paper says "ResNet-20", "per-channel gate", "gated residual block"; train.py is generic
    assert not {"resnet20", "ChannelGate", "GatedResidualBlock"} & tokens["identifier"]
    assert not {"train.py", "cifar10.yaml"} & tokens["file name"]
    leaks = find_leaks(_rubric("Code has been written in gated_block.py to define train_one_seed"), "",
                       repo_urls=[REPO_URL], code_dir=CODE, paper=PAPER)  # fmt: skip
    kinds = {(lk.kind, lk.token) for lk in leaks}
    assert ("file name", "gated_block.py") in kinds and ("identifier", "train_one_seed") in kinds
    assert all(lk.where.startswith("node 1 (leaf1") for lk in leaks)


def test_names_the_paper_states_and_generic_names_are_not_leaks():
    text = "Code has been written to train a ResNet-20 with GateNorm using train.py and a config; see Table 1"
    assert (
        find_leaks(_rubric(text), "- The learning rate is 0.05.\n", repo_urls=[REPO_URL], code_dir=CODE, paper=PAPER)
        == []
    )
    assert repo_paths(["https://github.com/a/b.git", "not a url"]) == ["a/b"]


def test_paperbench_rubrics_do_not_leak_their_own_blacklisted_repos():
    """PaperBench's human rubrics never name the repository their blacklist.txt forbids."""
    for folder in sorted(shared_path("paperbench", "papers").iterdir()):
        rubric = json.loads((folder / "rubric.json").read_text())
        blacklist = [ln.strip() for ln in (folder / "blacklist.txt").read_text().splitlines() if ln.strip()]
        leaks = [lk for lk in find_leaks(rubric, "", repo_urls=blacklist) if lk.kind == "repository"]
        assert leaks == [], folder.name
    leaked = copy.deepcopy(rubric)
    leaked["sub_tasks"][0]["requirements"] += f" (as in {blacklist[0]})"
    assert find_leaks(leaked, "", repo_urls=blacklist)
