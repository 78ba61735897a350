"""A run killed with SIGKILL at arbitrary moments resumes to the same result as an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import yaml

from klong.schema import read_trajectory
from tests.tasks import make_task


def _script(path):
    turns = [
        {"content": f"Reading {p}.", "tool_calls": [{"name": "read_paper", "arguments": {"page": p}}]} for p in (1, 2)
    ]
    for i in range(10):
        command = f"sleep 0.12; echo {i} > submission/step_{i}.txt; echo ok {i}"
        turns.append({"content": f"Step {i}.", "tool_calls": [{"name": "bash", "arguments": {"command": command}},
                                                               {"name": "write_file", "arguments": {"path": f"submission/w{i}.txt", "content": str(i)}}]})  # fmt: skip
        if i == 4:
            turns.append({"content": "Thinking, no tool."})
    turns.append({"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {"summary": "all steps"}}]})
    path.write_text(yaml.safe_dump({"turns": turns}))
    return path


def _klong(*args):
    return subprocess.Popen([sys.executable, "-m", "klong", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _comparable(out_dir):
    traj = read_trajectory(out_dir / "trajectories" / "toy__a0.json")
    root = str(out_dir.resolve())
    messages = [(m.role, (m.content or "").replace(root, "<RUN>"), [(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []],
                 m.tool_call_id, m.virtual_time) for m in traj.messages]  # fmt: skip
    ws = out_dir / "workspaces" / "toy__a0" / "submission"
    files = {p.name: p.read_text() for p in sorted(ws.iterdir())}
    return traj.stop_reason, traj.virtual_time, messages, files


def _saved_messages(path) -> int:
    try:
        return len(json.loads(path.read_text())["messages"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    make_task(tmp_path / "tasks", paragraphs=6)
    script = _script(tmp_path / "script.yaml")
    # a command killed while running is run again (`rerun`), so that the result equals the uninterrupted run's
    common = [str(tmp_path / "tasks" / "toy"), "--model", f"scripted:{script}", "--clock", "virtual",
              "-c", "page_chars=1500", "-c", "time_limit=36000", "-c", "interrupted_calls=rerun"]  # fmt: skip
    reference = tmp_path / "reference"
    assert _klong("run", *common, "--out", str(reference)).wait(60) == 0

    killed = tmp_path / "killed"
    traj_path = killed / "trajectories" / "toy__a0.json"
    kills, seen = 0, 0
    for attempt in range(12):
        # SIGKILL once the run has saved a few more messages than the last attempt left (progress, then a hard stop)
        proc = _klong("run", *common, "--out", str(killed), *(["--resume"] if attempt else []))
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            count = _saved_messages(traj_path)
            if count >= seen + 3 and kills < 3:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                seen = count
                break
            time.sleep(0.005)
        if proc.returncode is not None and proc.returncode < 0:
            continue
        assert proc.wait(60) == 0, proc.stderr.read().decode()
        break
    else:
        raise AssertionError("the run never finished")
    assert kills >= 2
    assert _comparable(killed) == _comparable(reference)
    summaries = (killed / "summaries.jsonl").read_text().splitlines()
    assert len(summaries) == 1 and json.loads(summaries[0])["stop_reason"] == "end_task"
    # a finished run is skipped; --redo runs it again
    t0 = time.monotonic()
    assert _klong("run", *common, "--out", str(killed), "--resume").wait(60) == 0
    assert len((killed / "summaries.jsonl").read_text().splitlines()) == 1 and time.monotonic() - t0 < 30


def test_a_call_killed_while_running_is_reported_not_silently_rerun(tmp_path):
    """By default (`interrupted_calls: report`) a command that was running when klong was killed is not run again on
    resume: the model is told it was interrupted and may have partly run."""
    make_task(tmp_path / "tasks", paragraphs=2)
    turns = [{"content": "Read.", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]},
             {"content": "Long.", "tool_calls": [{"name": "bash", "arguments": {"command": "echo once >> submission/log; sleep 30"}}]},
             {"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {}}]}]  # fmt: skip
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"turns": turns}))
    out = tmp_path / "run"
    common = [str(tmp_path / "tasks" / "toy"), "--model", f"scripted:{script}", "--clock", "virtual", "--out", str(out)]
    proc = _klong("run", *common)
    log = out / "workspaces" / "toy__a0" / "submission" / "log"
    deadline = time.monotonic() + 60
    while not log.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _klong("run", *common, "--resume").wait(60) == 0
    traj = read_trajectory(out / "trajectories" / "toy__a0.json")
    results = [m.content for m in traj.messages if m.role == "tool"]
    assert traj.stop_reason.value == "end_task" and any("[interrupted" in r for r in results)
    assert log.read_text() == "once\n"  # not run a second time
