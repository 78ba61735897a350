"""Rubric loading, validation, statistics, transforms and aggregation, against numbers computed from the JSON."""

import json
from collections import Counter

import pytest

from klong.rubric.graded import GradedNode, aggregate, read_graded
from klong.rubric.transforms import code_only, prune_to_depth, resources_provided
from klong.rubric.tree import RubricError, load_rubric, parse_rubric, rubric_stats
from tests.shared import shared_path

PAPERS = (
    sorted(p.name for p in shared_path("paperbench", "papers").iterdir()) if shared_path("paperbench").exists() else []
)


def independent_stats(raw: dict) -> dict:
    """Walk the raw JSON by hand (no klong code)."""
    nodes, leaves, depth = 0, [], 0
    stack = [(raw, 1)]
    while stack:
        node, d = stack.pop()
        nodes += 1
        depth = max(depth, d)
        if node["sub_tasks"]:
            stack += [(c, d + 1) for c in node["sub_tasks"]]
        else:
            leaves.append(node)
    return {"nodes": nodes, "leaves": len(leaves), "max_depth": depth,
            "cats": Counter(n["task_category"] for n in leaves),
            "fine": Counter(n.get("finegrained_task_category") for n in leaves)}  # fmt: skip


@pytest.mark.parametrize("paper", PAPERS)
def test_every_paperbench_rubric_loads_with_correct_statistics(paper):
    path = shared_path("paperbench", "papers", paper, "rubric.json")
    raw = json.loads(path.read_text())
    stats = rubric_stats(load_rubric(path))
    exp = independent_stats(raw)
    assert (stats["nodes"], stats["leaves"], stats["max_depth"]) == (exp["nodes"], exp["leaves"], exp["max_depth"])
    assert stats["leaves_per_task_category"] == dict(exp["cats"])
    assert stats["leaves_per_finegrained_category"] == dict(exp["fine"])


def test_paperbench_totals():
    papers = shared_path("paperbench", "papers")
    leaves = sum(rubric_stats(load_rubric(p / "rubric.json"))["leaves"] for p in papers.iterdir())
    expected = sum(independent_stats(json.loads((p / "rubric.json").read_text()))["leaves"] for p in papers.iterdir())
    assert len(list(papers.iterdir())) == 15 and leaves == expected == 3308  # 15 of PaperBench's 20 main rubrics
    dupes = {p.name: rubric_stats(load_rubric(p / "rubric.json"))["duplicate_ids"] for p in papers.iterdir()}
    assert [k for k, v in dupes.items() if v] == ["bridging-data-gaps"]


def test_fixture_rubrics_load_leniently():
    for f in sorted(shared_path("paperbench", "fixtures", "rubrics").glob("*.json")):
        load_rubric(f, strict=False)
        if "finegrained_task_category" not in f.read_text():
            with pytest.raises(RubricError, match="missing key"):
                load_rubric(f, strict=True)


def _leaf(i, cat="Code Development", w=1, fine="Method Implementation"):
    return {"id": f"l{i}", "requirements": f"leaf {i}", "weight": w, "sub_tasks": [], "task_category": cat,
            "finegrained_task_category": fine}  # fmt: skip


def _inner(i, kids, w=1):
    return {"id": f"n{i}", "requirements": f"node {i}", "weight": w, "sub_tasks": kids, "task_category": None,
            "finegrained_task_category": None}  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["sub_tasks"][1].update(weight=-1), r"root > sub_tasks\[1\] \(n2\): `weight` must be >= 0"),
        (lambda r: r.update(task_category="Code Development"), r"root: an inner node must not have a task category"),
        (lambda r: r["sub_tasks"][0].pop("requirements"), r"sub_tasks\[0\] \(l1\): missing key\(s\) requirements"),
        (lambda r: r["sub_tasks"][1]["sub_tasks"][0].update(task_category="Coding"), r"sub_tasks\[1\] \(n2\) > sub_tasks\[0\] \(l2\): a leaf needs `task_category`"),
        (lambda r: r["sub_tasks"][0].update(colour="red"), r"unknown key\(s\) colour"),
        (lambda r: r["sub_tasks"][0].update(weight="3"), r"`weight` must be a number"),
        (lambda r: r.update(sub_tasks="none"), r"root: `sub_tasks` must be a list"),
    ],
)  # fmt: skip
def test_malformed_rubrics_name_the_node(mutate, message):
    raw = _inner(0, [_leaf(1), _inner(2, [_leaf(2), _leaf(3)])])
    raw["id"] = "root-id"
    mutate(raw)
    with pytest.raises(RubricError, match=message):
        parse_rubric(raw, "bad.json")


def test_broken_file(tmp_path):
    f = tmp_path / "rubric.json"
    f.write_text('{"id": "x", "requirements": "r", "weight": 1, "sub_tasks": [')
    with pytest.raises(RubricError, match=r"rubric.json: .*truncated"):
        load_rubric(f)


def test_transforms_on_a_real_rubric():
    path = shared_path("paperbench", "papers", "fre", "rubric.json")
    raw = json.loads(path.read_text())
    root = load_rubric(path)
    cats = independent_stats(raw)["cats"]
    fine = independent_stats(raw)["fine"]
    assert len(code_only(root).leaves()) == cats["Code Development"]
    assert {n.task_category for _, n in code_only(root).leaves()} == {"Code Development"}
    assert len(resources_provided(root).leaves()) == len(root.leaves()) - fine["Dataset and Model Acquisition"]
    pruned = prune_to_depth(root, 3)
    assert rubric_stats(pruned)["max_depth"] == 3
    assert all(n.task_category in ("Code Development", "Code Execution", "Result Analysis") for _, n in pruned.leaves())


def test_prune_takes_the_majority_category():
    raw = _inner(0, [_inner(1, [_leaf(1, "Code Execution"), _leaf(2, "Code Execution"), _leaf(3)]), _leaf(4)])
    pruned = prune_to_depth(parse_rubric(raw), 2)
    assert [(n.id, n.task_category) for _, n in pruned.leaves()] == [
        ("n1", "Code Execution"),
        ("l4", "Code Development"),
    ]


def test_aggregation_matches_hand_computation():
    def g(id_, w, score=None, kids=()):
        return GradedNode(id=id_, requirements=id_, weight=w, score=score or 0.0, sub_tasks=list(kids))

    # root = (3 * A + 1 * B) / 4; A = (2 * 1 + 1 * 0 + 0 * 1) / 3 = 2/3; B: all weights zero -> 0
    tree = g("root", 1, kids=[g("A", 3, kids=[g("a1", 2, 1), g("a2", 1, 0), g("a3", 0, 1)]),
                              g("B", 1, kids=[g("b1", 0, 1), g("b2", 0, 1)])])  # fmt: skip
    aggregate(tree)
    assert tree.sub_tasks[0].score == pytest.approx(2 / 3)
    assert tree.sub_tasks[1].score == 0.0
    assert tree.score == pytest.approx((3 * 2 / 3 + 0) / 4)
    zero = g("z", 1, kids=[g("z1", 0, 1)])
    assert aggregate(zero).score == 0.0


@pytest.mark.parametrize(
    "paper", ["all-in-one", "semantic-self-consistency", "stay-on-topic-with-classifier-free-guidance"]
)
def test_rescoring_human_gradings_reproduces_their_scores(paper):
    path = shared_path("paperbench", "judge_eval", paper, "expected_result.json")
    recorded = json.loads(path.read_text())["score"]
    tree, _ = read_graded(path)
    assert aggregate(tree).score == pytest.approx(recorded, abs=1e-9)
