"""`--executor ray` on a local Ray instance (2 CPUs): the same trajectories as in-process runs, and a worker killed
with SIGKILL mid-episode still ends with every episode finished and every turn there exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import yaml

from klong.agent.config import AgentConfig
from klong.models import load_model
from klong.schema import read_trajectory
from tests.tasks import make_task

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    import ray

    from klong.rollout.ray_executor import SLOT

    ray.init(num_cpus=2, resources={SLOT: 4}, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _script(path: Path, steps: int, sleep: float) -> Path:
    turns = [{"content": "read", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]}]
    for i in range(steps):
        command = f"echo $PPID > submission/worker.pid; echo {i} >> submission/log.txt; sleep {sleep}"
        turns.append({"content": f"step {i}", "tool_calls": [{"name": "bash", "arguments": {"command": command}}]})
    turns.append({"content": "done", "tool_calls": [{"name": "end_task", "arguments": {}}]})
    path.write_text(yaml.safe_dump({"turns": turns}))
    return path


def _run(tasks, script, out, executor=None, attempts=1):
    from klong.rollout.runner import run_rollouts

    config = AgentConfig(clock="virtual", time_limit=3600)
    return asyncio.run(run_rollouts(tasks, model_factory=lambda: load_model(f"scripted:{script}"), sandbox="local",
                                    config=config, out_dir=out, attempts=attempts, concurrency=8, executor=executor))  # fmt: skip


def _messages(out: Path, run_id: str):
    traj = read_trajectory(out / "trajectories" / f"{run_id}.json")
    root = str(out.resolve())
    return traj.stop_reason, [(m.role, (m.content or "").replace(root, "<RUN>"),
                               [(c.id, c.function.name, c.function.arguments) for c in m.tool_calls or []],
                               m.tool_call_id, m.virtual_time) for m in traj.messages]  # fmt: skip


def test_32_episodes_on_ray_equal_the_local_runs(ray_session, tmp_path):
    from klong.rollout.ray_executor import RayExecutor

    tasks = [make_task(tmp_path / "tasks", task_id=f"t{i}", paragraphs=2) for i in range(4)]
    script = _script(tmp_path / "s.yaml", steps=2, sleep=0)
    local = _run(tasks, script, tmp_path / "local", attempts=8)
    factory = lambda: load_model(f"scripted:{script}")  # noqa: E731
    executor = RayExecutor(factory, num_cpus=0.25)
    on_ray = _run(tasks, script, tmp_path / "ray", executor=executor, attempts=8)
    asyncio.run(executor.close())
    assert len(local) == len(on_ray) == 32
    pids = set()
    for s in local:
        assert _messages(tmp_path / "ray", s.run_id) == _messages(tmp_path / "local", s.run_id)
        pids.add((tmp_path / "ray" / "workspaces" / s.run_id / "submission" / "worker.pid").read_text())
    assert str(os.getpid()) not in {p.strip() for p in pids}  # the episodes ran in Ray's workers, not here


def test_a_worker_killed_mid_episode_is_continued_not_restarted(ray_session, tmp_path):
    from klong.rollout.ray_executor import RayExecutor

    task = make_task(tmp_path / "tasks", task_id="toy", paragraphs=2)
    script = _script(tmp_path / "s.yaml", steps=8, sleep=0.4)
    out = tmp_path / "ray"
    pid_file = out / "workspaces" / "toy__a0" / "submission" / "worker.pid"
    log = out / "workspaces" / "toy__a0" / "submission" / "log.txt"
    killed: list[int] = []

    async def kill_when_half_done():  # the third command has logged and is sleeping: killed mid-command
        while not (log.exists() and len(log.read_text().split()) >= 3):
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        assert "ray" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").lower()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    async def main():
        from klong.rollout.runner import run_rollouts

        factory = lambda: load_model(f"scripted:{script}")  # noqa: E731
        executor = RayExecutor(factory, num_cpus=0.25)
        killer = asyncio.ensure_future(kill_when_half_done())
        try:
            return await run_rollouts([task], model_factory=factory, sandbox="local",
                                      config=AgentConfig(clock="virtual", time_limit=3600), out_dir=out,
                                      executor=executor)  # fmt: skip
        finally:
            killer.cancel()
            await executor.close()

    (summary,) = asyncio.run(main())
    assert killed and summary.stop_reason == "end_task"
    traj = read_trajectory(out / "trajectories" / "toy__a0.json")
    calls = [c.id for m in traj.messages if m.role == "assistant" for c in m.tool_calls or []]
    assert len(calls) == len(set(calls)) == 10  # read, 8 steps, end: each turn once, none lost or repeated
    results = [m.tool_call_id for m in traj.messages if m.role == "tool"]
    assert sorted(results) == sorted(calls[:-1]) or sorted(results) == sorted(calls)
    assert any("interrupted" in (m.content or "") for m in traj.messages if m.role == "tool")  # the killed command
    assert int(pid_file.read_text()) != killed[0]  # the rest ran in another worker


def test_klong_run_executor_ray(ray_session, tmp_path):
    from typer.testing import CliRunner

    from klong.cli import app

    runner = CliRunner()
    for i in range(2):
        make_task(tmp_path / "tasks", task_id=f"t{i}", paragraphs=2)
    script = _script(tmp_path / "s.yaml", steps=1, sleep=0)
    common = ["run", str(tmp_path / "tasks"), "--model", f"scripted:{script}", "--clock", "virtual", "--attempts", "2"]
    r = runner.invoke(app, [*common, "--out", str(tmp_path / "ray"), "--executor", "ray"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*common, "--out", str(tmp_path / "local")])
    assert r.exit_code == 0, r.output
    for run_id in ("t0__a0", "t0__a1", "t1__a0", "t1__a1"):
        assert _messages(tmp_path / "ray", run_id) == _messages(tmp_path / "local", run_id)
    bad = runner.invoke(app, [*common, "--out", str(tmp_path / "bad"), "--executor", "slurm"])
    assert bad.exit_code == 2 and "--executor 'slurm': expected local or ray" in bad.output
    assert not (tmp_path / "bad").exists()


def test_klong_eval_on_ray_grades_what_the_workers_ran(ray_session, tmp_path_factory):
    """`klong eval paperbench --executor ray`: the episodes (reproduce.sh written by the agent) run on Ray's workers,
    reproduction and judge on the driver; the results equal an in-process evaluation's."""
    import json

    from typer.testing import CliRunner

    from klong.cli import app
    from klong.models.fake_openai import FakeOpenAIServer
    from tests.eval.test_paperbench import _args, build_bench, judge

    tmp, data, script = build_bench(tmp_path_factory.mktemp("pb"))
    runner = CliRunner()
    docs = {}
    for executor in ("local", "ray"):
        with FakeOpenAIServer(judge) as server:
            r = runner.invoke(
                app, [*_args(tmp, data, script, server, tmp / executor, "--executor", executor), "--json"]
            )
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        docs[executor] = (doc["overall"], [(t["task_id"], t["scores"]) for t in doc["per_task"]])
    assert docs["ray"] == docs["local"] and docs["ray"][0]["mean"] == 1.0
