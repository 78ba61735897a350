"""Where episodes run: in this process (`local`, the default) or as Ray tasks on a cluster (`ray`,
`klong.rollout.ray_executor`). `run_rollouts` decides what runs (skip, resume, redo) and writes the summaries; an
executor only runs one prepared `EpisodeJob` to its end and returns its trajectory. Files are the interface: a job
names its trajectory and workspace paths, which every node sees (a shared file system), and the episode saves after
every step, so a job run again after a lost worker continues where the file ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from klong.agent.config import AgentConfig
from klong.agent.loop import Episode, OnUpdate
from klong.protocols import Model
from klong.sandbox import SandboxConfig, make_sandbox
from klong.schema import Trajectory
from klong.task import Task


@dataclass
class EpisodeJob:
    """One episode to run (or continue: `resume` when its trajectory file exists)."""

    task: Task
    run_id: str
    trajectory: Path
    workspace: Path
    sandbox: str
    sandbox_config: SandboxConfig
    config: AgentConfig
    resume: bool
    give_prepared: bool = False
    """The workspace was prepared by the benchmark: hand it to the sandbox's agent user before the first step."""


async def run_episode(job: EpisodeJob, model: Model, tokenizer: Any = None,
                      on_update: OnUpdate | None = None) -> Trajectory:  # fmt: skip
    """Run the job's episode in this process, in its sandbox, to its end (or its next infrastructure stop)."""
    box = make_sandbox(job.sandbox, job.workspace, job.sandbox_config)
    if job.give_prepared and (owner := getattr(box, "owner", None)) is not None:
        give_to(job.workspace, owner)  # the agent's unprivileged user (root runs): what was prepared is its own
    episode = Episode(job.task, model, box, job.config, job.trajectory, run_id=job.run_id, tokenizer=tokenizer,
                      on_update=on_update)  # fmt: skip
    return await episode.run(resume=job.resume)


def give_to(root: Path, owner: tuple[int, int]) -> None:
    """`chown -R` without following links: a prepared workspace handed to the sandbox's agent user."""
    os.lchown(root, *owner)
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(folder, name), *owner)


class Executor(Protocol):
    async def run(self, job: EpisodeJob, on_update: OnUpdate | None) -> Trajectory:
        """Run the job to its end; a lost worker is the executor's to recover from (the job continues elsewhere)."""

    async def close(self) -> None:
        """Release what the runs held (models' HTTP clients, a cluster connection)."""


class LocalExecutor:
    """Episodes as asyncio tasks of this process (a model per episode from the factory, closed at the end)."""

    kind = "local"

    def __init__(self, model_factory: Callable[[], Model], tokenizer: Any = None):
        self.model_factory = model_factory
        self.tokenizer = tokenizer
        self._models: dict[int, Any] = {}

    async def run(self, job: EpisodeJob, on_update: OnUpdate | None) -> Trajectory:
        model = self.model_factory()
        self._models[id(model)] = model
        return await run_episode(job, model, self.tokenizer, on_update)

    async def close(self) -> None:
        models, self._models = list(self._models.values()), {}
        for model in models:  # their HTTP clients belong to the run's event loop: closed while it runs
            if (close := getattr(model, "close", None)) is not None:
                with contextlib.suppress(Exception):
                    await close()
