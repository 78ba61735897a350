"""Agreement between two graded trees, leaf by leaf (e.g. a judge against human gradings).

Leaves are matched by path (node ids from the root), falling back to the id alone when the trees differ above the
leaves. A decision is positive when the leaf's score is >= 0.5. With A as the reference: agreement (accuracy),
precision, recall and F1 of B's positive decisions, overall and per task category.
"""

from __future__ import annotations

from typing import Any

from klong.rubric.graded import GradedNode


def _metrics(pairs: list[tuple[bool, bool]]) -> dict[str, float | int]:
    tp = sum(1 for a, b in pairs if a and b)
    fp = sum(1 for a, b in pairs if not a and b)
    fn = sum(1 for a, b in pairs if a and not b)
    tn = sum(1 for a, b in pairs if not a and not b)
    n = len(pairs)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"leaves": n, "agreement": (tp + tn) / n if n else 0.0, "precision": precision, "recall": recall, "f1": f1,
            "tp": tp, "fp": fp, "fn": fn, "tn": tn}  # fmt: skip


def compare_graded(a: GradedNode, b: GradedNode) -> dict[str, Any]:
    b_by_path = dict(b.leaves())
    b_by_id: dict[str, list[GradedNode]] = {}
    for _, leaf in b.leaves():
        b_by_id.setdefault(leaf.id, []).append(leaf)
    pairs: list[tuple[str, bool, bool]] = []
    unmatched = 0
    for path, leaf in a.leaves():
        other = b_by_path.get(path) or (b_by_id[leaf.id][0] if len(b_by_id.get(leaf.id, [])) == 1 else None)
        if other is None:
            unmatched += 1
            continue
        pairs.append((leaf.task_category or "none", leaf.score >= 0.5, other.score >= 0.5))
    out: dict[str, Any] = {"overall": _metrics([(x, y) for _, x, y in pairs]), "unmatched_leaves": unmatched}
    out["per_category"] = {
        c: _metrics([(x, y) for cat, x, y in pairs if cat == c]) for c in sorted({p[0] for p in pairs})
    }
    out["score_a"], out["score_b"] = a.score, b.score
    return out
