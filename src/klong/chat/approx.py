"""Approximate token counts for endpoints whose tokenizer is not available locally.

Implements the part of `ChatRenderer` the `ContextPolicy` uses (lengths of pieces) from character counts. The
server's own context-length errors still start a new epoch, so an underestimate costs a retry, never the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from klong.schema import Message


@dataclass(frozen=True)
class Sized:
    n: int

    def __len__(self) -> int:
        return self.n


class ApproxRenderer:
    def __init__(self, chars_per_token: float = 3.0, per_message: int = 8):
        self.chars_per_token = chars_per_token
        self.per_message = per_message
        self.gen_prompt = Sized(4)

    def count(self, message: Message) -> int:
        chars = len(message.content or "") + len(message.reasoning_content or "")
        chars += sum(len(c.function.name) + len(c.function.arguments) + 16 for c in message.tool_calls or [])
        return self.per_message + int(chars / self.chars_per_token) + 1

    def head_piece(self, head: Sequence[Message]) -> Sized:
        return Sized(sum(self.count(m) for m in head))

    def message_piece(self, message: Message) -> Sized:
        return Sized(self.count(message))

    def turn_piece(self, turn: Sequence[Message]) -> Sized:
        return Sized(sum(self.count(m) for m in turn))

    def turn_pieces(self, turns: Sequence[Sequence[Message]]) -> list[Sized]:
        return [self.turn_piece(t) for t in turns]
