"""A seeded random agent for `ScriptedModel`: long, realistic-looking episodes without a model.

Each turn has random reasoning (optional) and text, then 0 to `max_calls` bash calls whose real output has a random
length (`yes ... | head -n N`), and now and then no tool call at all, so that the runtime adds its reminder. Used by
tests and benchmarks that need hundreds of turns of what klong's runtime actually writes (notices, reminders, tool
results) for a given chat template: `ScriptedModel([random_agent(random.Random(seed), ...)], on_exhausted="repeat_last")`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from klong.models.scripted import ScriptedCall, ScriptedTurn
from klong.schema import Message

WORDS = ("the", "model", "reads", "paper", "section", "experiment", "result", "table", "figure", "train", "loss",
         "value", "config", "seed", "run", "log", "error", "file", "python", "import", "def", "return", "numpy",
         "torch", "dataset", "batch", "step", "accuracy", "baseline", "ablation")  # fmt: skip


def random_agent(rng: random.Random, *, reasoning: bool = False, max_calls: int = 2, max_lines: int = 120,
                 no_call_share: float = 0.2) -> Callable[[Sequence[Message]], ScriptedTurn]:  # fmt: skip
    """A turn source: `max_calls` 1 for templates that take one call per message (Llama 3.1)."""

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    def turn(messages: Sequence[Message]) -> ScriptedTurn:
        n_calls = 0 if rng.random() < no_call_share else rng.randint(1, max(1, max_calls))
        calls = [ScriptedCall(name="bash", arguments={"command": f"yes '{text(6)}' | head -n {rng.randint(1, max_lines)}"})
                 for _ in range(n_calls)]  # fmt: skip
        return ScriptedTurn(content=text(rng.randint(3, 60)), tool_calls=calls,
                            reasoning_content=text(rng.randint(5, 40)) if reasoning else None)  # fmt: skip

    return turn
