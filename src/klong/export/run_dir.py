"""The runs of a klong run dir, as exporters see them: trajectory, attempt, submission folder and grade file.

A run dir (`klong run --out`) holds `trajectories/<run>.json`, `workspaces/<run>/submission/`, `summaries.jsonl` (the
attempt of each run) and, once graded, `grades/<run>.json`. Unfinished trajectories (no stop reason yet) are not runs
to export: they are listed apart so that the caller can say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from klong.exceptions import InputFileError
from klong.io import iter_jsonl
from klong.schema import Trajectory, read_trajectory


@dataclass
class FinishedRun:
    run_id: str
    """klong's run id (`<task>__a<k>`), the trajectory's id."""
    trajectory: Trajectory
    trajectory_path: Path
    attempt: int
    submission: Path | None
    """The run's submission folder, None when the run left none."""
    grade: Path | None
    """`grades/<run>.json` when the run was graded."""


def _attempts(run_dir: Path) -> dict[str, int]:
    path = run_dir / "summaries.jsonl"
    if not path.exists():
        return {}
    out = {}
    for _, obj in iter_jsonl(path):
        if isinstance(obj, dict) and isinstance(obj.get("run_id"), str) and isinstance(obj.get("attempt"), int):
            out[obj["run_id"]] = obj["attempt"]
    return out


def read_run_dir(run_dir: str | Path) -> tuple[list[FinishedRun], list[Path]]:
    """(finished runs in run-id order, unfinished trajectory files). Errors name the file."""
    run_dir = Path(run_dir)
    traj_dir = run_dir / "trajectories"
    if not run_dir.is_dir():
        raise InputFileError(run_dir, "no such run dir")
    if not traj_dir.is_dir():
        raise InputFileError(run_dir, "not a klong run dir: no trajectories/ folder (made by `klong run --out`)")
    attempts = _attempts(run_dir)
    runs: list[FinishedRun] = []
    unfinished: list[Path] = []
    for path in sorted(traj_dir.glob("*.json")):
        traj = read_trajectory(path)
        if not traj.finished:
            unfinished.append(path)
            continue
        if not traj.task_id:
            raise InputFileError(path, "trajectory has no task_id: cannot tell which paper it attempted")
        run_id = traj.id
        attempt = attempts.get(run_id)
        if attempt is None:
            m = re.search(r"__a(\d+)$", run_id)
            attempt = int(m.group(1)) if m else 0
        submission = run_dir / "workspaces" / run_id / "submission"
        grade = run_dir / "grades" / f"{run_id}.json"
        runs.append(FinishedRun(run_id, traj, path, attempt, submission if submission.is_dir() else None,
                                grade if grade.is_file() else None))  # fmt: skip
    if not runs and not unfinished:
        raise InputFileError(traj_dir, "holds no trajectory files (*.json)")
    return runs, unfinished
