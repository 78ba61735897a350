"""Rejection sampling of teacher trajectories on their grades (the distillation step of the Research-Factory).

A trajectory is kept when, in this order:
1. it finished by `end_task` or the time limit, not by an infrastructure failure (endpoint or sandbox down, harness
   error, interruption) nor by another limit;
2. the monitor is clean: no blacklisted resource fetched, by the runtime's rule (`git clone`/`curl`/`wget` near the
   resource) nor by the forms it misses (`git@github.com:owner/repo`, raw.githubusercontent / codeload URLs,
   `pip install git+...`);
3. it has a grade whose every leaf was validly graded (otherwise it is listed for re-grading, never counted as 0) and
   that was not disqualified;
4. its score reaches the absolute `floor` and, when set, the `threshold`;
5. with `best_of_k`, it is among the k best of its task's remaining attempts (ties: the lower run id).

Every run gets a `Decision` with its reason.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from klong.agent.monitor import _strings, blacklist_violations
from klong.exceptions import ConfigError, InputFileError, StopReason
from klong.factory.leak import repo_paths
from klong.io import atomic_write_text, read_json
from klong.schema import Trajectory, read_trajectory
from klong.task import parse_blacklist

INFRASTRUCTURE = {r for r in StopReason if r.is_infrastructure}
GOOD_ENDS = {StopReason.END_TASK, StopReason.TIMEOUT}


class SelectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float | None = None
    """Keep runs scoring at least this (PaperBench score in [0, 1])."""
    best_of_k: int | None = Field(default=None, ge=1)
    """Keep at most the k best runs of each task (after the floor and threshold)."""
    floor: float = 0.0
    """Absolute minimum score, whatever the rank."""


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: str
    task_id: str | None
    run_dir: str
    trajectory: str
    grade: str | None = None
    score: float | None = None
    decision: Literal["selected", "rejected", "regrade"]
    reason: str
    kind: str
    """Short reason class for the summary: selected, infrastructure, stop, monitor, ungraded, invalid-grade,
    disqualified, floor, threshold, best-of-k, unfinished."""


def _fetch_forms(owner_repo: str) -> re.Pattern[str]:
    o = re.escape(owner_repo)
    return re.compile(rf"git@github\.com:{o}(?:\.git)?\b|raw\.githubusercontent\.com/{o}/|codeload\.github\.com/{o}\b|"
                      rf"git\+(?:https?|ssh|git)://(?:git@)?github\.com[/:]{o}(?:\.git)?\b", re.IGNORECASE)  # fmt: skip


def monitor_hits(traj: Trajectory, blacklist: Sequence[str]) -> list[str]:
    """Blacklist violations: those the runtime recorded, its rule re-applied, and the fetch forms it misses."""
    hits = [f"{v['resource']} ({v['line']})" for v in traj.meta.get("monitor", {}).get("blacklist_violations", [])]
    hits += [f"{v['resource']} ({v['line']})" for v in blacklist_violations(traj, list(blacklist))]
    patterns = [(p, _fetch_forms(p)) for p in repo_paths(blacklist)]
    for message in traj.messages:
        for call in message.tool_calls or []:
            args = call.function.parsed_arguments()
            for text in _strings(args) if args is not None else [call.function.arguments]:
                for path, pat in patterns:
                    if m := pat.search(text):
                        hits.append(f"{path} ({m.group(0)})")
    return sorted(set(hits))


def _blacklist(run_dir: Path, run_id: str, task_id: str | None, task_blacklists: dict[str, list[str]]) -> list[str]:
    if task_id and task_id in task_blacklists:
        return task_blacklists[task_id]
    path = run_dir / "workspaces" / run_id / "paper" / "blacklist.txt"
    return parse_blacklist(path.read_text(encoding="utf-8")) if path.is_file() else []


def _grade_path(grades: Path, run_id: str) -> Path | None:
    for p in (grades / f"{run_id}.json", grades / run_id / "grade.json", grades / f"{run_id}.grade.json"):
        if p.is_file():
            return p
    return None


def _judge(traj: Trajectory, run_dir: Path, path: Path, grades: Path, blacklist: list[str]) -> dict[str, Any]:
    """The per-run checks 1-3 (everything but the score rules)."""
    base: dict[str, Any] = {
        "run_id": traj.id,
        "task_id": traj.task_id,
        "run_dir": str(run_dir),
        "trajectory": str(path),
    }
    stop = traj.stop_reason
    if stop is None:
        return {
            **base,
            "decision": "rejected",
            "kind": "unfinished",
            "reason": "the run has not finished (no stop reason)",
        }
    detail = f" ({traj.stop_detail})" if traj.stop_detail else ""
    if stop in INFRASTRUCTURE:
        return {**base, "decision": "rejected", "kind": "infrastructure",
                "reason": f"infrastructure failure: the run ended with {stop.value}{detail}"}  # fmt: skip
    if stop not in GOOD_ENDS:
        return {**base, "decision": "rejected", "kind": "stop",
                "reason": f"the run ended by {stop.value}{detail}, not by end_task or timeout"}  # fmt: skip
    hits = monitor_hits(traj, blacklist)
    if hits:
        return {**base, "decision": "rejected", "kind": "monitor",
                "reason": f"monitor: blacklisted resource fetched: {'; '.join(hits[:3])}"}  # fmt: skip
    grade_path = _grade_path(grades, traj.id)
    if grade_path is None:
        return {**base, "decision": "regrade", "kind": "ungraded", "reason": f"no grade in {grades} yet: grade it"}
    grade = read_json(grade_path)
    if not isinstance(grade, dict) or not isinstance(grade.get("score"), int | float):
        raise InputFileError(grade_path, "not a klong/PaperBench grade (no numeric `score`)")
    base.update(grade=str(grade_path), score=float(grade["score"]))
    invalid = int(grade.get("num_invalid_leaf_nodes") or 0)
    if invalid:
        return {**base, "decision": "regrade", "kind": "invalid-grade",
                "reason": f"{invalid} of {grade.get('num_leaf_nodes', '?')} leaves were not validly graded: re-grade "
                          f"them (an ungraded leaf is never counted as 0)"}  # fmt: skip
    disq = (grade.get("klong") or {}).get("disqualified")
    if disq:
        return {**base, "decision": "rejected", "kind": "disqualified", "reason": f"disqualified by the judge: {disq}"}
    return {**base, "decision": "selected", "kind": "selected", "reason": ""}


def runs_in(run_dir: Path) -> list[Path]:
    folder = run_dir / "trajectories"
    if not folder.is_dir():
        raise InputFileError(run_dir, "not a run dir (no trajectories/ folder)")
    return sorted(folder.glob("*.json"))


def select_runs(run_dirs: Sequence[str | Path], config: SelectConfig, *, grades: str | Path | None = None,
                task_blacklists: dict[str, list[str]] | None = None) -> list[Decision]:  # fmt: skip
    """A decision for every trajectory of the run dirs (grades from `grades`, default `RUN_DIR/grades`)."""
    if config.threshold is None and config.best_of_k is None:
        raise ConfigError("selection needs a rule: give a threshold, a best-of-k, or both")
    rows = []
    for rd in map(Path, run_dirs):
        gdir = Path(grades) if grades is not None else rd / "grades"
        for path in runs_in(rd):
            traj = read_trajectory(path)
            rows.append(_judge(traj, rd, path, gdir, _blacklist(rd, traj.id, traj.task_id, task_blacklists or {})))
    candidates = [r for r in rows if r["decision"] == "selected"]
    for r in candidates:
        if r["score"] < config.floor:
            r.update(
                decision="rejected", kind="floor", reason=f"score {r['score']:.4f} is below the floor {config.floor}"
            )
        elif config.threshold is not None and r["score"] < config.threshold:
            r.update(decision="rejected", kind="threshold",
                     reason=f"score {r['score']:.4f} is below the threshold {config.threshold}")  # fmt: skip
    by_task: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for r in candidates:
        if r["decision"] == "selected":
            by_task[r["task_id"]].append(r)
    for task, runs in by_task.items():
        runs.sort(key=lambda r: (-r["score"], r["run_id"]))
        for rank, r in enumerate(runs, 1):
            if config.best_of_k is not None and rank > config.best_of_k:
                r.update(decision="rejected", kind="best-of-k",
                         reason=f"rank {rank} of {len(runs)} eligible runs of task {task} (best-of-{config.best_of_k})")  # fmt: skip
            else:
                rule = f"threshold {config.threshold}" if config.threshold is not None else f"floor {config.floor}"
                best = (
                    f", rank {rank} of {len(runs)} of task {task} (best-of-{config.best_of_k})"
                    if config.best_of_k
                    else ""
                )
                r["reason"] = f"score {r['score']:.4f} reaches the {rule}{best}"
    return [Decision(**r) for r in rows]


def write_selection(decisions: Sequence[Decision], out: str | Path) -> dict[str, Any]:
    """Copy the selected trajectories to `out/trajectories/` (ready for `klong split OUT`), write `selection.jsonl`,
    `selection.md` and `regrade.txt`; returns the summary."""
    out = Path(out)
    traj_dir = out / "trajectories"
    traj_dir.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for d in decisions:
        if d.decision != "selected":
            continue
        name = f"{d.run_id}.json" if f"{d.run_id}.json" not in names else f"{Path(d.run_dir).name}__{d.run_id}.json"
        names.add(name)
        shutil.copyfile(d.trajectory, traj_dir / name)
    atomic_write_text(out / "selection.jsonl", "".join(d.model_dump_json() + "\n" for d in decisions))
    atomic_write_text(out / "regrade.txt", "".join(f"{d.run_id}\t{d.trajectory}\t{d.reason}\n"
                                                   for d in decisions if d.decision == "regrade"))  # fmt: skip
    summary = {"runs": len(decisions), **Counter(d.decision for d in decisions), "reasons": dict(Counter(d.kind for d in decisions)),
               "tasks": len({d.task_id for d in decisions}),
               "tasks_with_selection": len({d.task_id for d in decisions if d.decision == "selected"})}  # fmt: skip
    atomic_write_text(out / "selection.md", selection_markdown(decisions, summary))
    return summary


def selection_markdown(decisions: Sequence[Decision], summary: dict[str, Any]) -> str:
    lines = ["# Selection report", "", f"{summary['runs']} runs of {summary['tasks']} tasks: "
             f"{summary.get('selected', 0)} selected, {summary.get('rejected', 0)} rejected, "
             f"{summary.get('regrade', 0)} to re-grade.", "", "| reason | runs |", "|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v} |" for k, v in sorted(summary["reasons"].items())]
    lines += ["", "| task | runs | selected | best score |", "|---|---|---|---|"]
    per_task: dict[str | None, list[Decision]] = defaultdict(list)
    for d in decisions:
        per_task[d.task_id].append(d)
    for task, ds in sorted(per_task.items(), key=lambda kv: str(kv[0])):
        scores = [d.score for d in ds if d.score is not None]
        best = f"{max(scores):.4f}" if scores else "-"
        lines.append(f"| {task} | {len(ds)} | {sum(d.decision == 'selected' for d in ds)} | {best} |")
    lines += ["", "| run | decision | score | reason |", "|---|---|---|---|"]
    lines += [f"| {d.run_id} | {d.decision} | {'-' if d.score is None else f'{d.score:.4f}'} | {d.reason.replace('|', '/')} |"
              for d in decisions]  # fmt: skip
    return "\n".join(lines) + "\n"


def task_blacklists(task_dirs: Sequence[str | Path]) -> dict[str, list[str]]:
    from klong.task import find_tasks

    return {t.id: t.blacklist for t in find_tasks(list(map(Path, task_dirs)))}


__all__ = ["Decision", "SelectConfig", "monitor_hits", "select_runs", "task_blacklists", "write_selection"]
