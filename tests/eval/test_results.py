"""The results table's arithmetic: per task mean and sample std over attempts, overall over attempt-wise means, an
ungraded run counted as a failed attempt (0) and listed, references only beside their own setting."""

from __future__ import annotations

import json

import pytest

from klong.eval.benchmark import Reference, TaskResult
from klong.eval.results import aggregate, write_results


def _r(task, attempt, score, status="graded", **metrics):
    return TaskResult(run_id=f"{task}__a{attempt}", task_id=task, attempt=attempt, score=score, status=status,
                      metrics=metrics, grader="g", official=True)  # fmt: skip


def test_spread_is_over_attempts_not_tasks():
    results = [_r("a", 0, 0.2, n=1), _r("a", 1, 0.4, n=3), _r("b", 0, 0.6), _r("b", 1, None, status="error: x")]
    agg = aggregate(results, ["a", "b", "c"], attempts=2)
    a, b, c = agg["per_task"]
    assert a["mean"] == pytest.approx(0.3) and a["std"] == pytest.approx(0.1414213, rel=1e-5)
    assert a["metrics"] == {"n": 2.0}
    assert b["mean"] == pytest.approx(0.3) and b["errors"] == ["error: x"]  # the ungraded attempt counts as 0
    assert c["graded"] == 0 and c["mean"] is None
    o = agg["overall"]
    assert o["attempt_means"] == pytest.approx([0.4, 0.2]) and o["mean"] == pytest.approx(0.3)
    assert o["std"] == pytest.approx(0.1414213, rel=1e-5) and o["expected_runs"] == 6 and o["ungraded_runs"] == 1


class _Bench:
    name, metric, setting = "toy", "score", "full"
    references = (Reference(label="paper, full", value=0.5, source="s", setting="full"),
                  Reference(label="paper, code-dev", value=0.7, source="s", setting="code-dev"))  # fmt: skip


def test_files_written(tmp_path):
    doc = write_results(tmp_path, _Bench(), [_r("a", 0, 1.0), _r("a", 1, 0.5)], tasks=["a"], attempts=2,
                        files={"preds": "preds.jsonl"}, extra={"model": "m"})  # fmt: skip
    assert [r["label"] for r in doc["references"]] == ["paper, full"]
    assert json.loads((tmp_path / "results.json").read_text())["overall"]["mean"] == 0.75
    md = (tmp_path / "results.md").read_text()
    assert "**score: 75.00 ± 35.36**" in md and "| a | 2 | 75.00 | 35.36 |" in md and "`preds.jsonl`" in md
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
