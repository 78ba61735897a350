"""`klong export paperbench` on a real run dir: the layouts themselves (always), then PaperBench's own code reading them
(its paper registry on klong's task dirs, its direct-submission solver, its run-group resume and checkpoint choice, its
grade records, its monitor), which skips when PaperBench's code is not at hand."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import tarfile
import uuid
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from klong.cli import app
from klong.schema import read_trajectory, write_trajectory
from tests.export.conftest import LEAKED

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


class CompleterConfig(BaseModel):
    """Stands in for PaperBench's `TurnCompleter.Config` (a pydantic model of the judge's model settings)."""

    model_config = ConfigDict(extra="allow")


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-GMT$")


def export(run_dir: Path, out: Path, *extra: str) -> dict:
    result = runner.invoke(app, ["export", "paperbench", str(run_dir), "--out", str(out), "--json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def tar_files(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_the_layouts(export_run, tmp_path):
    out = tmp_path / "pb"
    manifest = export(export_run.run_dir, out)
    runs = {r["klong_run"]: r for r in manifest["runs"]}
    assert sorted(runs) == ["rice__a0", "rice__a1", "toy__a0", "toy__a1"] and manifest["unfinished"] == []
    assert manifest["not_paperbench_papers"] == ["toy"]  # `rice` is one of PaperBench's papers
    group = out / "runs" / manifest["run_group_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-GMT_run-group_klong", manifest["run_group_id"])
    assert sorted(p.name for p in group.iterdir()) == sorted(r["run_id"] for r in runs.values())

    # the direct-submission layout: <paper_id>/<one folder per submission>, each a copy of the submission
    assert sorted(str(p.relative_to(out / "submissions")) for p in (out / "submissions").glob("*/*")) == [
        "rice/submission", "rice/submission_a1", "toy/submission", "toy/submission_a1"]  # fmt: skip
    for name, r in runs.items():
        submission = export_run.run_dir / "workspaces" / name / "submission"
        assert files(out / r["direct_submission"]) == files(submission)
        # the run-group layout
        paper, _, rest = r["run_id"].partition("_")
        assert paper == name.split("__")[0] and uuid.UUID(rest)
        run = out / r["run_dir"]
        metadata = json.loads((run / "metadata.json").read_text())
        assert set(metadata) == {"run_id", "time_start", "time_end", "error_msg", "runtime_in_seconds", "status_exists"}
        assert metadata["run_id"] == r["run_id"] and metadata["error_msg"] is None
        status = json.loads((run / "status.json").read_text())
        assert status["status"] == "done" and status["created_at"] <= status["agent_finished_at"]
        (stamp,) = (run / "submissions").iterdir()
        assert TIMESTAMP.match(stamp.name) and datetime.strptime(stamp.name, "%Y-%m-%dT%H-%M-%S-%Z")
        assert sorted(p.name for p in stamp.iterdir()) == ["log.json", "submission.tar.gz"]
        assert out / r["submission"] == stamp / "submission.tar.gz"
        assert tar_files(stamp / "submission.tar.gz") == {f"submission/{k}": v for k, v in files(submission).items()}
        log = (run / "agent.log").read_text()
        assert "python3 run.py > result.txt" in log and "[a page of the paper" in log
        grade = run / "grade.json"
        assert grade.exists() == (name in export_run.graded)
        if grade.exists():
            g = json.loads(grade.read_text())
            klong_grade = json.loads(export_run.graded[name].read_text())
            pr = g["paperbench_result"]
            assert g["score"] == klong_grade["score"] == pr["judge_output"]["score"]
            assert pr["paper_id"] == paper and pr["run_id"] == r["run_id"] and pr["agent_output"] == metadata
            assert pr["judge_output"]["graded_task_tree"]["id"] == "root" and pr["submission_exists"]
            assert pr["monitor_ran"]
            violations = pr["monitor_result"]["violations"]
            assert bool(violations) == (paper == "rice")  # only rice's blacklist holds the cited repository
            for v in violations:
                assert v["violation"] == LEAKED
                line = log.splitlines()[v["line_number"] - 1]
                assert LEAKED in line and "git clone" in line
    graded_scores = {n: runs[n]["score"] for n in export_run.graded}
    assert graded_scores["rice__a0"] == 0.0 and graded_scores["toy__a0"] > 0  # rice was disqualified by its monitor


def test_a_second_export_is_the_same_bytes_and_foreign_folders_are_refused(export_run, tmp_path):
    out = tmp_path / "pb"
    first = export(export_run.run_dir, out)
    before = files(out)
    second = export(export_run.run_dir, out)  # an earlier export is replaced
    assert files(out) == before and first["runs"] == second["runs"]

    (out / "runs" / first["run_group_id"] / "group.log").write_text("PaperBench graded the group here\n")
    result = runner.invoke(app, ["export", "paperbench", str(export_run.run_dir), "--out", str(out)])
    assert result.exit_code == 2 and "group.log" in result.output, result.output  # its results are never deleted
    assert (out / "runs" / first["run_group_id"] / "group.log").exists()

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for args, needle in [
        (["export", "paperbench", str(export_run.run_dir), "--out", str(foreign)], "mine"),
        (["export", "paperbench", str(tmp_path / "nothing"), "--out", str(tmp_path / "x")], "nothing"),
        (["export", "paperbench", str(export_run.tasks), "--out", str(tmp_path / "x")], "trajectories"),
        (["export", "paperbench", str(export_run.run_dir), "--out", str(tmp_path / "x"), "--run-group-id", "a/b"],
         "--run-group-id"),
        (["export", "paperbench", str(export_run.run_dir), "--out", str(tmp_path / "x"), "--paper-id", ".."],
         "--paper-id"),
    ]:  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and needle in result.output, result.output
    assert files(foreign) == {"notes.txt": b"keep me"} and not (tmp_path / "x").exists()
    assert not any(p.name.startswith(".pb.export") or p.name.startswith(".x.export") for p in tmp_path.iterdir())


def test_runs_without_a_submission_and_unfinished_runs(export_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(export_run.run_dir, run_dir)
    shutil.rmtree(run_dir / "workspaces" / "toy__a1" / "submission")
    traj = read_trajectory(run_dir / "trajectories" / "rice__a1.json")
    traj.stop_reason, traj.id = None, "rice__a2"  # still running (or killed): not exported
    write_trajectory(run_dir / "trajectories" / "rice__a2.json", traj)
    result = runner.invoke(app, ["export", "paperbench", str(run_dir), "--out", str(tmp_path / "pb")])
    assert result.exit_code == 0, result.output
    assert "rice__a2.json is unfinished" in result.output
    manifest = json.loads((tmp_path / "pb" / "klong-export.json").read_text())
    (toy1,) = [r for r in manifest["runs"] if r["klong_run"] == "toy__a1"]
    assert toy1["submission"] is None and toy1["direct_submission"] is None
    run = tmp_path / "pb" / toy1["run_dir"]
    assert sorted(p.name for p in run.iterdir()) == ["agent.log", "grade.json", "metadata.json", "status.json"]
    assert json.loads((run / "grade.json").read_text())["paperbench_result"]["submission_exists"] is False
    assert not (tmp_path / "pb" / "submissions" / "toy" / "submission_a1").exists()
    assert manifest["unfinished"] == [str(run_dir / "trajectories" / "rice__a2.json")]


def test_paperbench_reads_the_export(export_run, paperbench_code, tmp_path, monkeypatch):
    """PaperBench's own functions, run on the exported folders (and on klong's task dirs as PaperBench papers)."""
    pb = paperbench_code
    out = tmp_path / "pb"
    manifest = export(export_run.run_dir, out)
    data = tmp_path / "paperbench-data"
    for task_id in ("rice", "toy"):  # klong's task dirs are PaperBench paper folders: its registry reads them
        (data / "papers" / task_id).mkdir(parents=True)
        for f in (export_run.tasks / task_id).iterdir():
            (data / "papers" / task_id / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("PAPERBENCH_DATA_DIR", str(data))
    pb.load("paperbench/utils.py", ["DATA_DIR_ENV_VAR", "PaperbenchDataNotFoundError", "get_root", "load_yaml_dict",
                                    "get_paperbench_data_dir", "build_canonical_sub_path"], module="paperbench.utils")  # fmt: skip
    registry = pb.load("paperbench/paper_registry.py", ["Paper", "PaperRegistry", "paper_registry"],
                       module="paperbench.paper_registry").paper_registry  # fmt: skip
    assert registry.list_paper_ids() == ["rice", "toy"]

    # PBDirectSubmissionSolver: the folder passes its validator; each paper's submissions are found and archived
    direct = pb.load("paperbench/solvers/direct_submission/solver.py",
                     ["_iter_dir", "validate_submissions_dir_structure", "_put_folder_submission_in_canonical_path",
                      "PBDirectSubmissionSolver.paper_to_submissions"])  # fmt: skip
    solver = SimpleNamespace(submissions_dir=str(out / "submissions"))
    direct.validate_submissions_dir_structure(solver, "submissions_dir")
    found = direct.paper_to_submissions(solver)
    runs = manifest["runs"]
    assert {k: sorted(v) for k, v in found.items()} == {
        p: sorted(str(out / r["direct_submission"]) for r in runs if r["paper_id"] == p) for p in ("rice", "toy")}  # fmt: skip
    for r in runs:  # the archive PaperBench makes of a direct submission holds what klong's archive holds
        theirs = tmp_path / "their-run" / r["run_id"]
        direct._put_folder_submission_in_canonical_path(str(out / r["direct_submission"]), str(theirs))
        (archive,) = theirs.glob("submissions/*/submission.tar.gz")
        assert tar_files(archive) == tar_files(out / r["submission"])

    # the run group: resume finds the runs, skips their rollouts and picks klong's archive to grade
    pb.load("paperbench/nano/utils.py", ["get_file_at_duration"], module="paperbench.nano.utils")
    structs = pb.load("paperbench/nano/structs.py", ["ReproScriptRunOutcome", "ReproductionMetadata",
                                                      "PaperBenchResult", "AgentOutput"], module="paperbench.nano.structs")  # fmt: skip
    select = pb.load("paperbench/nano/task.py", ["PBTask._select_checkpoint"])._select_checkpoint
    existing = pb.load("paperbench/solvers/utils.py", ["check_for_existing_run"]).check_for_existing_run
    run_ids = pb.load("paperbench/nano/eval.py", ["PaperBench.get_existing_run_ids"]).get_existing_run_ids
    group = manifest["run_group_id"]
    found_ids = asyncio.run(run_ids(SimpleNamespace(runs_dir=str(out / "runs")), group))
    assert found_ids == {r["run_id"] for r in runs}
    for r in runs:
        # PaperBench's resume matches a paper to an existing run by this prefix
        assert [p for p in ("rice", "toy") if r["run_id"].startswith(f"{p}_")] == [r["paper_id"]]
        task = SimpleNamespace(run_dir=str(out / r["run_dir"]), run_id=r["run_id"], run_group_id=group,
                               runs_dir=str(out / "runs"), target_duration_hr=None, skipped_rollout=False)  # fmt: skip
        path, _ = asyncio.run(select(task))
        assert Path(path) == out / r["submission"]
        agent_output = asyncio.run(existing(task))
        assert task.skipped_rollout and agent_output.status_exists
        metadata = json.loads((out / r["run_dir"] / "metadata.json").read_text())
        assert structs.AgentOutput(**metadata).model_dump() == metadata

    # grade.json: PaperBench's records rebuilt from it give back the same file
    pb.load("paperbench/rubric/tasks.py", ["VALID_TASK_CATEGORIES", "VALID_FINEGRAINED_TASK_CATEGORIES", "T_Node",
                                           "TaskNode"], module="paperbench.rubric.tasks")  # fmt: skip
    nodes = pb.load(
        "paperbench/judge/graded_task_node.py", ["GradedTaskNode"], module="paperbench.judge.graded_task_node"
    )
    usage = pb.load("paperbench/judge/token_usage.py", ["TokenUsage", "_get_leaf_node_token_usages",
                                                        "get_total_token_usage"], module="paperbench.judge.token_usage")  # fmt: skip
    judge = pb.load("paperbench/grade.py", ["JudgeOutput"], module="paperbench.grade")
    monitor = pb.load("paperbench/monitor/monitor.py", ["ViolationContext", "MonitorResult", "Monitor", "BasicMonitor"],
                      module="paperbench.monitor.monitor", extra={"unidecode": lambda s: s})  # fmt: skip
    grade_to_dict = pb.load("paperbench/nano/structs.py", ["PaperBenchGrade.to_dict"]).to_dict
    graded = [r for r in runs if r["grade"]]
    assert len(graded) == 3
    for r in graded:
        g = json.loads((out / r["grade"]).read_text())
        pr = g["paperbench_result"]
        jo = judge.JudgeOutput.from_dict(pr["judge_output"], CompleterConfig=CompleterConfig)
        assert isinstance(jo.graded_task_tree, nodes.GradedTaskNode) and jo.success and jo.score == g["score"]
        usage.get_total_token_usage(jo.graded_task_tree)  # the leaves' token usage has PaperBench's shape
        assert {k: v for k, v in jo.to_dict().items() if k != "graded_task_tree"} == {
            k: pr["judge_output"][k] for k in jo.to_dict() if k != "graded_task_tree"}  # fmt: skip
        mon = pr["monitor_result"]
        result = structs.PaperBenchResult(
            paper_id=pr["paper_id"], run_id=pr["run_id"], submission_exists=pr["submission_exists"],
            skipped_reproduction=pr["skipped_reproduction"], code_only=pr["code_only"],
            resources_provided=pr["resources_provided"], agent_output=structs.AgentOutput(**pr["agent_output"]),
            judge_output=jo, reproduction_metadata=None, monitor_ran=pr["monitor_ran"],
            monitor_result=monitor.MonitorResult(violations=[monitor.ViolationContext(**v) for v in mon["violations"]],
                                                 explanation=mon["explanation"], log_file=mon["log_file"]))  # fmt: skip
        rebuilt = result.to_dict()
        assert set(rebuilt) == set(pr)
        assert {k: v for k, v in rebuilt.items() if k != "judge_output"} == {
            k: v for k, v in pr.items() if k != "judge_output"
        }
        whole = grade_to_dict(SimpleNamespace(paperbench_result=result, score=g["score"], grader_log=g["grader_log"]))
        assert set(whole) == set(g) and whole["score"] == g["score"]

        # PaperBench's monitor on the exported agent.log finds what klong's found, on the same lines (and also the
        # command's echoed output: PaperBench reads tool results too, klong's check only the commands)
        paper = registry.get_paper(r["paper_id"])
        found = monitor.BasicMonitor(paper=paper).check_log(str(out / r["run_dir"] / "agent.log"))
        theirs = {(v.line_number, v.violation) for v in found.violations}
        assert {(v["line_number"], v["violation"]) for v in mon["violations"]} <= theirs
        assert bool(theirs) == (r["paper_id"] == "rice")

    # the README's example grading is a PaperBench judge output too
    example = json.loads((REPO / "examples" / "data" / "paperbench-grading.json").read_text())
    jo = judge.JudgeOutput.from_dict(example, CompleterConfig=CompleterConfig)
    assert jo.success and jo.score == example["score"] and usage.get_total_token_usage(jo.graded_task_tree).usage
