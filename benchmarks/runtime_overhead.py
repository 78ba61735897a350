"""The harness's own cost per turn, with an instant scripted model, for 1 and 64 concurrent runs.

Each episode makes `--turns` model calls to a scripted model that answers at once; every turn writes a small file
(a host-side tool, so no subprocess is timed). What is left is klong's own work per turn: the context policy's view,
two atomic trajectory saves, tool dispatch and bookkeeping. Measured with approximate token counting (an endpoint
without a local tokenizer) and with the real Qwen2.5 tokenizer (a local model).

Baseline, in the same run: one chat-completions round trip to a zero-latency OpenAI-compatible server on loopback
(the cheapest real model call there is). The ratio harness-per-turn / loopback-call is printed last.

    python benchmarks/runtime_overhead.py [--turns 200] [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.models.openai_compat import OpenAIModel
from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn
from klong.models.tokenizer import load_tokenizer
from klong.rollout.runner import run_rollouts
from klong.schema import Message
from klong.task import Task, read_task, write_task


def make_task(root: Path) -> Task:
    rubric = {"id": "r", "requirements": "r", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
              "finegrained_task_category": None}  # fmt: skip
    return read_task(write_task(root / "bench", Task(id="bench", title="bench", paper="# P\n\n" + "text " * 2000,
                                                     rubric=rubric)))  # fmt: skip


def turns(n: int) -> list[ScriptedTurn]:
    body = "result line\n" * 20
    return [ScriptedTurn(content=f"Step {i}: saving a result.",
                         tool_calls=[ScriptedCall(name="write_file", arguments={"path": f"submission/r{i % 10}.txt", "content": body})])
            for i in range(n)]  # fmt: skip


async def episodes(task: Task, n_turns: int, concurrency: int, tokenizer, out: Path) -> float:
    cfg = AgentConfig(clock="virtual", time_limit=10**9, mandatory_reading=False, max_turns=n_turns,
                      context=ContextConfig(max_context_tokens=32768))  # fmt: skip
    script = turns(n_turns)
    copies = [Task(**{**task.model_dump(), "id": f"bench{i}"}) for i in range(concurrency)]
    t0 = time.perf_counter()
    await run_rollouts(copies, model_factory=lambda: ScriptedModel(script), sandbox="local", config=cfg, out_dir=out,
                       concurrency=concurrency, tokenizer=tokenizer)  # fmt: skip
    return (time.perf_counter() - t0) / (n_turns * concurrency)


async def loopback_call(n: int) -> float:
    with FakeOpenAIServer(lambda body: {"content": "ok"}) as server:
        model = OpenAIModel("m", ModelConfig(base_url=server.base_url, max_retries=0))
        msgs = [Message(role="user", content="hello")]
        await model.generate(msgs)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await model.generate(msgs)
            times.append(time.perf_counter() - t0)
        await model.close()
        return statistics.median(times)


def main() -> None:
    default_tok = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tokenizers" / "qwen2.5"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--tokenizer", type=Path, default=default_tok)
    args = ap.parse_args()
    tok = load_tokenizer(args.tokenizer) if args.tokenizer.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = make_task(root)
        call = asyncio.run(loopback_call(200))
        rows = []
        for label, tokenizer in [("approx counting", None), ("Qwen2.5 tokenizer", tok)]:
            if label != "approx counting" and tokenizer is None:
                continue
            for conc in (1, 64):
                per_turn = asyncio.run(episodes(task, args.turns, conc, tokenizer, root / f"{label[:5]}{conc}"))
                rows.append((label, conc, per_turn))
    print(f"episodes of {args.turns} turns (instant scripted model, one write_file per turn)")
    print(f"loopback chat-completions call (zero-latency server): {call * 1000:.2f} ms")
    for label, conc, per_turn in rows:
        print(
            f"{label:18s} concurrency {conc:3d}: {per_turn * 1000:7.2f} ms harness time per turn "
            f"({1 / per_turn:,.0f} turns/s on this host)"
        )
    worst = max(r[2] for r in rows if r[1] == 1)
    print(f"ratio harness-per-turn / loopback call (concurrency 1, worst): {worst / call:.2f}")


if __name__ == "__main__":
    main()
