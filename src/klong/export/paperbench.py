"""A klong run dir -> PaperBench's two layouts, so PaperBench's own code grades or reads klong's runs.

`OUT/submissions/` is the folder its `PBDirectSubmissionSolver` grades (`paperbench.solver.submissions_dir=`): one
folder per paper id, holding one folder per submission (`submission/` for attempt 0, `submission_a<k>/` for attempt
k), each a copy of the run's submission.

`OUT/runs/` is a PaperBench runs dir holding one run group, `<timestamp>_run-group_klong/`, with a run per klong run,
`<paper_id>_<uuid>/` (the uuid derived from the group and klong's run id, so a re-export names it the same):

    metadata.json  status.json  agent.log  grade.json (when the run was graded)
    submissions/<timestamp>/submission.tar.gz  submissions/<timestamp>/log.json

The archive holds the submission under `submission/`, as PaperBench's solvers upload it; the timestamp (the end of the
run) has its `%Y-%m-%dT%H-%M-%S-%Z` form. Resuming that group in PaperBench (`paperbench.resume_run_group_id=...`)
skips the rollouts and grades the archives; `grade.json` is klong's grade in PaperBench's record (see
`paperbench_records`). `OUT/klong-export.json` maps each klong run to its PaperBench paths.

The output folder is built beside OUT and moved into place at the end; an existing OUT is replaced only when an
earlier export made it and it holds nothing else (PaperBench writes its results into the run group it grades: those
are never deleted).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

from klong.exceptions import ConfigError, InputFileError
from klong.export.agent_log import agent_log_lines
from klong.export.paperbench_records import agent_output, paperbench_grade, status, submission_log
from klong.export.run_dir import FinishedRun, read_run_dir
from klong.io import atomic_write_json, atomic_write_text, read_json

MANIFEST = "klong-export.json"
SHORTNAME = "klong"
"""The solver name in the run-group id. PaperBench's metrics take the agent id after the group id's last `_`."""


def timestamp(seconds: float) -> str:
    """PaperBench's timestamp form (`2025-03-28T10-34-35-GMT`), in UTC."""
    return time.strftime("%Y-%m-%dT%H-%M-%S-GMT", time.gmtime(seconds))


def submission_folder(attempt: int) -> str:
    return "submission" if attempt == 0 else f"submission_a{attempt}"


def paperbench_run_id(paper_id: str, run_group_id: str, klong_run_id: str) -> str:
    """`<paper_id>_<uuid>` as PaperBench names runs; the uuid is derived, so a re-export gives the same id."""
    return f"{paper_id}_{uuid.uuid5(uuid.NAMESPACE_URL, f'klong:{run_group_id}:{klong_run_id}')}"


def _tar_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_submission_tar(submission: Path, target: Path) -> None:
    """`submission.tar.gz` with the folder under `submission/`; same input, same bytes (owner and gzip time fixed)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(target, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.add(submission, arcname="submission", filter=_tar_member)


def _group_id(runs: list[FinishedRun], run_dir: Path) -> str:
    started = min(r.trajectory.created_at.timestamp() for r in runs)
    meta = run_dir / "meta.json"
    if meta.is_file():
        try:
            from klong.schema import read_run_meta

            started = read_run_meta(meta).started_at.timestamp()
        except InputFileError:
            pass  # an unreadable meta.json: the trajectories' start is as good a name
    return f"{timestamp(started)}_run-group_{SHORTNAME}"


def _export_run(run: FinishedRun, *, paper_id: str, group_dir: Path, run_group_id: str, subs_dir: Path) -> dict:
    traj = run.trajectory
    pb_run_id = paperbench_run_id(paper_id, run_group_id, run.run_id)
    run_path = group_dir / pb_run_id
    run_path.mkdir(parents=True)
    metadata = agent_output(traj, pb_run_id)
    atomic_write_json(run_path / "metadata.json", metadata, indent=4, fsync=False)
    atomic_write_json(run_path / "status.json", status(traj), indent=4, fsync=False)
    lines = agent_log_lines(traj)
    atomic_write_text(run_path / "agent.log", "\n".join(lines) + "\n", fsync=False)
    entry: dict[str, Any] = {"klong_run": run.run_id, "paper_id": paper_id, "attempt": run.attempt,
                             "run_id": pb_run_id, "run_dir": str(run_path.relative_to(group_dir.parents[1])),
                             "submission": None, "direct_submission": None, "grade": None}  # fmt: skip
    if run.submission is not None:
        ts_dir = run_path / "submissions" / timestamp(traj.updated_at.timestamp())
        write_submission_tar(run.submission, ts_dir / "submission.tar.gz")
        atomic_write_json(ts_dir / "log.json", submission_log(traj), indent=4, fsync=False)
        direct = subs_dir / paper_id / submission_folder(run.attempt)
        if direct.exists():  # two tasks exported as one paper (--paper-id): name the folder after the run
            direct = subs_dir / paper_id / f"submission_{run.run_id}"
        shutil.copytree(run.submission, direct, symlinks=True)
        root = group_dir.parents[1]
        entry["submission"] = str((ts_dir / "submission.tar.gz").relative_to(root))
        entry["direct_submission"] = str(direct.relative_to(root))
    if run.grade is not None:
        grade = paperbench_grade(run.grade, paper_id=paper_id, run_id=pb_run_id, traj=traj, metadata=metadata,
                                 submission_exists=run.submission is not None, log_lines=lines)  # fmt: skip
        atomic_write_json(run_path / "grade.json", grade, indent=2, fsync=False)
        entry["grade"] = str((run_path / "grade.json").relative_to(group_dir.parents[1]))
        entry["score"] = grade["score"]
    return entry


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def _prepare_out(out: Path) -> Path:
    """A fresh build folder beside OUT, once OUT is known to be absent, empty, or an earlier export left as it was."""
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "--out exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise InputFileError(out, f"--out is a non-empty folder that no klong export made (no {MANIFEST}); "
                                      "choose another or empty it")  # fmt: skip
        written = set(read_json(out / MANIFEST).get("files") or [])
        extra = [f for f in _listing(out) if f not in written and f != MANIFEST]
        if extra:
            raise InputFileError(out, f"--out holds files the earlier export did not write ({extra[0]}, ...: "
                                      "PaperBench's own results?); export to another folder")  # fmt: skip
    build = out.parent / f".{out.name}.export-{os.getpid()}"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir(parents=True)
    return build


def export_paperbench(run_dir: str | Path, out: str | Path, *, run_group_id: str | None = None,
                      paper_id: str | None = None) -> dict[str, Any]:  # fmt: skip
    """Write both layouts (see the module doc) and return the manifest. `paper_id` overrides the task ids (a task
    that is a PaperBench paper under another name)."""
    run_dir, out = Path(run_dir), Path(out)
    runs, unfinished = read_run_dir(run_dir)
    if not runs:
        raise InputFileError(run_dir, f"no finished run to export ({len(unfinished)} still running or killed: "
                                      "finish them with `klong run ... --resume`)")  # fmt: skip
    if run_group_id is not None and (not run_group_id or "/" in run_group_id or run_group_id.startswith(".")):
        raise ConfigError(f"--run-group-id {run_group_id!r} is not a folder name")
    group = run_group_id or _group_id(runs, run_dir)
    build = _prepare_out(out)
    try:
        group_dir = build / "runs" / group
        subs_dir = build / "submissions"
        subs_dir.mkdir(parents=True)
        entries = [_export_run(r, paper_id=paper_id or r.trajectory.task_id or "", group_dir=group_dir,
                               run_group_id=group, subs_dir=subs_dir) for r in runs]  # fmt: skip
        manifest = {"run_dir": str(run_dir.resolve()), "run_group_id": group, "runs_dir": "runs",
                    "submissions_dir": "submissions", "runs": entries,
                    "unfinished": [str(p) for p in unfinished], "files": _listing(build)}  # fmt: skip
        (build / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return manifest
