"""`results.json`, `results.md` and `results.png` of a benchmark run.

Per task: the mean of the primary metric over its graded attempts and their sample standard deviation (0 for one
attempt). Overall: for each attempt index, the mean over the tasks graded in that attempt; reported as the mean of
those attempt-wise means and their sample standard deviation, as PaperBench reports its runs (mean and spread over
seeds, not over papers). A run that could not be graded counts as 0 in the figures (it is a failed attempt) and is
listed; a run `not evaluated` (SWE-bench patches written, no harness run) is left out. Every other numeric or boolean metric the benchmark records is averaged per task; overall, only the boolean
ones (rates: valid submissions, medals, reproduced). Published reference
figures stand beside the results, never inside them.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from klong.eval.benchmark import NOT_EVALUATED, Benchmark, TaskResult
from klong.exceptions import StopReason
from klong.io import atomic_write_json, atomic_write_text

INFRASTRUCTURE = {r.value for r in StopReason if r.is_infrastructure}


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _value(r: TaskResult) -> float:
    return float(r.score) if r.score is not None else 0.0


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def aggregate(results: list[TaskResult], tasks: list[str], attempts: int) -> dict[str, Any]:
    not_evaluated = sum(1 for r in results if r.status == NOT_EVALUATED)
    results = [r for r in results if r.status != NOT_EVALUATED]
    by_task: dict[str, list[TaskResult]] = {t: [] for t in tasks}
    for r in results:
        by_task.setdefault(r.task_id, []).append(r)
    per_task = []
    for task_id, rs in by_task.items():
        rs = sorted(rs, key=lambda r: r.attempt)
        mean, std = mean_std([_value(r) for r in rs])
        metrics = {}
        for key in sorted({k for r in rs for k in r.metrics}):
            vals = [v for r in rs if (v := _numeric(r.metrics.get(key))) is not None]
            if vals:
                metrics[key] = mean_std(vals)[0]
        per_task.append({"task_id": task_id, "graded": len(rs), "mean": mean, "std": std,
                         "scores": [r.score for r in rs], "errors": [r.status for r in rs if r.status != "graded"],
                         "metrics": metrics})  # fmt: skip
    attempt_means = []
    for a in range(attempts):
        rs = [r for r in results if r.attempt == a]
        if rs:
            attempt_means.append(statistics.fmean(_value(r) for r in rs))
    mean, std = mean_std(attempt_means)
    overall_metrics = {}  # rates only: a raw figure (a competition's score, a leaf count) means nothing across tasks
    for key in sorted({k for r in results for k in r.metrics}):
        vals = [float(v) for r in results if isinstance(v := r.metrics.get(key), bool)]
        if vals:
            overall_metrics[key] = statistics.fmean(vals)
    return {"per_task": per_task,
            "overall": {"mean": mean, "std": std, "attempt_means": attempt_means, "graded_runs": len(results),
                        "expected_runs": len(tasks) * attempts,
                        "ungraded_runs": sum(1 for r in results if r.status != "graded"),
                        "not_evaluated_runs": not_evaluated, "metrics": overall_metrics}}  # fmt: skip


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def write_results(out_dir: Path, bench: Benchmark, results: list[TaskResult], *, tasks: list[str], attempts: int,
                  files: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    agg = aggregate(results, tasks, attempts)
    graders = sorted({r.grader for r in results if r.status == "graded"})
    official = bool(results) and all(r.official for r in results if r.status == "graded")
    refs = [r.model_dump() for r in bench.references if not r.setting or r.setting == bench.setting]
    doc = {"benchmark": bench.name, "setting": bench.setting, "metric": bench.metric, "attempts": attempts,
           "tasks": tasks, **extra, "graders": graders, "official": official, **agg, "references": refs,
           "files": files, "written_at": datetime.now(UTC).isoformat(),
           "runs": [{**r.model_dump(mode="json", exclude={"summary"}), "stop_reason": r.summary.get("stop_reason")}
                    for r in sorted(results, key=lambda r: r.run_id)]}  # fmt: skip
    atomic_write_json(out_dir / "results.json", doc, indent=2)
    atomic_write_text(out_dir / "results.md", render_markdown(doc))
    write_plot(out_dir / "results.png", doc)
    return doc


def render_markdown(doc: dict[str, Any]) -> str:
    o = doc["overall"]
    metric = doc["metric"]
    lines = [f"# {doc['benchmark']} ({doc['setting']})", ""]
    for key in ("model", "split", "sandbox"):
        if doc.get(key):
            lines.append(f"- {key}: `{doc[key]}`")
    grading = ", ".join(doc["graders"]) or "none"
    lines.append(f"- graded by: {grading}" + ("" if doc["official"] else " (**not only the official tooling**)"))
    lines.append(
        f"- runs graded: {o['graded_runs']} of {o['expected_runs']} ({doc['attempts']} attempt(s) per task)"
        + (f", {o['ungraded_runs']} could not be graded (counted as 0)" if o["ungraded_runs"] else "")
    )
    lines += ["", f"**{metric}: {_pct(o['mean'])} ± {_pct(o['std'])}** (percent; mean ± sample std over attempts)", ""]
    extra_keys = sorted({k for t in doc["per_task"] for k in t["metrics"]})
    head = ["task", "graded", f"{metric} mean", "std", *extra_keys]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in doc["per_task"]:
        cells = [t["task_id"], str(t["graded"]), _pct(t["mean"]), _pct(t["std"]),
                 *(f"{t['metrics'][k]:.4g}" if k in t["metrics"] else "-" for k in extra_keys)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    if doc["references"]:
        lines += ["", "Published reference figures (not measured here):", "", "| reference | value | source |",
                  "|---|---|---|"]  # fmt: skip
        lines += [f"| {r['label']} | {_pct(r['value'])} | {r['source']} |" for r in doc["references"]]
    if o["not_evaluated_runs"]:
        lines += ["", f"{o['not_evaluated_runs']} run(s) not evaluated: only the benchmark's outputs were written "
                  "(left out of the figures above)."]  # fmt: skip
    errors = [(r["run_id"], r["status"]) for r in doc["runs"] if r["status"] not in ("graded", NOT_EVALUATED)]
    if errors:
        lines += ["", "Runs that could not be graded:", ""] + [f"- `{rid}`: {st}" for rid, st in errors]
    infra = [(r["run_id"], r["stop_reason"]) for r in doc["runs"] if r.get("stop_reason") in INFRASTRUCTURE]
    if infra:
        lines += ["", "Runs stopped by an infrastructure failure (graded as they are; `--resume` runs them again):",
                  ""] + [f"- `{rid}`: {stop}" for rid, stop in infra]  # fmt: skip
    if doc["files"]:
        lines += ["", "Outputs in the benchmark's own format:", ""] + [f"- {k}: `{v}`" for k, v in doc["files"].items()]
    return "\n".join(lines) + "\n"


def write_plot(path: Path, doc: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["per_task"]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(rows) + 2.5), 3.6), dpi=120)
    names = [t["task_id"] for t in rows] + ["overall"]
    means = [100 * (t["mean"] or 0.0) for t in rows] + [100 * (doc["overall"]["mean"] or 0.0)]
    stds = [100 * (t["std"] or 0.0) for t in rows] + [100 * (doc["overall"]["std"] or 0.0)]
    colors = ["#4c72b0"] * len(rows) + ["#dd8452"]
    ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=colors)
    for i, ref in enumerate(doc["references"]):
        ax.axhline(100 * ref["value"], linestyle="--", linewidth=0.8, color=f"C{(i + 2) % 10}", label=ref["label"])
    if doc["references"]:
        ax.legend(fontsize=6, loc="upper right")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(f"{doc['metric']} (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{doc['benchmark']} ({doc['setting']}), {doc['attempts']} attempt(s)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
