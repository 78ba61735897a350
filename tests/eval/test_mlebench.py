"""`klong eval mlebench`: a two-row competition built here, run end to end with the scripted model and graded; the
report shape and the medal rule against MLE-bench's own (and, with KLONG_MLEBENCH_PYTHON, against MLE-bench itself)."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import klong.cli.eval_mlebench  # noqa: F401  (registers `klong eval mlebench`)
from klong.cli.common import app
from klong.eval.mlebench_grade import CompetitionReport, aggregate_reports, make_report, medal_rows, thresholds

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]

REPORT_KEYS = ["competition_id", "score", "gold_threshold", "silver_threshold", "bronze_threshold", "median_threshold",
               "any_medal", "gold_medal", "silver_medal", "bronze_medal", "above_median", "submission_exists",
               "valid_submission", "is_lower_better", "created_at", "submission_path"]  # fmt: skip
TOTAL_KEYS = ["total_runs", "total_runs_with_submissions", "total_valid_submissions", "total_medals",
              "total_gold_medals", "total_silver_medals", "total_bronze_medals", "total_above_median",
              "competition_reports"]  # fmt: skip

GRADE_PY = """import pandas as pd


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    if list(submission.columns) != ["id", "label"] or len(submission) != len(answers):
        raise ValueError("expected columns id,label and one row per test id")
    merged = answers.merge(submission, on="id", suffixes=("", "_pred"))
    return float((merged["label"] == merged["label_pred"]).mean())
"""


def make_competitions(root: Path) -> Path:
    comp = root / "two-rows"
    public, private = comp / "prepared" / "public", comp / "prepared" / "private"
    public.mkdir(parents=True)
    private.mkdir(parents=True)
    (comp / "description.md").write_text("# Two rows\n\nPredict `label` (1 when `x` > 5) for each test `id`. "
                                         "Metric: accuracy.\n")  # fmt: skip
    (public / "train.csv").write_text("id,x,label\n10,1,0\n11,7,1\n12,9,1\n13,3,0\n")
    (public / "test.csv").write_text("id,x\n1,8\n2,2\n")
    (public / "sample_submission.csv").write_text("id,label\n1,0\n2,0\n")
    (private / "answers.csv").write_text("id,label\n1,1\n2,0\n")
    (comp / "grade.py").write_text(GRADE_PY)
    (comp / "leaderboard.csv").write_text("teamId,score\n" + "".join(f"{k},{s}\n" for k, s in
                                                                    enumerate([1.0, 0.9, 0.8, 0.7, 0.6])))  # fmt: skip
    return root


SOLVE = ("python3 -c \"import csv; rows = list(csv.DictReader(open('data/test.csv'))); "
         "out = open('submission/submission.csv', 'w'); out.write('id,label\\n'); "
         "[out.write(r['id'] + ',' + str(int(int(r['x']) > 5)) + '\\n') for r in rows]\"")  # fmt: skip


def script(path: Path, *commands: str) -> Path:
    turns = [{"content": "Look at the data.", "tool_calls": [{"name": "bash", "arguments": {"command": "ls data"}}]}]
    turns += [{"content": f"Step {k}.", "tool_calls": [{"name": "bash", "arguments": {"command": c}}]}
              for k, c in enumerate(commands)]  # fmt: skip
    turns.append({"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {"summary": "submitted"}}]})
    path.write_text(yaml.safe_dump({"turns": turns}))
    return path


def eval_args(comps: Path, script_path: Path, out: Path) -> list[str]:
    return ["eval", "mlebench", "--competitions", str(comps), "--ids", "two-rows", "--model", f"scripted:{script_path}",
            "--out", str(out), "--grader", "local"]  # fmt: skip


def run_eval(tmp_path: Path, name: str, *commands: str, comps: Path | None = None,
             extra: tuple[str, ...] = ()) -> tuple[Path, dict]:  # fmt: skip
    comps = comps or tmp_path / "competitions"
    if not comps.exists():
        make_competitions(comps)
    out = tmp_path / name
    args = [*eval_args(comps, script(tmp_path / f"{name}.yaml", *commands), out), "--json", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def grading_report(out: Path) -> dict:
    (path,) = (out / "mlebench").glob("*_grading_report.json")
    assert path.name.endswith("-GMT_grading_report.json") or path.name.endswith("-UTC_grading_report.json")
    return json.loads(path.read_text())


def test_a_solved_competition_is_graded_gold_with_mlebench_reports(tmp_path):
    out, results = run_eval(tmp_path, "good", SOLVE)
    run = results["runs"][0]
    assert run["score"] == 1.0 and run["official"] is False and run["grader"].startswith("local grader")
    assert run["metrics"]["score"] == 1.0 and run["metrics"]["gold_medal"] is True
    assert results["metric"] == "any_medal" and results["overall"]["mean"] == 1.0 and not results["official"]
    report = json.loads((out / run["files"]["competition_report"]).read_text())
    assert list(report) == REPORT_KEYS
    assert report["score"] == 1.0 and report["gold_medal"] and report["any_medal"] and report["valid_submission"]
    assert (report["gold_threshold"], report["silver_threshold"], report["bronze_threshold"]) == (1.0, 1.0, 0.9)
    assert report["median_threshold"] == 0.8 and report["above_median"] and not report["is_lower_better"]
    graded = Path(report["submission_path"])
    assert graded.is_absolute() and graded.read_text() == "id,label\n1,1\n2,0\n"
    agg = grading_report(out)
    assert list(agg) == TOTAL_KEYS and agg["competition_reports"] == [report]
    assert (agg["total_runs"], agg["total_valid_submissions"], agg["total_medals"], agg["total_gold_medals"]) == (
        1, 1, 1, 1)  # fmt: skip
    again = runner.invoke(app, eval_args(tmp_path / "competitions", tmp_path / "good.yaml", out))
    assert again.exit_code == 0, again.output
    assert grading_report(out)["competition_reports"] == [report]  # the run kept its grade; one report, rebuilt
    lines = (out / "mlebench" / "submission.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [{"competition_id": "two-rows", "submission_path": str(graded)}]
    # the agent got the public files and the description, never the answers
    data = out / "workspaces" / "two-rows__a0" / "data"
    assert sorted(p.name for p in data.iterdir()) == ["description.md", "sample_submission.csv", "test.csv",
                                                      "train.csv"]  # fmt: skip
    first = json.loads((out / "trajectories" / "two-rows__a0.json").read_text())["messages"][1]["content"]
    assert "submission/submission.csv" in first and "Predict `label`" in first and "24h" in first


def test_a_submission_with_wrong_columns_is_invalid_and_a_missing_one_does_not_exist(tmp_path):
    bad = "printf 'id,prediction\\n1,1\\n2,0\\n' > submission/submission.csv"
    out, results = run_eval(tmp_path, "bad", bad)
    run = results["runs"][0]
    assert run["status"] == "graded" and run["score"] == 0.0 and "expected columns" in run["metrics"]["invalid_reason"]
    report = json.loads((out / run["files"]["competition_report"]).read_text())
    assert report["score"] is None and report["submission_exists"] and not report["valid_submission"]
    assert not (report["any_medal"] or report["above_median"])
    # a link to the answers is not a submission (it is never read)
    answers = tmp_path / "competitions" / "two-rows" / "prepared" / "private" / "answers.csv"
    out, results = run_eval(tmp_path, "link", f"ln -s {answers} submission/submission.csv")
    report = json.loads((out / results["runs"][0]["files"]["competition_report"]).read_text())
    assert not report["submission_exists"] and report["score"] is None
    assert grading_report(out)["total_runs_with_submissions"] == 0
    # a grader that cannot run is that run's error (named), not an invalid submission
    (tmp_path / "competitions" / "two-rows" / "grade.py").write_text("import not_installed_module\n")
    out, results = run_eval(tmp_path, "broken", SOLVE)
    status = results["runs"][0]["status"]
    assert status.startswith("error: ") and "local grader failed" in status and "not_installed_module" in status
    assert results["files"] == {} and not list((out / "mlebench").glob("*_grading_report.json"))


def _bwrap_usable() -> bool:
    if shutil.which("bwrap") is None:
        return False
    done = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "true"], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(not _bwrap_usable(), reason="bwrap missing or not usable here")
def test_under_bwrap_the_private_answers_cannot_be_read(tmp_path):
    # outside /tmp (the sandbox's own tmpfs) and mounted read-only on purpose: only the hiding keeps the answers away
    outside = Path(tempfile.mkdtemp(prefix="klong-mlebench-", dir=REPO)).resolve()
    outside.chmod(0o755)  # readable by the sandbox's unprivileged user, as data folders are
    try:
        (outside / "visible.txt").write_text("mounted\n")
        comps = make_competitions(outside / "competitions")
        answers = comps / "two-rows" / "prepared" / "private" / "answers.csv"
        steal = f"cat {outside}/visible.txt; cat {answers} > submission/stolen.txt; echo rc=$?"
        extra = ("--sandbox", "bwrap", "-c", f"sandbox.ro_paths=[{outside}]")
        out, results = run_eval(tmp_path, "jail", steal, SOLVE, comps=comps, extra=extra)
    finally:
        shutil.rmtree(outside, ignore_errors=True)
    assert results["runs"][0]["score"] == 1.0  # the public data was there to solve it
    assert (out / "workspaces" / "two-rows__a0" / "submission" / "stolen.txt").read_text() == ""
    messages = json.loads((out / "trajectories" / "two-rows__a0.json").read_text())["messages"]
    tool = [m for m in messages if m["role"] == "tool"][1]["content"]
    assert "mounted" in tool and "rc=1" in tool and "1,1" not in tool


def test_selection_errors_say_what_is_wrong_before_anything_is_written(tmp_path):
    comps = make_competitions(tmp_path / "competitions")
    base = ["eval", "mlebench", "--competitions", str(comps), "--model", "scripted:x.yaml", "--grader", "local"]
    cases = [(["--ids", "nope"], "no folder for competition(s) nope"),
             (["--lite"], "no folder for competition(s) aerial-cactus-identification"),
             (["--ids", "two-rows", "--lite"], "--ids and --lite exclude each other"),
             (["--ids", "../x"], "not competition ids")]  # fmt: skip
    for k, (args, message) in enumerate(cases):
        result = runner.invoke(app, [*base, *args, "--out", str(tmp_path / f"o{k}")])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert not (tmp_path / f"o{k}").exists()
    (comps / "two-rows" / "leaderboard.csv").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "lfs")])
    assert result.exit_code == 2 and "Git LFS pointer" in result.output
    (comps / "splits").mkdir()
    (comps / "splits" / "low.txt").write_text("two-rows\n")
    (comps / "two-rows" / "grade.py").unlink()
    result = runner.invoke(app, [*base, "--lite", "--out", str(tmp_path / "nograder")])
    assert result.exit_code == 2 and "grade.py: missing" in result.output


def _board(n: int, lower: bool = False) -> list[float]:
    scores = [round(1 - k / (2 * n), 6) for k in range(n)]
    return scores[::-1] if lower else scores


def test_medal_rule_on_leaderboards_of_every_size_class():
    assert [medal_rows(n) for n in (5, 150, 300, 1200)] == [(1, 1, 2), (10, 30, 60), (10, 50, 100), (12, 60, 120)]
    for n in (5, 150, 300, 1200):
        board = _board(n)
        gold, silver, bronze = medal_rows(n)
        t = thresholds(board)
        assert (t.gold, t.silver, t.bronze) == (board[gold - 1], board[silver - 1], board[bronze - 1])
        ordered = sorted(board)
        median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
        assert not t.is_lower_better and t.median == median
        silver_only = make_report("c", board[silver - 1], board, submission_exists=True, submission_path="s")
        assert silver_only.silver_medal != (gold == silver) and silver_only.gold_medal == (gold == silver)
        bronze_only = make_report("c", board[bronze - 1], board, submission_exists=True, submission_path="s")
        assert bronze_only.bronze_medal and not (bronze_only.gold_medal or bronze_only.silver_medal)
        at_median = make_report("c", t.median, board, submission_exists=True, submission_path="s")
        assert not at_median.above_median  # strictly better than the median
        last = make_report("c", board[-1], board, submission_exists=True, submission_path="s")
        assert not last.any_medal and not last.above_median and last.valid_submission
        low = _board(n, lower=True)
        best = make_report("c", min(low), low, submission_exists=True, submission_path="s")
        assert best.is_lower_better and best.gold_medal and best.above_median
    none = make_report("c", None, _board(5), submission_exists=False, submission_path="s")
    assert list(none.model_dump()) == REPORT_KEYS and not (none.any_medal or none.valid_submission)
    assert list(aggregate_reports([none])) == TOTAL_KEYS


# --- against MLE-bench itself (a Python with the mlebench package) ---

COMPARE = """
import json, sys
import pandas as pd
from mlebench.grade_helpers import Grader, CompetitionReport
from mlebench.grade import aggregate_reports
cases = json.loads(sys.stdin.read())
g = Grader("accuracy", "mlebench.competitions.utils:prepare_for_accuracy_metric")
out = []
for board, score in cases:
    lb = pd.DataFrame({"score": board})
    info = g.rank_score(score, lb)
    out.append({**info, "is_lower_better": g.is_lower_better(lb)})
print(json.dumps(out))
"""


def _scratch() -> str:
    """MLE-bench's `mlebench.data` makes a `cache/` folder (diskcache) in its working directory: a scratch one."""
    import tempfile

    return tempfile.mkdtemp(prefix="klong-mlebench-")


def _mlebench_python() -> str:
    return os.environ["KLONG_MLEBENCH_PYTHON"]


@pytest.mark.mlebench
def test_thresholds_and_medals_equal_mlebench_own(tmp_path):
    cases = []
    for n in (5, 150, 300, 1200, 99, 100, 249, 250, 999, 1000):
        for lower in (False, True):
            board = _board(n, lower)
            for score in (None, board[0], board[medal_rows(n)[1] - 1], board[medal_rows(n)[2] - 1], board[n // 2],
                          board[-1]):  # fmt: skip
                cases.append((board, score))
    done = subprocess.run(cwd=_scratch(), args=[_mlebench_python(), "-c", COMPARE], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout.splitlines()[-1])
    for (board, score), want in zip(cases, theirs, strict=True):
        ours = make_report("c", score, board, submission_exists=True, submission_path="s")
        got = {k: getattr(ours, k) for k in want if k.endswith(("_medal", "above_median", "is_lower_better"))}
        got |= {f"{k}_threshold": getattr(ours, f"{k}_threshold") for k in ("gold", "silver", "bronze", "median")}
        assert got == want, (len(board), score)


@pytest.mark.mlebench
def test_report_shape_equals_mlebench_grade_output(tmp_path):
    """`mlebench grade` on a competition laid out here; our records must have its keys, in its order."""
    code = ("import json, mlebench.utils as u; p = u.get_module_dir() / 'competitions' / 'spaceship-titanic'; "
            "head = (p / 'leaderboard.csv').read_bytes()[:7].decode(errors='replace'); "
            "print(json.dumps([str(p), head]))")  # fmt: skip
    done = subprocess.run(
        cwd=_scratch(), args=[_mlebench_python(), "-c", code], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        pytest.skip(f"MLE-bench has no spaceship-titanic: {done.stderr[-300:]}")
    folder, head = json.loads(done.stdout.splitlines()[-1])
    if head.startswith("version"):
        pytest.skip(f"{folder}/leaderboard.csv is a Git LFS pointer (git lfs pull)")
    data = tmp_path / "data" / "spaceship-titanic" / "prepared"
    (data / "private").mkdir(parents=True)
    (data / "public").mkdir()
    (data / "private" / "test.csv").write_text("PassengerId,Transported\n1,True\n2,False\n")
    (data / "public" / "sample_submission.csv").write_text("PassengerId,Transported\n1,False\n2,False\n")
    (tmp_path / "sub.csv").write_text("PassengerId,Transported\n1,True\n2,True\n")
    jsonl = tmp_path / "subs.jsonl"
    jsonl.write_text(json.dumps({"competition_id": "spaceship-titanic", "submission_path": str(tmp_path / "sub.csv")}))
    out = tmp_path / "graded"
    done = subprocess.run(cwd=_scratch(), args=[_mlebench_python(), "-m", "mlebench.cli", "grade", "--submission", str(jsonl),
                           "--output-dir", str(out), "--data-dir", str(tmp_path / "data")], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = grading_report_at(out)
    assert list(theirs) == TOTAL_KEYS and list(theirs["competition_reports"][0]) == REPORT_KEYS
    report = CompetitionReport.model_validate(theirs["competition_reports"][0])
    assert report.score == 0.5 and report.valid_submission
    assert aggregate_reports([report]) == theirs


def grading_report_at(folder: Path) -> dict:
    (path,) = folder.glob("*_grading_report.json")
    return json.loads(path.read_text())


@pytest.mark.mlebench
def test_official_grading_through_klong_eval(tmp_path):
    """`--grader mlebench`: the run is graded by `mlebench grade` itself (MLE-bench's spaceship-titanic, whose
    definition comes from the installed package; data laid out here as MLE-bench's data dir)."""
    code = ("import mlebench.utils as u; p = u.get_module_dir() / 'competitions' / 'spaceship-titanic' / "
            "'leaderboard.csv'; print(p.read_bytes()[:7].decode(errors='replace'))")  # fmt: skip
    done = subprocess.run(
        cwd=_scratch(), args=[_mlebench_python(), "-c", code], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 or done.stdout.startswith("version"):
        pytest.skip("MLE-bench's spaceship-titanic leaderboard is missing or a Git LFS pointer")
    comps = tmp_path / "data"
    data = comps / "spaceship-titanic" / "prepared"
    (data / "private").mkdir(parents=True)
    (data / "public").mkdir()
    (data / "private" / "test.csv").write_text("PassengerId,Transported\n1,True\n2,False\n")
    (data / "public" / "sample_submission.csv").write_text("PassengerId,Transported\n1,False\n2,False\n")
    solve = "printf 'PassengerId,Transported\\n1,True\\n2,False\\n' > submission/submission.csv"
    args = ["eval", "mlebench", "--competitions", str(comps), "--ids", "spaceship-titanic", "--model",
            f"scripted:{script(tmp_path / 's.yaml', solve)}", "--out", str(tmp_path / "out"), "--grader", "mlebench",
            "--mlebench-python", _mlebench_python(), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]
    assert run["official"] is True and run["grader"].startswith("mlebench grade") and run["metrics"]["score"] == 1.0
    theirs = json.loads((tmp_path / "out" / run["files"]["mlebench_grading_report"]).read_text())
    ours = json.loads((tmp_path / "out" / run["files"]["competition_report"]).read_text())
    assert theirs["competition_reports"] == [ours] and list(ours) == REPORT_KEYS
