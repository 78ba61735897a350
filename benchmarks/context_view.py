"""The context policy's own cost per model call, as episodes grow: 150 and 600 turns, with and without a pin marker.

For every call of an episode the runtime asks the policy for a view of the whole history. Measured: the time of all
`ContextPolicy.view` calls of an episode (Qwen2.5 tokenizer; tool outputs of 2,000 characters; a 32K window), divided
by its number of calls. Baseline in the same run: rendering and tokenising the newest turn alone, the work a call
cannot avoid. Per-call cost must not grow with the episode's length (the pin-marker scan once went over every turn on
every call while the marker was absent). The ratio at 600 turns, marker absent, is printed last.

    python benchmarks/context_view.py [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from klong.chat.context import ContextConfig, ContextPolicy
from klong.chat.render import ChatRenderer
from klong.models.tokenizer import load_tokenizer
from klong.schema import Message, ToolCall, ToolFunction


def history(turns: int, marker_at: int | None) -> list[Message]:
    msgs = [Message(role="system", content="You are an agent."), Message(role="user", content="Replicate the paper.")]
    for i in range(turns):
        call = ToolCall(id=f"c{i}", function=ToolFunction(name="bash", arguments={"command": f"step {i}"}))
        out = f"line of output {i} " * 100
        if i == marker_at:
            out += "[end of paper]"
        msgs += [Message(role="assistant", content=f"Turn {i}.", tool_calls=[call]),
                 Message(role="tool", content=out, tool_call_id=call.id, name="bash")]  # fmt: skip
    return msgs


def per_call(tok, turns: int, marker_at: int | None) -> tuple[float, float]:
    msgs = history(turns, marker_at)
    cfg = ContextConfig(max_context_tokens=32768, pin_marker="[end of paper]")
    policy = ContextPolicy(cfg, ChatRenderer(tok, None, msgs[0]))
    ends = [i for i, m in enumerate(msgs) if m.role == "assistant"] + [len(msgs)]
    t0 = time.perf_counter()
    for end in ends:
        policy.view(msgs[:end])
    views = (time.perf_counter() - t0) / len(ends)
    fresh = ChatRenderer(tok, None, msgs[0])
    t0 = time.perf_counter()
    for i in range(turns):
        fresh.turn_piece(msgs[2 + 2 * i : 4 + 2 * i])
    newest = (time.perf_counter() - t0) / turns
    return views, newest


def main() -> None:
    default_tok = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tokenizers" / "qwen2.5"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", type=Path, default=default_tok)
    args = ap.parse_args()
    tok = load_tokenizer(args.tokenizer)
    ratio = 0.0
    for turns in (150, 600):
        for marker, label in ((None, "absent"), (1, "at turn 1")):
            views, newest = per_call(tok, turns, marker)
            print(f"{turns:4d} turns, marker {label:9s}: view {views * 1e3:6.3f} ms/call, newest turn alone "
                  f"{newest * 1e3:6.3f} ms (ratio {views / newest:.2f})")  # fmt: skip
            ratio = views / newest if (turns, marker) == (600, None) else ratio
    print(f"ratio view / newest-turn rendering at 600 turns, marker absent: {ratio:.2f}")


if __name__ == "__main__":
    main()
