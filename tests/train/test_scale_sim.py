"""benchmarks/scale_sim.py: klong's RL scheduler (trainer loop, rollout runner, judge queue) on a virtual clock."""

import importlib.util
from pathlib import Path

import pytest

from tests.shared import shared_path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale_sim.py"


def _load():
    spec = importlib.util.spec_from_file_location("scale_sim", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not shared_path("trajectories", "swe-agent").exists(), reason="../shared/data is absent")
def test_scale_sim_runs_the_trainer_schedule_and_compares(tmp_path, capsys):
    sim = _load()
    result = sim.main(["--rollouts", "240", "--stages", "1", "2", "--judge-workers", "4", "--leaf-concurrency", "8",
                       "--step-seconds", "600", "--json", str(tmp_path / "sim.json")])  # fmt: skip
    rows = {r["schedule"]: r for r in result["rows"]}
    sync, timed, klong = rows["synchronous"], rows["synchronous + timeouts"], rows["klong"]
    for row in rows.values():  # RLTrainer._iteration's own records: one per stage, every rollout graded and trained
        assert [r["stage"] for r in row["records"]] == [0, 1]
        assert all(r["rollouts"] == 240 and r["windows"] == 240 for r in row["records"])
    # the same rollouts in both timed schedules: the stage timeouts cut the same ones, at the timeout
    assert [r["timeout_share"] for r in timed["records"]] == [r["timeout_share"] for r in klong["records"]]
    for r in klong["records"]:
        assert 0 < r["timeout_share"] < 1 and r["rollout_seconds"] == pytest.approx(r["timeout"])
    assert sync["timeout_share"] == 0  # no timeouts: every rollout ran until it ended itself
    # grading beside the running rollouts: graded sooner, the judge less idle, the run no longer
    assert klong["grade_wait_mean_hours"] < timed["grade_wait_mean_hours"]
    for k, t in zip(klong["records"], timed["records"], strict=True):  # less grading left when the last rollout ends
        assert k["grading_tail_seconds"] < t["grading_tail_seconds"]
    assert klong["judge_idle_worker_hours"] < timed["judge_idle_worker_hours"] < sync["judge_idle_worker_hours"]
    assert klong["hours"] <= timed["hours"] < sync["hours"]
    assert klong["trainer_busy_hours"] == timed["trainer_busy_hours"] == pytest.approx(2 * 600 / 3600)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("ratio judge idle time klong/synchronous + timeouts:")  # ratios printed last
    assert (tmp_path / "sim.json").exists()
