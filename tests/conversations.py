"""Conversation builders shared by the rendering, context and splitting tests."""

from __future__ import annotations

import random

from klong.schema import Message, ToolCall, ToolFunction

TOOLS = [
    {"type": "function", "function": {"name": "bash", "description": "Run a command.",
     "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}},
    {"type": "function", "function": {"name": "read_file", "description": "Read lines of a file.",
     "parameters": {"type": "object", "properties": {"path": {"type": "string"}, "start": {"type": "integer"}}}}},
]  # fmt: skip

LLAMA_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>",
                  "<|python_tag|>"]  # fmt: skip
GLM_SPECIALS = ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]
TEMPLATE_SPECIALS = {"qwen2.5-instruct": [], "qwen3": [], "llama-3.1-instruct": LLAMA_SPECIALS, "glm-4.5": GLM_SPECIALS}
"""The markers each template relies on; they are special tokens in the model's real tokenizer, so the tests add them
to the Qwen2.5 tokenizer when they use that template."""

WORDS = ["the", "model", "reads", "paper", "section", "experiment", "result", "table", "figure", "train", "loss", "value", "config", "seed", "run", "log", "error", "file", "python", "import", "def", "return", "numpy", "torch", "dataset", "batch", "step", "accuracy", "baseline", "ablation"]  # fmt: skip


def conversation(
    turns: int = 4, *, reasoning: bool = False, parallel: bool = True, final: bool = True
) -> list[Message]:
    msgs = [Message(role="system", content="You are a research agent."), Message(role="user", content="Replicate it.")]
    for i in range(turns):
        calls = [ToolCall(id=f"c{i}a", function=ToolFunction(name="bash", arguments={"cmd": f"ls {i}"}))]
        if parallel and i == 1:
            calls.append(
                ToolCall(id=f"c{i}b", function=ToolFunction(name="read_file", arguments={"path": "a.py", "start": 3}))
            )
        msgs.append(Message(role="assistant", content=f"Step {i}: looking.", tool_calls=calls,
                            reasoning_content=f"I should run ls {i}." if reasoning else None))  # fmt: skip
        msgs += [Message(role="tool", content=f"out {i} {c.id}\nline two", tool_call_id=c.id, name=c.function.name)
                 for c in calls]  # fmt: skip
    if final:
        msgs.append(Message(role="assistant", content="All done.", reasoning_content="done" if reasoning else None))
    return msgs


def random_conversation(
    rng: random.Random, turns: int, *, max_output: int = 3000, huge_every: int = 0
) -> list[Message]:
    """A random agent trajectory: a task, then turns of text + 0-2 tool calls + tool outputs of random length."""

    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    msgs = [Message(role="system", content="You are an agent. " + text(rng.randint(5, 60))),
            Message(role="user", content="Task: " + text(rng.randint(10, 300)))]  # fmt: skip
    for i in range(turns):
        n_calls = rng.choice([0, 1, 1, 1, 2])
        calls = [ToolCall(id=f"t{i}c{k}", function=ToolFunction(name="bash", arguments={"cmd": text(rng.randint(1, 12))}))
                 for k in range(n_calls)]  # fmt: skip
        msgs.append(Message(role="assistant", content=text(rng.randint(0, 80)), tool_calls=calls or None))
        for c in calls:
            size = rng.randint(0, max_output)
            if huge_every and i % huge_every == huge_every - 1:
                size = 40 * max_output
            msgs.append(Message(role="tool", content=text(size // 6), tool_call_id=c.id, name="bash"))
        if not calls and i < turns - 1:
            msgs.append(Message(role="user", content="Continue. " + text(rng.randint(0, 20))))
    return msgs
