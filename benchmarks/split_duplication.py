"""Splitting cost per chat template: duplication (tokens computed in training / unique trajectory tokens).

Random agent episodes (`klong.models.random_agent`: reasoning on Qwen3 and GLM-4.5, one call per message on Llama 3.1,
real bash in a local sandbox) run through the real runtime with each template's tokenizer, then are split with the
run's own settings (`epoch`, `--window`). Each template runs twice in the same process: with klong's messages in the
role chosen for the template (`notice_role: auto`) and, as the baseline, always as `user` messages (what klong did
before). Qwen2.5 is the reference template; the ratio of the worst template to Qwen2.5 is printed last.

    python benchmarks/split_duplication.py [--seeds 0 1 2] [--turns 120] [--window 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

from klong.agent.config import AgentConfig
from klong.agent.loop import Episode
from klong.chat.context import ContextConfig
from klong.data.split import SplitStats, split_trajectory
from klong.models.random_agent import random_agent
from klong.models.scripted import ScriptedModel
from klong.models.tokenizer import load_tokenizer
from klong.sandbox import make_sandbox
from klong.task import Task, read_task, write_task

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SPECIALS = {"llama-3.1-instruct": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                                   "<|eom_id|>", "<|python_tag|>"],
            "glm-4.5": ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]}  # fmt: skip
TEMPLATES = ["qwen2.5-instruct", "qwen3", "llama-3.1-instruct", "glm-4.5"]


def tokenizer(name: str):
    tok = load_tokenizer(SHARED / "tokenizers" / "qwen2.5", SHARED / "chat_templates" / f"{name}.jinja")
    if name in SPECIALS:  # special tokens in the model's real tokenizer
        tok.add_special_tokens({"additional_special_tokens": SPECIALS[name]})
    return tok


def task(root: Path) -> Task:
    rubric = {"id": "r", "requirements": "r", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
              "finegrained_task_category": None}  # fmt: skip
    return read_task(write_task(root / "t", Task(id="t", title="t", paper="# P\n\nSome text.\n", rubric=rubric)))


def duplication(
    name: str, role: str, seeds: list[int], turns: int, window: int, root: Path
) -> tuple[SplitStats, float]:
    tok = tokenizer(name)
    stats = SplitStats()
    started = time.perf_counter()
    for seed in seeds:
        where = root / f"{name}-{role}-{seed}"
        agent = random_agent(random.Random(seed), reasoning=name in ("qwen3", "glm-4.5"),
                             max_calls=1 if name.startswith("llama") else 2)  # fmt: skip
        config = AgentConfig(clock="virtual", max_turns=turns, time_limit=10**7, mandatory_reading=False,
                             context=ContextConfig(max_context_tokens=window, notice_role=role))  # fmt: skip
        episode = Episode(task(where), ScriptedModel([agent], on_exhausted="repeat_last"),
                          make_sandbox("local", where / "ws"), config, where / "traj.json", run_id=str(seed),
                          tokenizer=tok)  # fmt: skip
        stats.add(split_trajectory(asyncio.run(episode.run()), tok))
    return stats, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--turns", type=int, default=120)
    parser.add_argument("--window", type=int, default=6000)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in TEMPLATES:
            for role in ("auto", "user"):
                stats, seconds = duplication(name, role, args.seeds, args.turns, args.window, Path(tmp))
                results[name, role] = stats.duplication
                print(f"{name:20s} notices {role:4s}: duplication {stats.duplication:.3f} ({stats.windows} windows, "
                      f"{stats.turns} turns, {stats.tokens} tokens, {seconds:.0f}s)", flush=True)  # fmt: skip
    ref = results["qwen2.5-instruct", "auto"]
    for role in ("user", "auto"):
        worst = max(TEMPLATES, key=lambda n: results[n, role])
        print(f"notices {role}: worst template {worst}, duplication / Qwen2.5's = {results[worst, role] / ref:.2f}")


if __name__ == "__main__":
    main()
