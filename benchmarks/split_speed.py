"""Splitting throughput against the tokenizer's own batch-encoding speed, measured in the same run.

Builds a fixed set of long agent trajectories (seeded; hundreds of turns, tool outputs of varying size), then measures:
  - baseline: the real Qwen2.5 tokenizer batch-encoding the text of every message (no template, no policy);
  - klong: `split_trajectory` with the `epoch` policy on the same trajectories (template rendering, pieces, policy,
    window assembly and the template check of each window).
Both are reported in trajectory tokens per second; the ratio klong / tokenizer is printed last.

    python benchmarks/split_speed.py [--tokenizer DIR] [--trajectories 6] [--turns 700] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

from klong.chat.context import ContextConfig
from klong.data.split import split_trajectory
from klong.models.tokenizer import load_tokenizer
from klong.schema import Message, ToolCall, ToolFunction, Trajectory

WORDS = ["the", "model", "reads", "paper", "section", "experiment", "result", "table", "figure", "train", "loss", "value", "config", "seed", "run", "log", "error", "file", "python", "import", "def", "return", "numpy", "torch", "dataset", "batch", "step", "accuracy", "baseline", "ablation", "epoch", "0.31", "1e-4", "Traceback", "line", "raise", "ValueError", "shape", "mismatch", "[", "]", "(", ")", "{", "}", "=", "+", "-", "/", ":", ",", "."]  # fmt: skip


def make_trajectory(seed: int, turns: int) -> Trajectory:
    rng = random.Random(seed)

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    msgs = [Message(role="system", content="You are a research agent. " + text(200)),
            Message(role="user", content="Replicate the paper. " + text(400))]  # fmt: skip
    for i in range(turns):
        call = ToolCall(id=f"c{i}", function=ToolFunction(name="bash", arguments={"cmd": text(rng.randint(2, 20))}))
        msgs.append(Message(role="assistant", content=text(rng.randint(10, 120)), tool_calls=[call]))
        size = rng.choice([20, 80, 200, 600, 1500])
        msgs.append(Message(role="tool", content=text(size), tool_call_id=call.id, name="bash"))
    return Trajectory(id=f"bench{seed}", messages=msgs)


def main() -> None:
    default_tok = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tokenizers" / "qwen2.5"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", type=Path, default=default_tok)
    ap.add_argument("--trajectories", type=int, default=6)
    ap.add_argument("--turns", type=int, default=700)
    ap.add_argument("--window", type=int, default=32768)
    ap.add_argument("--overlap", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tok = load_tokenizer(args.tokenizer)
    trajs = [make_trajectory(s, args.turns) for s in range(args.trajectories)]
    texts = [m.content or "" for t in trajs for m in t.messages]
    cfg = ContextConfig(max_context_tokens=args.window, overlap_tokens=args.overlap, pin_turns=4,
                        max_prefix_tokens=args.window // 4)  # fmt: skip

    def baseline() -> int:
        return sum(len(x) for x in tok(texts, add_special_tokens=False)["input_ids"])

    def klong() -> int:
        return sum(split_trajectory(t, tok, cfg).unique_tokens for t in trajs)

    def timed(fn) -> tuple[float, int]:
        t0 = time.perf_counter()
        n = fn()
        return time.perf_counter() - t0, n

    timed(baseline)  # warm-up (thread pool, caches)
    base_times, split_times = [], []
    for _ in range(args.repeat):  # interleaved so machine noise hits both alike
        bt, base_tokens = timed(baseline)
        st, split_tokens = timed(klong)
        base_times.append(bt)
        split_times.append(st)
    b, s = statistics.median(base_times), statistics.median(split_times)
    windows = sum(len(split_trajectory(t, tok, cfg).samples) for t in trajs[:1])
    print(
        f"trajectories: {len(trajs)} x {args.turns} turns, {split_tokens} rendered tokens "
        f"({base_tokens} content tokens); window {args.window}, overlap {args.overlap}; {windows} windows in the first"
    )
    print(f"tokenizer batch encode: {base_tokens / b:,.0f} tokens/s  (median of {args.repeat}: {b:.3f}s)")
    print(f"klong split (epoch):    {split_tokens / s:,.0f} tokens/s  (median of {args.repeat}: {s:.3f}s)")
    print(f"ratio split/tokenizer: {(split_tokens / s) / (base_tokens / b):.2f}")


if __name__ == "__main__":
    main()
