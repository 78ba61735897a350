"""MLE-bench's grading: its medal rule, its report records, and the two graders klong calls.

Formats, as `mlebench grade` writes them (openai/mle-bench 783b15af: `mlebench/grade.py`, `grade_helpers.py`):
- a competition report (`CompetitionReport.to_dict`), keys in this order: `competition_id`, `score` (the grader's
  value rounded to 5 places; null when the submission is missing or could not be graded), `gold_threshold`,
  `silver_threshold`, `bronze_threshold`, `median_threshold`, `any_medal`, `gold_medal`, `silver_medal`,
  `bronze_medal`, `above_median`, `submission_exists` (a file ending in `.csv`), `valid_submission` (a score came
  out), `is_lower_better`, `created_at` (local time, ISO format), `submission_path`;
- a grading report, `<%Y-%m-%dT%H-%M-%S-%Z of gmtime>_grading_report.json`: `total_runs`,
  `total_runs_with_submissions`, `total_valid_submissions`, `total_medals`, `total_gold_medals`,
  `total_silver_medals`, `total_bronze_medals`, `total_above_median`, `competition_reports: [...]`.

Medal rule (Kaggle's progression rules as MLE-bench applies them to a private leaderboard of N rows, best first; a
threshold is the score at that 1-based row): N < 100: gold row max(1, int(0.1N)), silver max(1, int(0.2N)), bronze
max(1, int(0.4N)); 100 <= N < 250: 10, max(1, int(0.2N)), max(1, int(0.4N)); 250 <= N < 1000: 10 + int(0.002N), 50,
100; N >= 1000: 10 + int(0.002N), max(1, int(0.05N)), max(1, int(0.1N)). The median is the leaderboard's median
score; lower is better when the first score is below the last. A score at least as good as a threshold earns that
medal (only the best one); `above_median` is strictly better than the median.

Graders: `mlebench grade` itself (`run_mlebench_grade`), or the local stand-in (`run_local_grader`): the competition
folder's `grade.py` (`grade(submission: DataFrame, answers) -> float`) run in a subprocess of klong's Python
(`python -m klong.eval.mlebench_grade GRADE_PY SUBMISSION ANSWERS OUT_JSON`), reading the submission with pandas as
MLE-bench does; an exception in `grade` means an invalid submission (score null), as in MLE-bench's `Grader`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from klong.exceptions import InputFileError, KlongError
from klong.io import read_json

REPORT_SUFFIX = "_grading_report.json"
GRADE_TIMEOUT = 6 * 3600.0
"""Most seconds one grading may take (some MLE-bench graders score large test sets)."""


class CompetitionReport(BaseModel):
    """One graded submission, field for field (and in the order of) MLE-bench's `CompetitionReport.to_dict()`."""

    competition_id: str
    score: float | None
    gold_threshold: float
    silver_threshold: float
    bronze_threshold: float
    median_threshold: float
    any_medal: bool
    gold_medal: bool
    silver_medal: bool
    bronze_medal: bool
    above_median: bool
    submission_exists: bool
    valid_submission: bool
    is_lower_better: bool
    created_at: str
    submission_path: str


class Thresholds(BaseModel):
    gold: float
    silver: float
    bronze: float
    median: float
    is_lower_better: bool


def medal_rows(n: int) -> tuple[int, int, int]:
    """The 1-based leaderboard rows whose scores are the gold, silver and bronze thresholds for `n` teams."""
    if n < 1:
        raise ValueError("the leaderboard has no rows")
    if n < 100:
        return max(1, int(n * 0.1)), max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 250:
        return 10, max(1, int(n * 0.2)), max(1, int(n * 0.4))
    if n < 1000:
        return 10 + int(n * 0.002), 50, 100
    return 10 + int(n * 0.002), max(1, int(n * 0.05)), max(1, int(n * 0.1))


def thresholds(scores: Sequence[float]) -> Thresholds:
    """The medal thresholds of a leaderboard (its `score` column, best first). The median skips missing scores, as
    pandas' `Series.median` does."""
    gold, silver, bronze = (float(scores[r - 1]) for r in medal_rows(len(scores)))
    present = sorted(float(s) for s in scores if not math.isnan(s))
    mid = len(present) // 2
    median = math.nan if not present else present[mid] if len(present) % 2 else (present[mid - 1] + present[mid]) / 2
    return Thresholds(gold=gold, silver=silver, bronze=bronze, median=median,
                      is_lower_better=bool(scores[0] < scores[-1]))  # fmt: skip


def rank(score: float | None, t: Thresholds) -> dict[str, bool]:
    """Medals and `above_median` of a score (all False for no score)."""
    if score is None:
        return {"gold_medal": False, "silver_medal": False, "bronze_medal": False, "above_median": False}

    def reaches(threshold: float) -> bool:
        return score <= threshold if t.is_lower_better else score >= threshold

    gold = reaches(t.gold)
    silver = not gold and reaches(t.silver)
    bronze = not gold and not silver and reaches(t.bronze)
    above = score < t.median if t.is_lower_better else score > t.median
    return {"gold_medal": gold, "silver_medal": silver, "bronze_medal": bronze, "above_median": above}


def make_report(competition_id: str, score: float | None, leaderboard: Sequence[float], *, submission_exists: bool,
                submission_path: str, created_at: datetime | None = None) -> CompetitionReport:  # fmt: skip
    t = thresholds(leaderboard)
    medals = rank(score, t)
    return CompetitionReport(
        competition_id=competition_id, score=None if score is None else float(score), gold_threshold=t.gold,
        silver_threshold=t.silver, bronze_threshold=t.bronze, median_threshold=t.median,
        any_medal=medals["gold_medal"] or medals["silver_medal"] or medals["bronze_medal"], **medals,
        submission_exists=submission_exists, valid_submission=score is not None, is_lower_better=t.is_lower_better,
        created_at=(created_at or datetime.now()).isoformat(), submission_path=submission_path,
    )  # fmt: skip


def aggregate_reports(reports: Sequence[CompetitionReport]) -> dict[str, Any]:
    """The grading report of several runs (`mlebench grade`'s output)."""
    gold, silver, bronze = (sum(getattr(r, k) for r in reports) for k in ("gold_medal", "silver_medal", "bronze_medal"))
    return {"total_runs": len(reports), "total_runs_with_submissions": sum(r.submission_exists for r in reports),
            "total_valid_submissions": sum(r.valid_submission for r in reports), "total_medals": gold + silver + bronze,
            "total_gold_medals": gold, "total_silver_medals": silver, "total_bronze_medals": bronze,
            "total_above_median": sum(r.above_median for r in reports),
            "competition_reports": [r.model_dump(mode="json") for r in reports]}  # fmt: skip


def report_name() -> str:
    """`<timestamp>_grading_report.json`, MLE-bench's name (`mlebench.utils.get_timestamp`)."""
    return time.strftime("%Y-%m-%dT%H-%M-%S-%Z", time.gmtime()) + REPORT_SUFFIX


def read_leaderboard(path: Path) -> list[float]:
    """The `score` column of a Kaggle leaderboard CSV (best first), checked."""
    import pandas as pd

    try:
        head = path.read_bytes()[:200]
    except OSError as e:
        raise InputFileError(path, f"cannot read the leaderboard: {e.strerror or e}") from None
    if head.startswith(b"version https://git-lfs"):
        raise InputFileError(path, "a Git LFS pointer, not the leaderboard (run `git lfs pull` in MLE-bench's clone)")
    try:
        scores = pd.read_csv(path)["score"]
    except KeyError:
        raise InputFileError(path, "the leaderboard has no `score` column") from None
    except (ValueError, pd.errors.ParserError) as e:
        raise InputFileError(path, f"not a leaderboard CSV: {e}") from None
    if scores.empty:
        raise InputFileError(path, "the leaderboard has no rows")
    try:
        return [float(s) for s in scores]
    except (TypeError, ValueError):
        raise InputFileError(path, "the leaderboard's `score` column is not numeric") from None


def _read_csv(path: Path):
    """A CSV as MLE-bench reads it (`mlebench.utils.read_csv`: round-trip floats; an empty file is no rows)."""
    import pandas as pd

    try:
        return pd.read_csv(path, float_precision="round_trip")
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _load_answers(path: Path) -> Any:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return _read_csv(path)


def score_locally(grade_py: Path, submission: Path, answers: Path) -> dict[str, Any]:
    """`{"score": float | None, "invalid": reason}` of a submission by the competition's `grade.py` (run in the
    grading subprocess). A `grade.py` that cannot be imported, or an unreadable answers file, raises."""
    import importlib.util

    sys.path.insert(0, str(grade_py.parent))  # a grader's helper modules beside it
    spec = importlib.util.spec_from_file_location("klong_mlebench_competition_grade", grade_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = _load_answers(answers)
    try:
        frame = _read_csv(submission)
    except Exception as e:  # a file pandas cannot parse is an invalid submission (mlebench grade would stop)
        return {"score": None, "invalid": f"unreadable CSV: {type(e).__name__}: {e}"}
    try:
        value = module.grade(frame, truth)
    except Exception as e:  # MLE-bench's Grader: any error in grade() is an invalid submission
        return {"score": None, "invalid": f"{type(e).__name__}: {e}"[:2000]}
    try:
        return {"score": round(float(value), 5), "invalid": None}
    except (TypeError, ValueError):
        raise TypeError(f"{grade_py}: grade() returned {value!r}, not a number") from None


async def run_local_grader(grade_py: Path, submission: Path, answers: Path, work: Path,
                           timeout: float = GRADE_TIMEOUT) -> dict[str, Any]:  # fmt: skip
    """`score_locally` in a subprocess of klong's Python (a grader's imports and crashes stay out of klong)."""
    from klong.sandbox.process import run_process

    work.mkdir(parents=True, exist_ok=True)
    out = work / "local_grade.json"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "klong.eval.mlebench_grade", str(grade_py), str(submission), str(answers), str(out)]
    result = await run_process(argv, cwd=grade_py.parent, env=dict(os.environ), timeout=timeout)
    if result.timed_out or not result.ok or not out.is_file():
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        raise KlongError(f"{grade_py}: the local grader failed ({why}): {result.output.strip()[-1500:]}")
    return read_json(out)


async def run_mlebench_grade(python: str, submissions: Path, output_dir: Path, data_dir: Path,
                             timeout: float = GRADE_TIMEOUT) -> dict[str, Any]:  # fmt: skip
    """`mlebench grade --submission JSONL --output-dir DIR --data-dir DATA` with MLE-bench's own Python; returns the
    grading report it wrote (the only one in `output_dir`)."""
    from klong.sandbox.process import run_process

    output_dir.mkdir(parents=True, exist_ok=True)
    for old in output_dir.glob(f"*{REPORT_SUFFIX}"):
        old.unlink()
    argv = [python, "-m", "mlebench.cli", "grade", "--submission", str(submissions), "--output-dir", str(output_dir),
            "--data-dir", str(data_dir)]  # fmt: skip
    result = await run_process(argv, cwd=output_dir, env=dict(os.environ), timeout=timeout)
    reports = sorted(output_dir.glob(f"*{REPORT_SUFFIX}"))
    if result.timed_out or not result.ok or len(reports) != 1:
        why = "timed out" if result.timed_out else f"exit {result.exit_code}"
        raise KlongError(f"mlebench grade failed ({why}): {result.output.strip()[-1500:]}")
    return {"path": reports[0], "report": read_json(reports[0])}


def _main(argv: list[str]) -> int:
    grade_py, submission, answers, out = map(Path, argv)
    from klong.io import atomic_write_json

    atomic_write_json(out, score_locally(grade_py, submission, answers))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
