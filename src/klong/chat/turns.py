"""Turns: the unit at which history is kept, cut and rendered.

A conversation is a *head* (every message before the first assistant message: system prompt, demonstrations, task)
followed by *turns*. A turn is one assistant message together with every non-assistant message that follows it up to
the next assistant message: the tool results that answer its calls, and any user message (a runtime notice) that came
before the next model call. Cutting history only between turns keeps every tool result after the call it answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from klong.schema import Message


@dataclass(frozen=True)
class Conversation:
    head: list[Message]
    turns: list[list[Message]]

    def messages(self) -> list[Message]:
        out = list(self.head)
        for turn in self.turns:
            out.extend(turn)
        return out


def split_turns(messages: Sequence[Message]) -> Conversation:
    head: list[Message] = []
    turns: list[list[Message]] = []
    for message in messages:
        if message.role == "assistant":
            turns.append([message])
        elif turns:
            turns[-1].append(message)
        else:
            head.append(message)
    return Conversation(head=head, turns=turns)
