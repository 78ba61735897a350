"""Rollout throughput: klong episodes through `vllm:` against in-process `hf:`, and against vLLM alone.

The same tasks and tool environment (a `local` sandbox; the tiny random-weight model writes no valid tool call, so
every turn is a model call plus the runtime's notice), `--episodes` concurrent episodes of `--turns` turns with
`--max-tokens` per turn at temperature 1. Figures: generated tokens per second of the whole run for

- `vllm:` (klong's harness, token in and token out, one vLLM server),
- `hf:` (the same model in process, one generation at a time),
- vLLM alone: the very prompts klong sent (read back from the trajectories), sent straight to `/v1/completions` with
  the same concurrency and lengths, no harness (the physical ceiling of this server on this machine).

Ratios are printed last: klong-through-vLLM / vLLM alone (the harness's overhead; the aim on a GPU is within 10%),
and `vllm:` / `hf:`. Also the time of one full weight sync of the model (`reload_weights` from a written folder).

    KLONG_VLLM_PYTHON=$PWD/.venv-vllm/bin/python python benchmarks/rollout_throughput.py [--model DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.shared import shared_path
from tests.tasks import make_task

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.models import load_model
from klong.models.config import ModelConfig, VLLMLaunch
from klong.models.vllm_server import shared_server
from klong.rollout.runner import run_rollouts
from klong.schema import read_trajectory


def tiny_model(root: Path) -> Path:
    from transformers import AutoModelForCausalLM

    from klong.models.tiny import TinyModelConfig, build_tiny_model
    from klong.models.tokenizer import load_tokenizer
    from klong.train.weight_sync import write_serving_folder

    shape = TinyModelConfig(hidden_size=128, num_attention_heads=2, num_key_value_heads=1, intermediate_size=256,
                            max_position_embeddings=4096)  # fmt: skip
    tied = build_tiny_model(root / "tiny", shared_path("tokenizers", "qwen2.5"), shape)
    return write_serving_folder(AutoModelForCausalLM.from_pretrained(tied), load_tokenizer(tied), root / "served")


async def episodes(spec: str, gen: ModelConfig, root: Path, n: int, turns: int) -> tuple[float, int, list]:
    tasks = [make_task(root / "tasks", task_id=f"t{i}", paragraphs=2) for i in range(n)]
    agent = AgentConfig(clock="virtual", max_turns=turns, mandatory_reading=False,
                        context=ContextConfig(max_context_tokens=4096))  # fmt: skip
    t0 = time.perf_counter()
    await run_rollouts(tasks, model_factory=lambda: load_model(spec, gen), sandbox="local", config=agent,
                       out_dir=root / "run", concurrency=n)  # fmt: skip
    elapsed = time.perf_counter() - t0
    trajs = [read_trajectory(p) for p in sorted((root / "run" / "trajectories").glob("*.json"))]
    generated = sum(len(m.token_ids) for t in trajs for m in t.messages if m.role == "assistant")
    return elapsed, generated, trajs


async def alone(server, model_dir: Path, trajs: list, n: int, max_tokens: int) -> tuple[float, int]:
    """The prompts klong sent, re-rendered from the trajectories, sent straight to the server."""
    import openai

    from klong.models.tokenizer import load_tokenizer
    from klong.models.tokens import Renderers

    renderers = Renderers(load_tokenizer(model_dir))
    prompts = []
    for traj in trajs:
        for k, m in enumerate(traj.messages):
            if m.role == "assistant":
                view = traj.messages[:k]
                prompts.append(renderers.get(view, traj.tools).render_prompt(view).input_ids)
    client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="EMPTY")
    queue = list(prompts)
    total = 0

    async def worker():
        nonlocal total
        while queue:
            prompt = queue.pop()
            r = await client.completions.create(model=server.model, prompt=prompt, max_tokens=max_tokens,
                                                temperature=1.0, extra_body={"ignore_eos": True})  # fmt: skip
            total += r.usage.completion_tokens

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(n)])
    return time.perf_counter() - t0, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model folder (default: the tiny model, built here)")
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args()
    if not os.environ.get("KLONG_VLLM_PYTHON"):
        sys.exit("set KLONG_VLLM_PYTHON to a Python with vLLM (bash .ci/vllm-env makes one)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = args.model or tiny_model(root)
        launch = VLLMLaunch(dtype=args.dtype, max_model_len=4096)
        t0 = time.perf_counter()
        server = shared_server(model_dir, launch)
        print(f"vLLM server up in {time.perf_counter() - t0:.0f} s")
        gen = dict(temperature=1.0, max_tokens=args.max_tokens, seed=0)
        v_s, v_tok, trajs = asyncio.run(episodes(f"vllm:{model_dir}", ModelConfig(**gen, vllm=launch), root / "v",
                                                 args.episodes, args.turns))  # fmt: skip
        h_s, h_tok, _ = asyncio.run(episodes(f"hf:{model_dir}", ModelConfig(**gen), root / "h", args.episodes,
                                             args.turns))  # fmt: skip
        a_s, a_tok = asyncio.run(alone(server, model_dir, trajs, args.episodes, args.max_tokens))
        from klong.train.weight_sync import sync

        t0 = time.perf_counter()
        sync(server, model_dir, "full", timeout=600)
        sync_s = time.perf_counter() - t0
        server.stop()
    print(f"{args.episodes} episodes x {args.turns} turns, up to {args.max_tokens} tokens per turn")
    print(f"klong vllm:   {v_tok / v_s:8.1f} generated tokens/s ({v_tok} in {v_s:.1f} s)")
    print(f"klong hf:     {h_tok / h_s:8.1f} generated tokens/s ({h_tok} in {h_s:.1f} s)")
    print(f"vLLM alone:   {a_tok / a_s:8.1f} generated tokens/s ({a_tok} in {a_s:.1f} s, same prompts)")
    print(f"one full weight sync: {sync_s:.2f} s")
    print(f"ratio klong-through-vLLM / vLLM alone: {(v_tok / v_s) / (a_tok / a_s):.2f}; "
          f"vllm: / hf: {(v_tok / v_s) / (h_tok / h_s):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
