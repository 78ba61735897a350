"""Judge throughput: a 400-leaf rubric graded against an OpenAI-compatible server with a fixed latency.

For each concurrency level, leaves per second against the ideal, concurrency / latency (one model call per leaf: the
submission holds one file, so no ranking call is needed). The ratio measured / ideal is printed last, for the highest
concurrency. The server runs in a separate process on 127.0.0.1 (as a real endpoint would); no cache is used.

    python benchmarks/judge_throughput.py [--latency 0.2] [--leaves 400] [--concurrency 1 8 32 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

from klong.judge.grade import grade_submission, make_judge
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.task import Task, read_task, write_task


def rubric(leaves: int) -> dict:
    groups = [{"id": f"g{g}", "requirements": f"group {g}", "weight": 1, "task_category": None,
               "finegrained_task_category": None,
               "sub_tasks": [{"id": f"g{g}l{i}", "requirements": f"criterion {g}.{i}", "weight": 1, "sub_tasks": [],
                              "task_category": "Code Development", "finegrained_task_category": "Method Implementation"}
                             for i in range(20)]} for g in range(leaves // 20)]  # fmt: skip
    return {"id": "root", "requirements": "paper", "weight": 1, "task_category": None, "finegrained_task_category": None,
            "sub_tasks": groups}  # fmt: skip


async def run(task: Task, submission: Path, base_url: str, concurrency: int) -> tuple[float, dict]:
    judge = make_judge("openai:judge", ModelConfig(base_url=base_url, max_retries=0))
    t0 = time.perf_counter()
    grade = await grade_submission(submission, task, judge, concurrency=concurrency)
    elapsed = time.perf_counter() - t0
    await judge.model.close()
    return elapsed, grade


def serve(latency: float, urls, stop) -> None:
    """The judge server, in its own process (as a real endpoint would be): the client's cost is measured alone."""
    answer = {"content": json.dumps({"expectations": "e", "reality": "r", "score": 1})}
    with FakeOpenAIServer(lambda body: answer, latency=latency) as server:
        urls.put(server.base_url)
        stop.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--leaves", type=int, default=400)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    args = ap.parse_args()
    urls, stop = multiprocessing.Queue(), multiprocessing.Event()
    proc = multiprocessing.Process(target=serve, args=(args.latency, urls, stop), daemon=True)
    proc.start()
    base_url = urls.get(timeout=30)
    with tempfile.TemporaryDirectory() as tmp:
        task = read_task(
            write_task(Path(tmp) / "t", Task(id="t", paper="# Paper\n\n" + "text " * 5000, rubric=rubric(args.leaves)))
        )
        sub = Path(tmp) / "sub"
        sub.mkdir()
        (sub / "model.py").write_text("def model():\n    return 1\n" * 50)
        print(f"{args.leaves} leaves, server latency {args.latency * 1000:.0f} ms per call")
        ratio = 0.0
        for c in args.concurrency:
            if c == 1 and args.leaves * args.latency > 120:
                continue
            elapsed, grade = asyncio.run(run(task, sub, base_url, c))
            assert grade["num_leaf_nodes"] == args.leaves and grade["num_invalid_leaf_nodes"] == 0
            measured, ideal = args.leaves / elapsed, c / args.latency
            ratio = measured / ideal
            print(f"concurrency {c:3d}: {measured:7.1f} leaves/s (ideal {ideal:7.1f}), {elapsed:6.2f} s")
        print(f"ratio measured/ideal at concurrency {args.concurrency[-1]}: {ratio:.2f}")
    stop.set()
    proc.join(5)


if __name__ == "__main__":
    main()
