"""The judge as a pool of Ray actors: each actor holds its own judge (made from the same spec on the node that hosts
it) and grades whole submissions with `grade_submission`, leaves concurrently inside it; `grade` hands a job to the
next idle actor. The grading queue in front of it (`klong.judge.queue.GradingQueue`, evaluation before training) and
the files it reads and writes (submissions, the judge cache, grades) are the same as in-process: the pool only
changes where the judge's model calls are made.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from klong.exceptions import ConfigError, KlongError


class _JudgeActor:
    """One pool member (a Ray actor): its judge is made once, on its node."""

    def __init__(self, judge_spec: tuple, cache_root: str | None) -> None:
        from klong.judge.cache import JudgeCache
        from klong.judge.grade import make_judge

        spec, model_config, judge_config, sandbox = judge_spec
        self.judge = make_judge(spec, model_config, judge_config, sandbox=sandbox)
        self.cache = JudgeCache(cache_root) if cache_root else None

    async def grade(self, submission: str, task: Any, options: dict[str, Any]) -> dict[str, Any]:
        from klong.judge.grade import grade_submission

        return await grade_submission(submission, task, self.judge, cache=self.cache, **options)

    async def close(self) -> None:
        model = getattr(self.judge, "model", None)
        if (close := getattr(model, "close", None)) is not None:
            await close()


class RayJudgePool:
    def __init__(self, judge_spec: tuple, *, workers: int = 4, cache_root: str | Path | None = None,
                 num_cpus: float = 0.0, address: str | None = None) -> None:  # fmt: skip
        """`judge_spec` = (spec, model config, judge config, sandbox): `make_judge`'s arguments. An actor asks for
        no CPU by default: it waits on its model's endpoint, and held CPUs would keep episodes from being scheduled."""
        if workers < 1:
            raise ConfigError(f"--judge-workers must be at least 1 (got {workers})")
        self.judge_spec = judge_spec
        self.workers = workers
        self.cache_root = str(cache_root) if cache_root is not None else None
        self.num_cpus = num_cpus
        self.address = address
        self._actors: list[Any] = []
        self._idle: asyncio.Queue | None = None
        self._started_ray = False

    def start(self) -> None:
        if self._actors:
            return
        from klong.rollout.ray_executor import ensure_ray

        self._started_ray = ensure_ray(self.address)
        import ray

        # an actor lost with its node is made again elsewhere and the grading it was doing is run again there: grading
        # is idempotent (same submission, same leaves; the judge cache answers the leaves already graded)
        actor = ray.remote(_JudgeActor).options(num_cpus=self.num_cpus, max_restarts=3, max_task_retries=2)
        self._actors = [actor.remote(self.judge_spec, self.cache_root) for _ in range(self.workers)]

    async def grade(self, submission: str | Path, task: Any, **options: Any) -> dict[str, Any]:
        """Grade one submission on the next idle actor (the options of `grade_submission`, less judge and cache)."""
        import ray

        self.start()
        if self._idle is None:
            self._idle = asyncio.Queue()
            for a in self._actors:
                self._idle.put_nowait(a)
        actor = await self._idle.get()
        try:
            return await actor.grade.remote(str(submission), task, options)
        except ray.exceptions.RayTaskError as e:
            cause = e.as_instanceof_cause()
            raise (cause if isinstance(cause, KlongError) else KlongError(f"judge actor: {cause}")) from None
        except ray.exceptions.RayError as e:
            raise KlongError(f"judge actor lost ({type(e).__name__}); grade again to continue") from None
        finally:
            self._idle.put_nowait(actor)

    async def close(self) -> None:
        import ray

        for a in self._actors:
            with contextlib.suppress(Exception):  # an actor already gone has nothing to close
                await a.close.remote()
            ray.kill(a)
        self._actors, self._idle = [], None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
