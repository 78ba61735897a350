"""`--executor ray`: each episode a Ray task on whichever node has a free sandbox slot, its sandbox on that node.

Resources: every episode asks for `num_cpus` CPUs, `memory` bytes when set, and one `klong_sandbox` slot; a node
offers as many slots as episodes it may run at once (`ray start --resources '{"klong_sandbox": 16}'`; the local
instance started without `--ray-address` gets `sandbox_slots` of them). The run dir must be on a file system every
node sees at the same path (NFS, a mounted bucket): the driver prepares workspaces and writes summaries there, the
workers write trajectories and workspaces there.

A worker or node lost mid-episode: Ray runs the task again (`max_retries`, system failures only; an exception in
klong's code is not retried), and the new attempt continues from the trajectory file, which the episode saved after
every step, exactly as `--resume` does, so no turn is lost or repeated. Ray retries a task only once it knows the
first attempt is gone, so one episode never runs twice at once.

Progress: each worker sends a `ProgressSnapshot` after every step through a Ray queue (at most 4 a second per
episode); the driver shows them in the same table as local runs, and reads the finished trajectory from the shared
file system for whoever waits on the run (`klong rl` grades it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from klong.agent.loop import OnUpdate
from klong.exceptions import ConfigError, KlongError
from klong.protocols import Model
from klong.rollout.executor import EpisodeJob, run_episode
from klong.rollout.progress import ProgressSnapshot
from klong.schema import Trajectory, read_trajectory

SLOT = "klong_sandbox"
"""The custom Ray resource: one per episode that may run at once on a node."""


def ensure_ray(
    address: str | None = None, *, sandbox_slots: int | None = None, runtime_env: dict[str, Any] | None = None
) -> bool:
    """Ray up in this process: attached to the cluster at `address`, or a local instance with `sandbox_slots` (default:
    one per CPU) episode slots; nothing when Ray already runs here. True when this call started it (the caller shuts
    it down)."""
    try:
        import ray
    except ImportError as e:
        raise ConfigError("--executor ray needs Ray: pip install 'klong[ray]'") from e
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        import os

        slots = sandbox_slots or os.cpu_count() or 1
        ray.init(resources={SLOT: slots}, runtime_env=runtime_env, log_to_driver=False, include_dashboard=False)
    return True


def check_slots(address: str | None = None) -> None:
    """The cluster Ray runs must offer episode slots, or no episode would ever be scheduled."""
    import ray

    if ray.cluster_resources().get(SLOT, 0) < 1:
        raise ConfigError(f"the Ray cluster at {address or 'this session'} offers no {SLOT!r} resource: start its "
                          f"nodes with ray start --resources '{{\"{SLOT}\": N}}' (N episodes at once per node)")  # fmt: skip


def _episode_task(job: EpisodeJob, model_factory: Callable[[], Model], tokenizer: Any, queue: Any) -> bool:
    """The body of the Ray task: run (or, after a lost worker, continue) the episode on this worker."""
    job.resume = job.resume or job.trajectory.exists()  # a retry after a lost worker: continue from the file
    job.give_prepared = job.give_prepared and not job.resume
    last = [0.0]

    def push(traj: Trajectory, event: str) -> None:
        now = time.monotonic()
        if event == "end" or (now - last[0] < 0.25 and event not in ("interrupted",)):
            return  # the driver reports the end itself, from the file
        last[0] = now
        with contextlib.suppress(Exception):  # progress never stops an episode
            queue.put_nowait((job.run_id, event, ProgressSnapshot.of(traj)))

    async def go() -> bool:
        model = model_factory()
        try:
            traj = await run_episode(job, model, tokenizer, push)
        finally:
            if (close := getattr(model, "close", None)) is not None:
                with contextlib.suppress(Exception):
                    await close()
        return traj.finished

    return asyncio.run(go())


class RayExecutor:
    kind = "ray"

    def __init__(self, model_factory: Callable[[], Model], tokenizer: Any = None, *, address: str | None = None,
                 num_cpus: float = 1.0, memory: int | None = None, sandbox_slots: int | None = None,
                 max_retries: int = 3, runtime_env: dict[str, Any] | None = None) -> None:  # fmt: skip
        if num_cpus < 0 or max_retries < 0:
            raise ConfigError(f"ray executor: num_cpus and max_retries must be >= 0 (got {num_cpus}, {max_retries})")
        self.model_factory = model_factory
        self.tokenizer = tokenizer
        self.address = address
        self.num_cpus = num_cpus
        self.memory = memory
        self.sandbox_slots = sandbox_slots
        self.max_retries = max_retries
        self.runtime_env = runtime_env
        self._remote = None
        self._queue = None
        self._poller: asyncio.Task | None = None
        self._listeners: dict[str, OnUpdate] = {}
        self._started_ray = False

    def start(self) -> None:
        if self._remote is not None:
            return
        self._started_ray = ensure_ray(self.address, sandbox_slots=self.sandbox_slots, runtime_env=self.runtime_env)
        check_slots(self.address)
        import ray
        from ray.util.queue import Queue

        options: dict[str, Any] = {"num_cpus": self.num_cpus, "resources": {SLOT: 1}, "max_retries": self.max_retries,
                                   "retry_exceptions": False}  # fmt: skip
        if self.memory:
            options["memory"] = self.memory
        self._remote = ray.remote(_episode_task).options(**options)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self._queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})  # dies with the driver only

    async def _poll(self) -> None:
        from ray.util.queue import Empty

        while True:
            try:
                items = await self._queue.actor.get_nowait_batch.remote(256)
            except Empty:
                items = []
            except Exception:  # the queue actor is gone (shutdown): nothing more to show
                return
            for run_id, event, snap in items:
                if (listener := self._listeners.get(run_id)) is not None:
                    with contextlib.suppress(Exception):
                        listener(snap, event)
            await asyncio.sleep(0.2 if not items else 0)

    async def run(self, job: EpisodeJob, on_update: OnUpdate | None) -> Trajectory:
        import ray

        self.start()
        if self._poller is None or self._poller.done():
            self._poller = asyncio.ensure_future(self._poll())
        if on_update is not None:
            self._listeners[job.run_id] = on_update
        try:
            await self._remote.remote(job, self.model_factory, self.tokenizer, self._queue)
        except ray.exceptions.RayTaskError as e:  # klong's own error on the worker: as if it ran here
            cause = e.as_instanceof_cause()
            raise (cause if isinstance(cause, KlongError) else KlongError(f"{job.run_id}: {cause}")) from None
        except ray.exceptions.RayError as e:  # retries spent: the workers kept dying
            raise KlongError(f"{job.run_id}: lost on Ray after {self.max_retries} retries ({type(e).__name__}); "
                             "continue it with --resume") from None  # fmt: skip
        finally:
            self._listeners.pop(job.run_id, None)
        traj = read_trajectory(job.trajectory)
        if on_update is not None:
            on_update(traj, "end")
        return traj

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(BaseException):
                await self._poller
            self._poller = None
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False
        self._remote = self._queue = None
