import json

import pytest
from typer.testing import CliRunner

from klong.cli import app
from klong.data.select import SelectConfig, monitor_hits, select_runs, write_selection
from klong.data.stats import trajectory_files
from klong.exceptions import ConfigError, StopReason
from klong.schema import Message, ToolCall, ToolFunction, Trajectory, read_trajectory, write_trajectory

runner = CliRunner()
REPO = "https://github.com/tinylab-ml/gatenorm"


def _traj(run_id, task, stop=StopReason.END_TASK, commands=(), detail=None):
    msgs = [Message(role="system", content="sys"), Message(role="user", content="task")]
    for i, cmd in enumerate(commands):
        msgs.append(
            Message(
                role="assistant",
                content=None,
                tool_calls=[ToolCall(id=f"c{i}", function=ToolFunction(name="bash", arguments={"cmd": cmd}))],
            )
        )
        msgs.append(Message(role="tool", content="ok", tool_call_id=f"c{i}"))
    return Trajectory(id=run_id, task_id=task, messages=msgs, stop_reason=stop, stop_detail=detail)


def _run_dir(root, runs):
    """runs: run_id -> (trajectory, grade or None)."""
    for run_id, (traj, grade) in runs.items():
        write_trajectory(root / "trajectories" / f"{run_id}.json", traj)
        bl = root / "workspaces" / run_id / "paper" / "blacklist.txt"
        bl.parent.mkdir(parents=True, exist_ok=True)
        bl.write_text(REPO + "\n")
        if grade is not None:
            (root / "grades").mkdir(exist_ok=True)
            (root / "grades" / f"{run_id}.json").write_text(json.dumps(grade))
    return root


def _grade(score, invalid=0, disqualified=None):
    return {
        "score": score,
        "num_leaf_nodes": 10,
        "num_invalid_leaf_nodes": invalid,
        "klong": {"disqualified": disqualified},
    }


@pytest.fixture
def runs(tmp_path):
    return _run_dir(tmp_path / "run", {
        "t1__a0": (_traj("t1__a0", "t1"), _grade(0.9)),
        "t1__a1": (_traj("t1__a1", "t1"), _grade(0.7)),
        "t1__a2": (_traj("t1__a2", "t1", StopReason.TIMEOUT), _grade(0.8)),
        "t2__a0": (_traj("t2__a0", "t2"), _grade(0.3)),
        "t2__a1": (_traj("t2__a1", "t2"), _grade(0.95, invalid=2)),
        "t2__a2": (_traj("t2__a2", "t2", StopReason.MODEL_ERROR, detail="HTTP 503 after retries"), _grade(0.99)),
        "t2__a3": (_traj("t2__a3", "t2", commands=["pip install git+https://github.com/tinylab-ml/gatenorm.git"]),
                   _grade(1.0)),
        "t3__a0": (_traj("t3__a0", "t3", StopReason.MAX_TURNS), _grade(0.9)),
        "t3__a1": (_traj("t3__a1", "t3"), None),
        "t3__a2": (_traj("t3__a2", "t3"), _grade(0.9, disqualified="blacklisted resource fetched")),
    })  # fmt: skip


def test_every_decision_has_the_right_reason(runs):
    ds = {d.run_id: d for d in select_runs([runs], SelectConfig(threshold=0.75))}
    assert {k for k, d in ds.items() if d.decision == "selected"} == {"t1__a0", "t1__a2"}
    assert ds["t1__a0"].reason == "score 0.9000 reaches the threshold 0.75"
    assert ds["t1__a1"].kind == "threshold" and "below the threshold 0.75" in ds["t1__a1"].reason
    assert ds["t2__a1"].decision == "regrade" and ds["t2__a1"].kind == "invalid-grade"
    assert (
        "2 of 10 leaves were not validly graded" in ds["t2__a1"].reason and "never counted as 0" in ds["t2__a1"].reason
    )
    assert ds["t2__a2"].kind == "infrastructure" and "model_error (HTTP 503 after retries)" in ds["t2__a2"].reason
    assert ds["t2__a3"].kind == "monitor" and "git+https://github.com/tinylab-ml/gatenorm" in ds["t2__a3"].reason
    assert ds["t3__a0"].kind == "stop" and "max_turns, not by end_task or timeout" in ds["t3__a0"].reason
    assert ds["t3__a1"].decision == "regrade" and ds["t3__a1"].kind == "ungraded"
    assert ds["t3__a2"].kind == "disqualified"


def test_best_of_k_and_floor(runs):
    ds = {d.run_id: d for d in select_runs([runs], SelectConfig(best_of_k=1, floor=0.5))}
    assert ds["t1__a0"].decision == "selected" and "rank 1 of 3 of task t1 (best-of-1)" in ds["t1__a0"].reason
    assert ds["t1__a2"].kind == "best-of-k" and "rank 2 of 3 eligible runs of task t1" in ds["t1__a2"].reason
    assert ds["t2__a0"].kind == "floor" and "below the floor 0.5" in ds["t2__a0"].reason  # the best of t2, yet too low
    two = {d.run_id for d in select_runs([runs], SelectConfig(best_of_k=2, floor=0.5)) if d.decision == "selected"}
    assert two == {"t1__a0", "t1__a2"}
    with pytest.raises(ConfigError):
        select_runs([runs], SelectConfig())


@pytest.mark.parametrize("cmd", [
    "git clone git@github.com:tinylab-ml/gatenorm.git", "curl -L https://codeload.github.com/tinylab-ml/gatenorm/zip/main",
    "wget https://raw.githubusercontent.com/tinylab-ml/gatenorm/main/train.py",
    "git clone https://github.com/tinylab-ml/gatenorm", "pip install git+ssh://git@github.com/tinylab-ml/gatenorm",
])  # fmt: skip
def test_monitor_catches_every_fetch_form(cmd):
    assert monitor_hits(_traj("r", "t", commands=[cmd]), [REPO])
    assert not monitor_hits(_traj("r", "t", commands=["pip install git+https://github.com/other/lib"]), [REPO])
    recorded = _traj("r", "t")
    recorded.meta["monitor"] = {"blacklist_violations": [{"resource": REPO, "line": "git clone ..."}]}
    assert monitor_hits(recorded, [])


def test_write_selection_and_cli_output_is_ready_for_split(runs, tmp_path):
    out = tmp_path / "selected"
    result = runner.invoke(app, ["select", str(runs), "--grades", str(runs / "grades"), "--out", str(out),
                                 "--threshold", "0.75", "--best-of-k", "1", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["selected"] == 1 and summary["regrade"] == 2 and summary["runs"] == 10
    assert [p.name for p in trajectory_files(out)] == ["t1__a0.json"]
    assert read_trajectory(out / "trajectories" / "t1__a0.json").id == "t1__a0"
    rows = [json.loads(line) for line in (out / "selection.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and all(r["reason"] for r in rows)
    assert "t2__a1" in (out / "regrade.txt").read_text() and "t3__a1" in (out / "regrade.txt").read_text()
    report = (out / "selection.md").read_text()
    assert "| monitor | 1 |" in report and "| t1 | 3 | 1 | 0.9000 |" in report
    bad = runner.invoke(app, ["select", str(runs), "--out", str(out)])
    assert bad.exit_code == 2 and "threshold" in bad.output


def test_two_run_dirs_with_the_same_run_ids(tmp_path):
    a = _run_dir(tmp_path / "a", {"t__a0": (_traj("t__a0", "t"), _grade(1.0))})
    b = _run_dir(tmp_path / "b", {"t__a0": (_traj("t__a0", "t"), _grade(1.0))})
    write_selection(select_runs([a, b], SelectConfig(threshold=0.5)), tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "trajectories").iterdir()) == ["b__t__a0.json", "t__a0.json"]
