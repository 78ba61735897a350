"""A real multi-node Ray cluster on one machine (`ray.cluster_utils.Cluster`: a head and two worker nodes, each its
own raylet and workers): episodes are spread over the nodes' sandbox slots, and a whole node lost mid-episode leaves
every episode finished on the surviving node with every turn exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from klong.agent.config import AgentConfig
from klong.models import load_model
from klong.schema import read_trajectory
from tests.rollout.test_ray import _script
from tests.tasks import make_task

pytestmark = pytest.mark.ray


@pytest.fixture
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    from klong.rollout.ray_executor import SLOT

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes = [c.add_node(num_cpus=1, resources={SLOT: 2}) for _ in range(2)]  # the sandboxes run here, not on the head
    ray.init(address=c.address, log_to_driver=False)
    yield c, nodes
    ray.shutdown()
    c.shutdown()


def _node_of(nodes, pid: int) -> str:
    """The node whose raylet the worker process `pid` descends from (/proc, no dashboard needed)."""
    raylets = {n.all_processes["raylet"][0].process.pid: n.node_id for n in nodes}
    while pid > 1:
        if pid in raylets:
            return raylets[pid]
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    raise AssertionError("not a worker of these nodes")


def test_a_node_lost_mid_episode_is_continued_on_another(cluster, tmp_path):
    from klong.rollout.ray_executor import RayExecutor
    from klong.rollout.runner import run_rollouts

    c, nodes = cluster
    tasks = [make_task(tmp_path / "tasks", task_id=f"t{i}", paragraphs=2) for i in range(4)]
    script = _script(tmp_path / "s.yaml", steps=8, sleep=0.5)
    out = tmp_path / "run"
    sub = lambda rid: out / "workspaces" / rid / "submission"  # noqa: E731
    first_nodes: dict[str, str] = {}
    lost: list[str] = []

    async def lose_a_node():  # every episode has started; t0's third command is running: its node goes away
        rids = [f"t{i}__a0" for i in range(4)]
        log = sub("t0__a0") / "log.txt"
        while (
            not all((sub(r) / "worker.pid").exists() for r in rids)
            or not log.exists()
            or len(log.read_text().split()) < 3
        ):
            await asyncio.sleep(0.05)
        for r in rids:
            first_nodes[r] = _node_of(nodes, int((sub(r) / "worker.pid").read_text()))
        victim = next(n for n in nodes if n.node_id == first_nodes["t0__a0"])
        await asyncio.to_thread(c.remove_node, victim)
        lost.append(victim.node_id)

    async def main():
        factory = lambda: load_model(f"scripted:{script}")  # noqa: E731
        executor = RayExecutor(factory, num_cpus=0.25)
        executor.start()
        import ray

        here = ray.get_runtime_context().get_node_id()
        queue = executor._queue.actor
        assert ray.get(queue.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())) == here
        chaos = asyncio.ensure_future(lose_a_node())
        try:
            return await run_rollouts(tasks, model_factory=factory, sandbox="local", concurrency=4, out_dir=out,
                                      config=AgentConfig(clock="virtual", time_limit=3600), executor=executor)  # fmt: skip
        finally:
            chaos.cancel()
            await executor.close()

    summaries = asyncio.run(main())
    assert lost, "the node was never removed"
    assert set(first_nodes.values()) == {n.node_id for n in nodes}  # spread over both nodes' slots
    assert sorted(s.stop_reason for s in summaries) == ["end_task"] * 4
    moved = [r for r, n in first_nodes.items() if n == lost[0]]
    assert "t0__a0" in moved
    for r in first_nodes:
        traj = read_trajectory(out / "trajectories" / f"{r}.json")
        calls = [c.id for m in traj.messages if m.role == "assistant" for c in m.tool_calls or []]
        assert len(calls) == len(set(calls)) == 10, r  # read, 8 steps, end: none lost or repeated
        log = (sub(r) / "log.txt").read_text().split()
        assert sorted(set(log)) == [str(i) for i in range(8)], r  # every step's command ran (a killed one again)
    survivor = [n for n in nodes if n.node_id != lost[0]]
    for r in moved:  # finished on the surviving node
        assert _node_of(survivor, int((sub(r) / "worker.pid").read_text())) == survivor[0].node_id
