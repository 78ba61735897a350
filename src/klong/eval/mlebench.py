"""MLE-bench as a `Benchmark`: Kaggle competitions in MLE-bench's layout in, MLE-bench's grading reports out.

Competitions: `DIR/<id>/` each with `prepared/public/` (the data the agent gets, copied into its workspace as `data/`
with `description.md`), `prepared/private/` (the answers: never in the workspace, and `DIR` is hidden from the
sandbox), `description.md`, `grade.py` (`grade(submission: DataFrame, answers) -> float`), `leaderboard.csv` (Kaggle's
private leaderboard, column `score`, best first) and optionally MLE-bench's `config.yaml` (`name`, `dataset.answers`:
the answers file relative to `DIR`, as MLE-bench's data dir, or to the folder; else the only CSV/JSONL in `private/`).
`DIR` is laid out as MLE-bench's own `--data-dir` (`<id>/prepared/{public,private}`), so with MLE-bench installed it
can be that data dir: a competition in MLE-bench's registry takes what its folder lacks (description, leaderboard)
from the installed package. Selection: `--ids`, `--lite` (MLE-bench's low-complexity split, `splits/low.txt` in
`DIR`, else `experiments/splits/low.txt` beside `DIR` or in MLE-bench's clone, else the list below), else every
competition folder in `DIR`.

Each attempt: the agent gets the description and `data/` and writes `submission/submission.csv` (24 h, as MLE-bench
runs agents). Grading: `mlebench grade` (MLE-bench's own grader, official) when a Python with MLE-bench is given
(`--mlebench-python` / `$KLONG_MLEBENCH_PYTHON`) and knows the competition; otherwise the competition's `grade.py` with
MLE-bench's medal rule (`klong.eval.mlebench_grade`), labelled as the local stand-in. Outputs under `OUT/mlebench/`:
`submissions/<run>/submission.csv` (the graded copy), `reports/<run>.json` (its competition report),
`grading/<run>/` (`mlebench grade`'s own output), and at the end `submission.jsonl` (MLE-bench's grading input) and
`<timestamp>_grading_report.json` over every graded run.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from klong.eval.benchmark import Reference, TaskResult
from klong.eval.mlebench_grade import (
    REPORT_SUFFIX,
    CompetitionReport,
    aggregate_reports,
    make_report,
    read_leaderboard,
    report_name,
    run_local_grader,
    run_mlebench_grade,
)
from klong.exceptions import ConfigError, InputFileError, KlongError
from klong.io import atomic_write_json, atomic_write_text, read_json, read_text, read_yaml
from klong.rollout.runner import RunSummary
from klong.sandbox import SandboxConfig
from klong.task import Task

Grader = Literal["auto", "mlebench", "local"]
TIME_LIMIT = 24 * 3600.0
"""MLE-bench's agent runtime (24 h)."""
SUBMISSION = "submission.csv"
OUTPUTS = "mlebench"
LOCAL_GRADER = "local grader (competition grade.py + MLE-bench medal rule; not mlebench grade)"
OFFICIAL_GRADER = "mlebench grade (MLE-bench's grader)"
LITE_IDS = [
    "aerial-cactus-identification",
    "aptos2019-blindness-detection",
    "denoising-dirty-documents",
    "detecting-insults-in-social-commentary",
    "dog-breed-identification",
    "dogs-vs-cats-redux-kernels-edition",
    "histopathologic-cancer-detection",
    "jigsaw-toxic-comment-classification-challenge",
    "leaf-classification",
    "mlsp-2013-birds",
    "new-york-city-taxi-fare-prediction",
    "nomad2018-predict-transparent-conductors",
    "plant-pathology-2020-fgvc7",
    "random-acts-of-pizza",
    "ranzcr-clip-catheter-line-classification",
    "siim-isic-melanoma-classification",
    "spooky-author-identification",
    "tabular-playground-series-dec-2021",
    "tabular-playground-series-may-2022",
    "text-normalization-challenge-english-language",
    "text-normalization-challenge-russian-language",
    "the-icml-2013-whale-challenge-right-whale-redux",
]
"""MLE-bench Lite: `experiments/splits/low.txt` of openai/mle-bench at 783b15af (22 competitions)."""
README = "MLE-bench README leaderboard (openai/mle-bench 783b15af), Low == Lite"
REFERENCES = [
    Reference(label="AIDE, o1-preview", value=0.3591, source=README, setting="lite"),
    Reference(label="AIDE, gpt-4o-2024-08-06", value=0.1855, source=README, setting="lite"),
    Reference(label="OpenHands, gpt-4o-2024-08-06", value=0.1212, source=README, setting="lite"),
]

TASK_TEMPLATE = """You are taking part in MLE-bench, an offline version of a Kaggle competition: {title}. Solve it by \
training a model and predicting the test set; do not label the test data by hand. Paths are relative to your \
workspace, the working directory of your commands.

- The competition's description is below (also in `data/description.md`). Where it conflicts with these points, \
these points win.
- The competition's files are in `data/`. Their train/test split was made for this benchmark, so they may differ \
slightly from the description: work with the files you have.
- Your submission is one file, `submission/submission.csv`, in the format of the sample submission in `data/` \
(whatever format the description asks for). Only that file is graded, with the competition's metric, and ranked \
against the competition's Kaggle leaderboard (medals).
- Do not look at other people's solutions to this competition.
- You have {time_limit} in total. The time left is shown to you as you go: write a valid submission early, then \
improve it.

# Competition description

{paper}
"""


class Registry(BaseModel):
    """What an installed MLE-bench knows (`mlebench.registry`)."""

    python: str
    module_dir: Path
    repo_dir: Path
    ids: list[str]


class Competition(BaseModel):
    id: str
    folder: Path
    """`DIR/<id>`: the data (public and private); hidden from the sandbox."""
    title: str
    description: str
    config: dict[str, Any]
    leaderboard: Path | None
    grade_py: Path | None
    answers: Path | None
    official: bool
    """Graded by `mlebench grade`."""


def find_registry(python: str) -> Registry:
    """Ask a Python with MLE-bench where its competitions are (a few hundred ms)."""
    code = ("import json, mlebench.utils as u; from mlebench.registry import registry as r; "
            "print(json.dumps({'module_dir': str(u.get_module_dir()), 'repo_dir': str(u.get_repo_dir()), "
            "'ids': r.list_competition_ids()}))")  # fmt: skip
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"--mlebench-python {python}: cannot run it ({e})") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"--mlebench-python {python}: cannot import mlebench ({tail})")
    return Registry(python=python, **json.loads(done.stdout.strip().splitlines()[-1]))


def lite_ids(root: Path, registry: Registry | None) -> list[str]:
    """MLE-bench Lite's ids: from a `low.txt` found beside the data (see the module doc), else the embedded list."""
    places = [root / "splits", root.parent / "experiments" / "splits"]
    if registry is not None:
        places.append(registry.repo_dir / "experiments" / "splits")
    for place in places:
        if (place / "low.txt").is_file():
            return [s.strip() for s in read_text(place / "low.txt").splitlines() if s.strip()]
    return list(LITE_IDS)


def _answers(root: Path, folder: Path, config: dict[str, Any]) -> Path | None:
    named = (config.get("dataset") or {}).get("answers")
    if isinstance(named, str):
        for path in (root / named, folder / named):
            if path.is_file():
                return path
        raise InputFileError(root / named, "missing: the answers file config.yaml's dataset.answers names")
    private = folder / "prepared" / "private"
    found = sorted(p for p in private.glob("*") if p.suffix in (".csv", ".jsonl")) if private.is_dir() else []
    return found[0] if len(found) == 1 else None


def load_competition(root: Path, cid: str, registry: Registry | None, grader: Grader) -> Competition:
    """A competition folder, checked for what the agent needs and what its grader needs."""
    folder = root / cid
    if not (folder / "prepared" / "public").is_dir():
        raise InputFileError(folder / "prepared" / "public", "missing: the competition's data the agent gets")
    known = registry is not None and cid in registry.ids
    package = registry.module_dir / "competitions" / cid if known else None
    config: dict[str, Any] = {}
    for source in (folder, package):
        if source is not None and (source / "config.yaml").is_file():
            config = read_yaml(source / "config.yaml")
            if not isinstance(config, dict):
                raise InputFileError(source / "config.yaml", "expected a mapping (MLE-bench's competition config)")
            break
    if (folder / "description.md").is_file():
        description = read_text(folder / "description.md")
    elif known and isinstance(config.get("description"), str):
        description = read_text(registry.repo_dir / config["description"])
    else:
        raise InputFileError(folder / "description.md", "missing: the competition's description")
    board = next((s / "leaderboard.csv" for s in (folder, package) if s and (s / "leaderboard.csv").is_file()), None)
    official = grader == "mlebench" or (grader == "auto" and known)
    if official and not known:
        why = "no --mlebench-python" if registry is None else "not in MLE-bench's registry"
        raise ConfigError(f"--grader mlebench: competition {cid}: {why}")
    grade_py = folder / "grade.py" if (folder / "grade.py").is_file() else None
    comp = Competition(id=cid, folder=folder, title=str(config.get("name") or cid), description=description,
                       config=config, leaderboard=board, grade_py=grade_py, answers=_answers(root, folder, config),
                       official=official)  # fmt: skip
    if official and board is not None:
        read_leaderboard(board)  # a Git LFS pointer in MLE-bench's clone: said now, not when grading
    if not official:
        if comp.grade_py is None:
            raise InputFileError(folder / "grade.py", "missing: the local grader needs the competition's grade.py")
        if comp.answers is None:
            raise InputFileError(folder / "prepared" / "private", "no answers file (one CSV/JSONL, or config.yaml's "
                                 "dataset.answers)")  # fmt: skip
        if board is None:
            raise InputFileError(folder / "leaderboard.csv", "missing: the medal rule needs Kaggle's leaderboard")
        read_leaderboard(board)
    return comp


def keep_submission(workspace: Path, kept: Path) -> bool:
    """Copy the agent's `submission/submission.csv` to `kept` (the graded copy; a stale one is removed first). False
    when there is none, or it is not a regular file inside the workspace (a link could point at the answers)."""
    kept.unlink(missing_ok=True)
    folder = workspace / "submission"
    path = folder / SUBMISSION
    if os.path.islink(folder) or os.path.islink(path) or not path.is_file():
        return False
    if folder.resolve().parent != workspace.resolve() or path.resolve().parent != folder.resolve():
        return False
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, kept, follow_symlinks=False)
    return True


class MLEBench:
    name = "mlebench"
    metric = "any_medal"

    def __init__(self, competitions: Path, *, ids: list[str] | None = None, lite: bool = False,
                 grader: Grader = "auto", mlebench_python: str | None = None) -> None:  # fmt: skip
        if ids and lite:
            raise ConfigError("--ids and --lite exclude each other")
        if grader not in ("auto", "mlebench", "local"):
            raise ConfigError(f"--grader {grader}: expected auto, mlebench or local")
        self.root = Path(competitions).resolve()
        self.ids = ids
        self.lite = lite
        self.grader = grader
        self.python = mlebench_python or os.environ.get("KLONG_MLEBENCH_PYTHON") or None
        self.setting = "lite" if lite else "selected" if ids else "all"
        self.references = REFERENCES
        self._competitions: dict[str, Competition] | None = None

    def competitions(self) -> dict[str, Competition]:
        if self._competitions is None:
            if not self.root.is_dir():
                raise InputFileError(self.root, "--competitions: not a folder of competitions (<id>/prepared/public/)")
            registry = find_registry(self.python) if self.python and self.grader != "local" else None
            if self.grader == "mlebench" and registry is None:
                raise ConfigError("--grader mlebench needs --mlebench-python (or $KLONG_MLEBENCH_PYTHON)")
            found = sorted(p.name for p in self.root.iterdir() if (p / "prepared" / "public").is_dir())
            ids = self.ids or (lite_ids(self.root, registry) if self.lite else found)
            bad = [i for i in ids if not i or "/" in i or i.startswith(".")]
            if bad:
                raise ConfigError(f"--ids: not competition ids: {', '.join(map(repr, bad))}")
            missing = [i for i in ids if not (self.root / i).is_dir()]
            if missing:
                raise InputFileError(self.root, f"no folder for competition(s) {', '.join(missing)}")
            if not ids:
                raise InputFileError(self.root, "no competition folders (<id>/prepared/public/) in it")
            self._competitions = {i: load_competition(self.root, i, registry, self.grader) for i in ids}
        return self._competitions

    def tasks(self) -> list[Task]:
        return [Task(id=c.id, title=c.title, paper=c.description, rubric={}, path=c.folder,
                     config={**c.config, "id": c.id, "grader": "mlebench" if c.official else "local"})
                for c in self.competitions().values()]  # fmt: skip

    def agent_defaults(self) -> dict[str, Any]:
        return {"time_limit": TIME_LIMIT, "mandatory_reading": False, "task_template": TASK_TEMPLATE}

    async def prepare(self, task: Task, workspace: Path) -> None:
        comp = self.competitions()[task.id]
        data = workspace / "data"
        await asyncio.to_thread(shutil.copytree, comp.folder / "prepared" / "public", data, symlinks=False)
        if not (data / "description.md").exists():
            atomic_write_text(data / "description.md", comp.description)

    def sandbox_config(self, task: Task, config: SandboxConfig) -> SandboxConfig:
        return config.model_copy(update={"hide_paths": [*config.hide_paths, str(self.root)]})

    async def grade(self, run: RunSummary, task: Task, out_dir: Path) -> TaskResult:
        comp = self.competitions()[task.id]
        base = out_dir / OUTPUTS
        workspace = out_dir / run.workspace
        kept = base / "submissions" / run.run_id / SUBMISSION
        exists = await asyncio.to_thread(keep_submission, workspace, kept)
        path = str(kept)
        files: dict[str, str] = {}
        invalid = None
        if comp.official:
            grading = base / "grading" / run.run_id
            grading.mkdir(parents=True, exist_ok=True)
            jsonl = grading / "submission.jsonl"
            atomic_write_text(jsonl, json.dumps({"competition_id": comp.id, "submission_path": path}) + "\n")
            done = await run_mlebench_grade(self.python, jsonl, grading, self.root)
            try:
                report = CompetitionReport.model_validate(done["report"]["competition_reports"][0])
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise KlongError(f"{done['path']}: not MLE-bench's grading report ({e})") from None
            files["mlebench_grading_report"] = str(done["path"].relative_to(out_dir))
        else:
            score = None
            if exists:
                local = await run_local_grader(comp.grade_py, kept, comp.answers, base / "grading" / run.run_id)
                score, invalid = local["score"], local["invalid"]
            report = make_report(comp.id, score, read_leaderboard(comp.leaderboard), submission_exists=exists,
                                 submission_path=path)  # fmt: skip
        report_file = base / "reports" / f"{run.run_id}.json"
        atomic_write_json(report_file, report.model_dump(mode="json"), indent=2)
        files["competition_report"] = str(report_file.relative_to(out_dir))
        metrics: dict[str, Any] = {k: getattr(report, k) for k in ("score", "valid_submission", "submission_exists",
                                   "above_median", "gold_medal", "silver_medal", "bronze_medal")}  # fmt: skip
        if invalid:
            metrics["invalid_reason"] = invalid
        return TaskResult(run_id=run.run_id, task_id=run.task_id, attempt=run.attempt,
                          score=1.0 if report.any_medal else 0.0, metrics=metrics,
                          grader=OFFICIAL_GRADER if comp.official else LOCAL_GRADER, official=comp.official,
                          files=files)  # fmt: skip

    def finalize(self, out_dir: Path, results: list[TaskResult]) -> dict[str, str]:
        """`submission.jsonl` of every graded run and the grading report over them (older reports replaced)."""
        base = out_dir / OUTPUTS
        reports = []
        for r in sorted(results, key=lambda r: r.run_id):
            file = r.files.get("competition_report")
            if r.status == "graded" and file and (out_dir / file).is_file():
                reports.append(CompetitionReport.model_validate(read_json(out_dir / file)))
        if not reports:
            return {}
        lines = [
            json.dumps({"competition_id": r.competition_id, "submission_path": r.submission_path}) for r in reports
        ]
        atomic_write_text(base / "submission.jsonl", "\n".join(lines) + "\n")
        name = report_name()
        atomic_write_json(base / name, aggregate_reports(reports), indent=2)
        for old in base.glob(f"*{REPORT_SUFFIX}"):
            if old.name != name:
                old.unlink()
        return {"submission_jsonl": f"{OUTPUTS}/submission.jsonl", "grading_report": f"{OUTPUTS}/{name}"}
