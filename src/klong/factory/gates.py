"""Quality gates for rubrics, calibrated on PaperBench's own rubrics (all 15 in the shared data pass the hard ones).

Hard gates (a failure drops the task): valid PaperBench schema (categories exactly on leaves, known vocabularies,
weights >= 0, no all-zero sibling group, unique ids for generated rubrics), no single-child inner node, leaf count,
depth and root-children ranges, leaf length in words, enough Result Analysis and Code Development leaves, and (for
drafted rubrics, whose leaves carry a grounding in the sidecar) the share of leaves grounded in a paper quote or an
addendum line. The leak and contrast gates live in `leak.py` and `contrast.py`.

Soft measures (`soft_report`, shown in the dataset card): category mix against PaperBench's, weight-1 share, vague
wording, duplicate leaves, result leaves with a locator (table, figure, section), tables and figures left uncovered.

Every failure names its gate and the node (`node 2.1.3 (6f646981) "The AntMaze dataset ..."`).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from typing import Any

from pydantic import BaseModel, ConfigDict

from klong.factory.draft.schemas import FINE_CATEGORIES
from klong.rubric.tree import RubricError, parse_rubric

PAPERBENCH_MIX = {"Code Development": 0.44, "Code Execution": 0.49, "Result Analysis": 0.07}
"""Leaf share per task category over PaperBench's 20 human rubrics (8,316 leaves)."""
PAPERBENCH_WEIGHT_ONE = 0.92
VAGUE = re.compile(r"\b(appropriate(ly)?|properly|correctly|reasonabl[ey]|suitabl[ey]|etc\.?|as needed|"
                   r"if necessary|relevant|various|some|somehow|good|well)\b", re.IGNORECASE)  # fmt: skip
LOCATOR = re.compile(
    r"\b(Table|Tab\.|Figure|Fig\.|Section|Sec\.|Eq\.|Equation|Algorithm)\s*\(?[0-9IVX]+", re.IGNORECASE
)
PAPER_LOCATOR = re.compile(r"\b(Table|Figure|Fig\.)\s*([0-9]+)\b")
END_OF_MAIN = re.compile(r"^#+\s*(\d+\.?\s*)?(References|Bibliography|Appendix|Appendices|Supplementary)\b",
                         re.IGNORECASE | re.MULTILINE)  # fmt: skip


class GateConfig(BaseModel):
    """Thresholds of the hard gates (defaults from FACTORY.md; PaperBench's rubrics all pass them)."""

    model_config = ConfigDict(extra="forbid")

    min_leaves: int = 60
    max_leaves: int = 2000
    min_depth: int = 3
    """Depth counts the root as 1: root -> child -> leaf is depth 3."""
    max_depth: int = 10
    min_root_children: int = 2
    max_root_children: int = 15
    min_leaf_words: int = 3
    max_leaf_words: int = 150
    min_result_leaves: int = 1
    min_code_dev_leaves: int = 10
    min_grounded_share: float = 0.9
    """Drafted rubrics: share of leaves whose quote is found in the paper or the addendum."""


class GateFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gate: str
    reason: str
    """A complete sentence naming the node when there is one."""

    def __str__(self) -> str:
        return f"{self.gate}: {self.reason}"


def _label(number: str, node: dict[str, Any]) -> str:
    text = str(node.get("requirements", ""))
    text = text if len(text) <= 60 else text[:57] + "..."
    return f'node {number or "root"} ({str(node.get("id", ""))[:8]}) "{text}"'


def _walk(node: dict[str, Any], number: str = "", depth: int = 1):
    yield number, node, depth
    for i, c in enumerate(node.get("sub_tasks") or [], 1):
        yield from _walk(c, f"{number}.{i}" if number else str(i), depth + 1)


def structural_gates(rubric: dict[str, Any], config: GateConfig | None = None, *, generated: bool = True) -> list[GateFailure]:  # fmt: skip
    """The structural hard gates; `generated=False` (PaperBench's human rubrics) skips id uniqueness."""
    c = config or GateConfig()
    try:
        parse_rubric(rubric, "rubric.json", strict=True)
    except RubricError as e:
        return [GateFailure(gate="schema", reason=str(e))]
    fails: list[GateFailure] = []

    def fail(gate: str, reason: str) -> None:
        fails.append(GateFailure(gate=gate, reason=reason))

    nodes = list(_walk(rubric))
    leaves = [(n, node) for n, node, _ in nodes if not node["sub_tasks"]]
    for number, node, _ in nodes:
        subs = node["sub_tasks"]
        if len(subs) == 1:
            fail("single-child", f"{_label(number, node)} has a single child; collapse it into its parent")
        if subs and all(s["weight"] == 0 for s in subs):
            fail("zero-weights", f"{_label(number, node)}: all {len(subs)} children have weight 0")
        if not subs:
            fine = node.get("finegrained_task_category")
            if fine not in FINE_CATEGORIES:
                fail("vocabulary", f"{_label(number, node)}: unknown finegrained_task_category {fine!r}")
            words = len(node["requirements"].split())
            if not c.min_leaf_words <= words <= c.max_leaf_words:
                fail("leaf-length", f"{_label(number, node)} has {words} words "
                                    f"(allowed {c.min_leaf_words}-{c.max_leaf_words})")  # fmt: skip
    if generated:
        ids = Counter(node["id"] for _, node, _ in nodes)
        dupes = sorted(i for i, k in ids.items() if k > 1)
        if dupes:
            fail("unique-ids", f"{len(dupes)} node id(s) appear more than once, e.g. {dupes[0]}")
    if not c.min_leaves <= len(leaves) <= c.max_leaves:
        fail("leaf-count", f"the rubric has {len(leaves)} leaves (allowed {c.min_leaves}-{c.max_leaves})")
    depth = max(d for _, _, d in nodes)
    if not c.min_depth <= depth <= c.max_depth:
        fail("depth", f"the rubric is {depth} levels deep (allowed {c.min_depth}-{c.max_depth}, root = 1)")
    roots = len(rubric["sub_tasks"])
    if not c.min_root_children <= roots <= c.max_root_children:
        fail("root-children", f"the root has {roots} children (allowed {c.min_root_children}-{c.max_root_children})")
    cats = Counter(node["task_category"] for _, node in leaves)
    if cats["Result Analysis"] < c.min_result_leaves:
        fail(
            "result-leaves", f"{cats['Result Analysis']} Result Analysis leaves (at least {c.min_result_leaves} needed)"
        )
    if cats["Code Development"] < c.min_code_dev_leaves:
        fail(
            "code-dev-leaves",
            f"{cats['Code Development']} Code Development leaves (at least {c.min_code_dev_leaves} needed)",
        )
    return fails


def _norm(text: str) -> str:
    text = re.sub(r"[*_`#>|\\]", " ", text.lower())
    text = re.sub(r"[^\w%.\-+=/]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def is_grounded(quote: str, *texts: str, shingle: int = 4, share: float = 0.8) -> bool:
    """True when the quote is found in one of the texts: verbatim after normalisation (case, spacing, markdown), or,
    for quotes of 8+ words, when `share` of its 4-word shingles occur in one text (models re-flow line breaks and
    drop a word here and there)."""
    q = _norm(quote)
    if len(q) < 8:
        return False
    normed = [_norm(t) for t in texts if t]
    if any(q in t for t in normed):
        return True
    words = q.split()
    if len(words) < 8:
        return False
    grams = [" ".join(words[i : i + shingle]) for i in range(len(words) - shingle + 1)]
    return any(sum(g in t for g in grams) >= share * len(grams) for t in normed)


def grounding_report(rubric: dict[str, Any], grounding: dict[str, dict[str, str]], paper: str, addendum: str) -> dict[str, Any]:  # fmt: skip
    """Per leaf: grounded or not (a leaf without a recorded grounding is not)."""
    per_leaf = {}
    for number, node, _ in _walk(rubric):
        if node["sub_tasks"]:
            continue
        g = grounding.get(node["id"])
        per_leaf[node["id"]] = {
            "number": number,
            "grounded": bool(g) and is_grounded(g.get("quote", ""), paper, addendum),
        }
    n = len(per_leaf)
    return {"leaves": n, "grounded": sum(v["grounded"] for v in per_leaf.values()),
            "share": sum(v["grounded"] for v in per_leaf.values()) / n if n else 0.0, "per_leaf": per_leaf}  # fmt: skip


def grounding_gate(report: dict[str, Any], config: GateConfig | None = None) -> list[GateFailure]:
    c = config or GateConfig()
    if report["share"] >= c.min_grounded_share:
        return []
    missing = [v["number"] for v in report["per_leaf"].values() if not v["grounded"]]
    return [GateFailure(gate="grounding", reason=f"{report['share']:.0%} of leaves are grounded in a paper quote or an "
                                                 f"addendum line (at least {c.min_grounded_share:.0%} needed); "
                                                 f"ungrounded: nodes {', '.join(missing[:10])}"
                                                 + (" ..." if len(missing) > 10 else ""))]  # fmt: skip


def main_text(paper: str) -> str:
    """The paper up to its references or appendix heading."""
    m = END_OF_MAIN.search(paper)
    return paper[: m.start()] if m else paper


def _locator(m: re.Match[str]) -> str:
    return f"{'Table' if m.group(1).lower().startswith('tab') else 'Figure'} {m.group(2)}"


def soft_report(rubric: dict[str, Any], paper: str = "") -> dict[str, Any]:
    """Soft quality measures of one rubric (reported, never blocking)."""
    nodes = list(_walk(rubric))
    leaves = [node for _, node, _ in nodes if not node["sub_tasks"]]
    n = len(leaves) or 1
    cats = Counter(node["task_category"] for node in leaves)
    mix = {k: cats.get(k, 0) / n for k in PAPERBENCH_MIX}
    texts = [node["requirements"] for node in leaves]
    normed = Counter(_norm(t) for t in texts)
    results = [node["requirements"] for node in leaves if node["task_category"] == "Result Analysis"]
    cited = {_locator(m) for t in texts for m in PAPER_LOCATOR.finditer(t)}
    in_paper = {_locator(m) for m in PAPER_LOCATOR.finditer(main_text(paper))}
    words = [len(t.split()) for t in texts]
    return {
        "leaves": len(leaves),
        "max_depth": max(d for _, _, d in nodes),
        "root_children": len(rubric.get("sub_tasks") or []),
        "leaf_words_median": statistics.median(words) if words else 0,
        "category_mix": mix,
        "category_mix_distance": 0.5 * sum(abs(mix[k] - PAPERBENCH_MIX[k]) for k in PAPERBENCH_MIX),
        "weight_one_share": sum(1 for _, node, _ in nodes if node["weight"] == 1) / len(nodes),
        "vague_rate": sum(1 for t in texts if VAGUE.search(t)) / n,
        "duplicate_leaves": sum(k - 1 for k in normed.values() if k > 1),
        "result_locator_share": sum(1 for t in results if LOCATOR.search(t)) / len(results) if results else 0.0,
        "uncovered_locators": sorted(in_paper - cited),
    }
