"""The demo: its synthetic tasks, the scripted teacher through the real runtime and judge, and `klong demo --quick`."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from typer.testing import CliRunner

from klong.cli import app
from klong.demo.pipeline import DemoConfig
from klong.demo.tasks import Experiment, make_experiments, make_task, parse_experiments
from klong.demo.teacher import TeacherModel
from klong.judge.check import CheckJudge
from klong.judge.grade import grade_submission
from klong.rollout.runner import read_summaries, run_rollouts
from klong.rubric.tree import parse_rubric
from klong.schema import read_trajectory


def test_tasks_are_deterministic_and_state_their_settings_only_in_the_paper(tmp_path):
    a, exps = make_task(tmp_path / "a", "t000", seed=5, experiments=6, log_steps=4)
    b, _ = make_task(tmp_path / "b", "t000", seed=5, experiments=6, log_steps=4)
    c, _ = make_task(tmp_path / "c", "t000", seed=6, experiments=6, log_steps=4)
    assert a.paper == b.paper and a.rubric == b.rubric
    assert a.paper != c.paper
    assert parse_experiments(a.paper) == exps
    # each run's seed comes from its own block of ten, and appears nowhere but in the paper
    assert [e.seed // 10 for e in exps] == [1, 2, 3, 4, 5, 6]
    assert all(str(e.seed) in a.paper for e in exps)
    root = parse_rubric(a.rubric)
    assert len(root.sub_tasks) == 6 and all(len(n.sub_tasks) == 3 for n in root.sub_tasks)
    categories = sorted(leaf.task_category for leaf in root.sub_tasks[0].sub_tasks)
    assert categories == ["Code Development", "Code Execution", "Result Analysis"]
    # the workspace gets the experiment script from the task config, never the rubric
    assert a.config["klong"]["workspace"] == {"tools/run_exp.py": "assets/run_exp.py"}


def test_make_experiments_draws_from_the_seed():
    assert make_experiments(random.Random(1), 4) == make_experiments(random.Random(1), 4)
    assert all(isinstance(e, Experiment) and e.seed // 10 == e.index for e in make_experiments(random.Random(2), 9))
    with pytest.raises(ValueError, match="1 to 9 experiments"):
        make_experiments(random.Random(0), 10)


def _teacher_run(tmp_path, mistake_rate: float, seed: int = 0, hours: float | None = None):
    config = DemoConfig(experiments=3, log_steps=5, mistake_rate=mistake_rate)
    task, exps = make_task(tmp_path / "tasks", "t001", seed=11, experiments=3, log_steps=5)
    out = tmp_path / "runs"
    asyncio.run(run_rollouts([task], model_factory=lambda: TeacherModel(seed=seed, mistake_rate=mistake_rate),
                             sandbox="local", config=config.agent(hours * 3600 if hours else config.full_time), out_dir=out))  # fmt: skip
    summary = read_summaries(out)[0]
    grade = asyncio.run(grade_submission(out / summary.workspace / "submission", task, CheckJudge()))
    return task, exps, read_trajectory(out / summary.trajectory), grade


def test_teacher_reads_the_paper_first_and_solves_the_task(tmp_path):
    _, exps, traj, grade = _teacher_run(tmp_path, mistake_rate=0.0)
    assert traj.stop_reason.value == "end_task"
    calls = [m.tool_calls[0].function for m in traj.messages if m.role == "assistant"]
    assert calls[0].name == "read_paper"
    commands = [c.parsed_arguments()["command"] for c in calls if c.name == "bash"]
    assert commands[0] == "mkdir -p submission/results"
    assert commands[1::2] == [f"tools/run_exp.py --exp {e.index} --seed {e.seed}" for e in exps]
    # each result is the metric the run printed, copied from its log
    logs = [m.content for m in traj.messages if m.role == "tool" and (m.content or "").startswith("config: ")]
    metrics = [log.split("final metric ")[1].split()[0] for log in logs]
    assert commands[2::2] == [
        f"echo {v} > submission/results/exp{e.index}.txt" for v, e in zip(metrics, exps, strict=True)
    ]
    assert grade["score"] == 1.0
    # 30 virtual minutes per experiment
    assert traj.virtual_time >= 3 * 1800


def test_teacher_mistakes_are_recovered_and_graded_as_such(tmp_path):
    _, _, traj, grade = _teacher_run(tmp_path, mistake_rate=1.0, seed=3, hours=10)
    commands = [m.tool_calls[0].function.parsed_arguments()["command"] for m in traj.messages
                if m.role == "assistant" and m.tool_calls[0].function.name == "bash"]  # fmt: skip
    runs = [c for c in commands if "run_exp" in c]
    assert len(runs) == 6  # every experiment run once with a neighbour's seed, then again with the paper's
    assert any("but the paper gives seed" in (m.content or "") for m in traj.messages)
    assert grade["score"] == 1.0


def test_a_teacher_that_errs_too_often_runs_out_of_time_and_loses_points(tmp_path):
    _, _, traj, grade = _teacher_run(tmp_path, mistake_rate=1.0, seed=3)
    assert traj.stop_reason.value == "timeout"
    assert grade["score"] < 1.0


@pytest.mark.slow
def test_quick_demo_runs_end_to_end_and_reports_numbers_from_its_files(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--seed", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    labels = [row["label"] for row in report["rows"]]
    assert labels[:3] == ["truncation SFT (basic)", "sliding-window SFT", "trajectory-splitting SFT"]
    assert [label.split(" (")[0] for label in labels[3:]] == ["+ RL stage 1", "+ RL stage 2"]
    # every score in the report is the mean of the grade files of that evaluation run
    for row in report["rows"]:
        grades = sorted((out / "eval" / row["name"] / "grades").glob("*.json"))
        assert len(grades) == report["config"]["eval_tasks"]
        scores = [json.loads(g.read_text())["score"] for g in grades]
        assert row["score_mean"] == pytest.approx(sum(scores) / len(scores))
        # the three leaves of an experiment weigh the same, so the score is the mean of the per-category leaf scores
        assert sorted(row["leaves"]) == ["result", "run", "seed"]
        assert row["score_mean"] == pytest.approx(sum(row["leaves"].values()) / 3)
    # the splitting policies differ as designed: truncate keeps one window per trajectory
    windows = report["windows"]
    assert windows["truncate"]["windows"] == report["teacher"]["kept"]
    assert windows["epoch"]["trained_tokens"] == windows["sliding"]["trained_tokens"]
    assert windows["epoch"]["windows"] > windows["truncate"]["windows"]
    for name in ("report.md", "sft_loss.png", "scores.png", "rl_reward.png"):
        assert (out / name).stat().st_size > 0
    assert "| trajectory-splitting SFT |" in (out / "report.md").read_text()
    # the report is printed as written (its markdown links are not taken for console markup)
    assert "[sft_loss.png](sft_loss.png)" in result.output
