import copy
import json

import pytest

from klong.factory.gates import GateConfig, grounding_gate, grounding_report, is_grounded, soft_report, structural_gates
from tests.shared import shared_path


def _rubrics():
    folder = shared_path("paperbench", "papers")
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/rubric.json"))}


def test_all_15_paperbench_rubrics_pass_the_structural_gates():
    rubrics = _rubrics()
    assert len(rubrics) == 15
    for name, rubric in rubrics.items():
        assert structural_gates(rubric, generated=False) == [], name


def test_duplicate_ids_fail_only_for_generated_rubrics():
    rubric = _rubrics()["bridging-data-gaps"]
    assert structural_gates(rubric, generated=False) == []
    fails = structural_gates(rubric, generated=True)
    assert [f.gate for f in fails] == ["unique-ids"] and "appear more than once" in fails[0].reason


def _first_inner(node):
    return next(c for c in node["sub_tasks"] if c["sub_tasks"])


def _leaves(node):
    return [node] if not node["sub_tasks"] else [x for c in node["sub_tasks"] for x in _leaves(c)]


def _broken(name, how):
    r = copy.deepcopy(_rubrics()[name])
    how(r)
    return structural_gates(r, generated=False)


def _single_child(r):
    inner = _first_inner(r)
    inner["sub_tasks"] = inner["sub_tasks"][:1]


def _category_on_inner(r):
    _first_inner(r)["task_category"] = "Code Development"


def _too_few_leaves(r):
    for child in r["sub_tasks"]:
        if child["sub_tasks"]:
            child["sub_tasks"] = copy.deepcopy(_leaves(child)[:2])


def _too_shallow(r):
    r["sub_tasks"] = copy.deepcopy(_leaves(r))


def _zero_weights(r):
    for c in _first_inner(r)["sub_tasks"]:
        c["weight"] = 0


def _long_leaf(r):
    _leaves(r)[0]["requirements"] = "word " * 151


def _no_results(r):
    for leaf in _leaves(r):
        if leaf["task_category"] == "Result Analysis":
            leaf["task_category"] = "Code Execution"


@pytest.mark.parametrize("name", ["fre", "semantic-self-consistency", "lca-on-the-line"])
@pytest.mark.parametrize(("how", "gate", "words"), [
    (_single_child, "single-child", "has a single child"),
    (_category_on_inner, "schema", "an inner node must not have a task category"),
    (_too_few_leaves, "leaf-count", "leaves (allowed 60-2000)"),
    (_too_shallow, "depth", "levels deep (allowed 3-10"),
    (_zero_weights, "zero-weights", "have weight 0"),
    (_long_leaf, "leaf-length", "has 151 words (allowed 3-150)"),
    (_no_results, "result-leaves", "0 Result Analysis leaves"),
])  # fmt: skip
def test_broken_variants_fail_with_clear_reasons(name, how, gate, words):
    fails = _broken(name, how)
    hit = [f for f in fails if f.gate == gate]
    assert hit, f"{gate} not reported for {name}: {[str(f) for f in fails]}"
    assert words in hit[0].reason
    if gate in ("single-child", "zero-weights", "leaf-length"):
        assert hit[0].reason.startswith("node ") and '"' in hit[0].reason  # names the node: number, id, text


def test_unknown_vocabulary_and_thresholds_are_configurable():
    r = copy.deepcopy(_rubrics()["fre"])
    _leaves(r)[3]["finegrained_task_category"] = "Vibes"
    assert [f.gate for f in structural_gates(r, generated=False)] == ["vocabulary"]
    small = copy.deepcopy(_rubrics()["stochastic-interpolants"])  # 69 leaves
    assert [f.gate for f in structural_gates(small, GateConfig(min_leaves=100), generated=False)] == ["leaf-count"]


def test_grounding_gate():
    paper = "We train for 30 epochs with SGD.\nThe learning  rate follows a **cosine** schedule without restarts."
    assert is_grounded("the learning rate follows a cosine schedule", paper)
    assert is_grounded("The learning rate follows a cosine schedule with no restarts at all", paper) is False
    assert not is_grounded("We use Adam.", paper)
    rubric = {"id": "r", "requirements": "root", "weight": 1, "task_category": None, "finegrained_task_category": None,
              "sub_tasks": [{"id": f"l{i}", "requirements": "x", "weight": 1, "sub_tasks": [],
                             "task_category": "Code Development", "finegrained_task_category": "Method Implementation"}
                            for i in range(3)]}  # fmt: skip
    grounding = {"l0": {"quote": "We train for 30 epochs with SGD."}, "l1": {"quote": "Use a learning rate of 0.05."},
                 "l2": {"quote": "something invented entirely"}}  # fmt: skip
    report = grounding_report(rubric, grounding, paper, "- Use a learning rate of 0.05.")
    assert report["grounded"] == 2
    fails = grounding_gate(report)
    assert fails and "67% of leaves are grounded" in fails[0].reason and "nodes 3" in fails[0].reason


def test_soft_report_on_a_real_rubric():
    s = soft_report(_rubrics()["fre"], "See Table 1 and Figure 9.")
    assert s["leaves"] == 437 and 0.9 < s["weight_one_share"] <= 1.0
    assert abs(sum(s["category_mix"].values()) - 1) < 1e-9 and "Figure 9" in s["uncovered_locators"]
