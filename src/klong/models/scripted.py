"""A deterministic scripted model: returns prepared assistant turns in order.

Used by tests and the demo wherever a real model would make results depend on sampling. A script is a YAML or JSON file:

```yaml
turns:
  - content: "Let me read the paper first."
    tool_calls:
      - name: read_paper
        arguments: {page: 1}
  - content: "Done."
    tool_calls: [{name: end_task, arguments: {}}]
on_exhausted: error      # or: repeat_last
```

A turn may also be a Python callable (for programmatic policies) that receives the messages and returns a turn.
Tool-call ids are deterministic: `call_<turn>_<k>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from klong.exceptions import ModelError
from klong.io import read_json, read_yaml, validate_record
from klong.schema import Message, Record, ToolCall, ToolFunction


class ScriptExhaustedError(ModelError):
    """The scripted model was asked for more turns than its script holds."""


class ScriptedCall(Record):
    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    """Arguments as an object, or as a raw string (to script a malformed call)."""


class ScriptedTurn(Record):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ScriptedCall] = Field(default_factory=list)


class Script(Record):
    turns: list[ScriptedTurn]
    on_exhausted: Literal["error", "repeat_last"] = "error"
    """What to do when asked for a turn past the end: raise `ScriptExhaustedError`, or repeat the last turn."""


TurnSource = ScriptedTurn | Callable[[Sequence[Message]], ScriptedTurn]


class ScriptedModel:
    """Implements `klong.protocols.Model`. `position` is the index of the next turn (set it to resume a script)."""

    def __init__(
        self,
        turns: Sequence[TurnSource],
        *,
        name: str = "scripted",
        on_exhausted: Literal["error", "repeat_last"] = "error",
    ):
        self.turns = list(turns)
        self.name = name
        self.on_exhausted = on_exhausted
        self.position = 0
        self.calls = 0
        """Number of `generate` calls answered (for tests that count model calls)."""

    def resume(self, assistant_turns: int) -> None:
        """Continue a resumed episode: the first `assistant_turns` turns were already answered."""
        self.position = assistant_turns

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        path = Path(path)
        data = read_yaml(path) if path.suffix in (".yaml", ".yml") else read_json(path)
        script = validate_record(Script, data, path, what="script")
        return cls(script.turns, name=f"scripted:{path}", on_exhausted=script.on_exhausted)

    def _next_turn(self, messages: Sequence[Message]) -> tuple[int, ScriptedTurn]:
        if self.position >= len(self.turns):
            if self.on_exhausted == "repeat_last" and self.turns:
                index = len(self.turns) - 1
            else:
                raise ScriptExhaustedError(
                    f"{self.name}: script has {len(self.turns)} turns, asked for turn {self.position + 1}"
                )
        else:
            index = self.position
            self.position += 1
        source = self.turns[index]
        turn = source if isinstance(source, ScriptedTurn) else source(messages)
        return index, turn

    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        index, turn = self._next_turn(messages)
        self.calls += 1
        calls = [
            ToolCall(id=f"call_{index}_{k}", function=ToolFunction(name=c.name, arguments=c.arguments))
            for k, c in enumerate(turn.tool_calls)
        ]
        return Message(
            role="assistant",
            content=turn.content,
            reasoning_content=turn.reasoning_content,
            tool_calls=calls or None,
            finish_reason="tool_calls" if calls else "stop",
        )
