"""THE ContextPolicy: what the model sees at every call, and how a trajectory is split for training.

The runtime asks the policy for a view before every model call; the splitter replays the same policy over a recorded
trajectory. One object, two uses, so a training window is by construction the view the runtime sent.

`epoch` (KLong): view = pinned prefix (head: system prompt and task; plus the first `pin_turns` turns or the turns up to
`pin_marker`, the mandatory paper reading, within `max_prefix_tokens`) + the current epoch. An epoch grows append-only
until the next request would not fit (`prompt + reserve > max_context_tokens`); the next epoch is prefix + one fixed
notice + the most recent turns that fit in `overlap_tokens`. History is cut only between turns.

Baselines: `full` (everything, no limit), `truncate` (keep the start; once it no longer fits the episode cannot go on:
`ContextExhaustedError`), `sliding` (epochs without pinned turns: the head plus recent turns).

Oversized turns: when the most recent turn alone does not fit an empty epoch (a huge tool output), the text of its
messages is cut in the middle, proportionally, until it fits; the cut is marked in the text and is deterministic.
Only turns carried over from an earlier epoch are ever cut, so trained tokens are never altered. If nothing fits
(the prefix itself is too long) the policy raises `ContextExhaustedError`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from klong.chat.render import ChatRenderer
from klong.chat.turns import split_turns
from klong.exceptions import KlongError
from klong.schema import Message

DEFAULT_NOTICE = (
    "[context] Earlier turns of this episode were removed to fit the context window. The task and the mandatory "
    "reading above are kept in full and the most recent turns follow. Files and the sandbox are unchanged: re-read "
    "what you need."
)
CUT_NOTE = "\n[... {n} characters cut to fit the context window ...]\n"


class ContextExhaustedError(KlongError):
    """No view fits the context window: the episode cannot continue (maps to `StopReason.CONTEXT_EXHAUSTED`)."""


class ContextConfig(BaseModel):
    """How the context is managed. Runtime and splitter must use the same values for windows to equal views."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["epoch", "truncate", "sliding", "full"] = "epoch"
    """`epoch` (KLong), or a baseline: `truncate`, `sliding`, `full`."""
    max_context_tokens: int = 32768
    """The window: prompt plus generated turn never exceed it."""
    reserve_tokens: int = 0
    """Tokens kept free for the answer; the runtime sets it to its max generation length."""
    overlap_tokens: int | None = None
    """Budget for the most recent turns carried into a new epoch; default an eighth of the window minus the reserve."""
    pin_turns: int = 0
    """Turns after the head that are pinned (the mandatory paper reading)."""
    pin_marker: str | None = None
    """Alternatively: pin every turn up to the first one whose text contains this marker."""
    max_prefix_tokens: int | None = None
    """Budget of the pinned prefix (head + pinned turns); default half of the window minus the reserve."""
    notice: str = DEFAULT_NOTICE
    """The one fixed message placed after the prefix in every epoch but the first."""
    notice_role: Literal["auto", "user", "system"] = "auto"
    """Role of klong's own messages (this notice, the runtime's reminders). `auto`: `system` where the chat template
    would otherwise treat a `user` message as a new query and rewrite earlier turns (Qwen3 and GLM-4.5 drop the
    reasoning of turns before the last user message), else `user`. The runtime records the resolved role."""

    @model_validator(mode="after")
    def _check(self) -> ContextConfig:
        if self.max_context_tokens <= 0 or self.reserve_tokens < 0 or self.overlap < 0 or self.pin_turns < 0:
            raise ValueError("max_context_tokens must be > 0; reserve, overlap and pin_turns >= 0")
        if self.reserve_tokens >= self.max_context_tokens:
            raise ValueError("reserve_tokens must be smaller than max_context_tokens")
        if self.prefix_budget + self.overlap > self.max_context_tokens - self.reserve_tokens:
            raise ValueError(
                f"prefix budget ({self.prefix_budget}) + overlap_tokens ({self.overlap}) exceed the window "
                f"minus the reserve ({self.max_context_tokens - self.reserve_tokens})"
            )
        return self

    @property
    def overlap(self) -> int:
        if self.overlap_tokens is not None:
            return self.overlap_tokens
        return (self.max_context_tokens - self.reserve_tokens) // 8

    @property
    def prefix_budget(self) -> int:
        if self.max_prefix_tokens is not None:
            return self.max_prefix_tokens
        return (self.max_context_tokens - self.reserve_tokens) // 2


@dataclass
class ViewPart:
    kind: Literal["head", "turn", "notice"]
    messages: list[Message]
    turn: int | None = None
    """Index of the trajectory turn (for `turn` parts)."""
    cut: bool = False
    """True when the turn's text was cut to fit."""


@dataclass
class View:
    """What the model gets at one call."""

    parts: list[ViewPart]
    epoch: int
    new_epoch: bool
    prompt_tokens: int
    """Tokens of the prompt (pieces composed, generation prompt included)."""
    pinned: int
    call: int
    """Index of the turn this call generates (= number of turns before it)."""
    turns: list[int] = field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        return [m for p in self.parts for m in p.messages]

    def fingerprint(self) -> str:
        """A short digest of the view's structure (epoch, pinned turns, the turns shown and which are cut): two views of
        one history are the same view exactly when their fingerprints are equal."""
        cut = [p.turn for p in self.parts if p.cut]
        data = f"{self.epoch}|{self.pinned}|{','.join(map(str, self.turns))}|{','.join(map(str, cut))}"
        return hashlib.sha256(data.encode()).hexdigest()[:16]


NOTICE_PROBE = "klong-notice-probe"


def resolve_notice_role(role: str, renderer) -> str:
    """`user` or `system`: the configured role, or for `auto` the one under which the renderer's chat template keeps
    earlier turns as they were (see `ContextConfig.notice_role`). Renderers without a template (approximate
    counting) get `user`, which every server accepts."""
    if role != "auto":
        return role
    probe = getattr(renderer, "keeps_history_after", None)
    if probe is None:
        return "user"
    return "system" if not probe("user") and probe("system") else "user"


def _text_size(turn: Sequence[Message]) -> int:
    return sum(len(m.content or "") for m in turn)


def cut_turn(turn: Sequence[Message], ratio: float) -> list[Message]:
    """A copy of the turn with every message's text cut in the middle to about `ratio` of its length."""
    out = []
    for m in turn:
        text = m.content or ""
        keep = int(len(text) * ratio)
        if keep < len(text):
            head = keep - keep // 3
            tail = keep // 3
            text = text[:head] + CUT_NOTE.format(n=len(text) - keep) + (text[len(text) - tail :] if tail else "")
            m = m.model_copy(update={"content": text})
        out.append(m)
    return out


class ContextPolicy:
    """Stateful: call `view` once per model call, in order. `epoch` and `epoch_start` are the state."""

    def __init__(self, config: ContextConfig, renderer: ChatRenderer, turn_lengths: Sequence[int] | None = None):
        """`turn_lengths`: token lengths of the trajectory's turns when already known (the splitter has them)."""
        self.config = config
        self.renderer = renderer
        self.epoch = 0
        self.epoch_start = 0
        """First non-pinned turn shown in the current epoch."""
        self._lengths: list[int] = list(turn_lengths or [])
        self._cut: dict[int, tuple[list[Message], int]] = {}
        """Turns of the current epoch shown cut to fit: index -> (messages, tokens). Kept so the epoch stays append-only."""
        self._marker_scanned = 0
        self._marker_turns_found = 0
        self.notice_role = resolve_notice_role(config.notice_role, renderer)
        """The concrete role of klong's own messages (see `ContextConfig.notice_role`)."""
        self._notice = Message(role=self.notice_role, content=config.notice)

    # -- state -----------------------------------------------------------------------------------------------------
    def state(self) -> tuple[int, int, dict[int, tuple[list[Message], int]]]:
        """The epoch state, to be restored when a view was not used (the server refused it and a smaller one is tried)."""
        return self.epoch, self.epoch_start, dict(self._cut)

    def restore(self, state: tuple[int, int, dict[int, tuple[list[Message], int]]]) -> None:
        self.epoch, self.epoch_start, cut = state
        self._cut = dict(cut)

    # -- lengths ---------------------------------------------------------------------------------------------------
    def _turn_lengths(self, turns: Sequence[Sequence[Message]]) -> list[int]:
        done = len(self._lengths)
        if len(turns) > done:
            self._lengths.extend(len(p) for p in self.renderer.turn_pieces(turns[done:]))
        return self._lengths

    def _pinned(self, head: Sequence[Message], turns: Sequence[Sequence[Message]], lengths: list[int]) -> int:
        if self.config.policy == "sliding":
            return 0
        limit = self.config.pin_turns
        if self.config.pin_marker is not None:
            limit = max(limit, self._marker_turns(turns))
        limit = min(limit, len(turns))
        used = len(self.renderer.head_piece(head))
        pinned = 0
        while pinned < limit and used + lengths[pinned] <= self.config.prefix_budget:
            used += lengths[pinned]
            pinned += 1
        return pinned

    def _marker_turns(self, turns: Sequence[Sequence[Message]]) -> int:
        """Turns up to and including the first one containing the marker (0 while absent). Incremental: turns
        already scanned are not scanned again (the last one is, since tool results may still have been added)."""
        if self._marker_turns_found:
            return self._marker_turns_found
        marker = self.config.pin_marker
        start = max(0, self._marker_scanned - 1)
        for j in range(start, len(turns)):
            if any(marker in (m.content or "") for m in turns[j]):
                self._marker_turns_found = j + 1
                break
        self._marker_scanned = len(turns)
        return self._marker_turns_found

    # -- the view --------------------------------------------------------------------------------------------------
    def view(self, history: Sequence[Message], *, gen_tokens: int | None = None, force_new_epoch: int = 0) -> View:
        """The view for the next model call, given the full history so far.

        `gen_tokens` (splitter only) is the length of the turn about to be generated: a window must hold it, so the
        reserve is `max(reserve_tokens, gen_tokens)`. `force_new_epoch` = k >= 1 starts a new epoch even if the view
        fits: the runtime's k-th attempt after context-length errors from the server. Attempt 1 is an ordinary new
        epoch; each later attempt is smaller (budget x 0.75 and overlap / 2 per attempt), so a retry never resends the
        view the server refused. Restore `state()` after a refused view, so that only the accepted one counts.
        """
        conv = split_turns(history)
        return self.select(conv.head, conv.turns, gen_tokens=gen_tokens, force_new_epoch=force_new_epoch)

    def select(
        self,
        head: Sequence[Message],
        turns: Sequence[Sequence[Message]],
        *,
        gen_tokens: int | None = None,
        force_new_epoch: int = 0,
    ) -> View:
        cfg = self.config
        force = int(force_new_epoch)
        t = len(turns)
        lengths = self._turn_lengths(turns)
        head_len = len(self.renderer.head_piece(head))
        fixed = head_len + len(self.renderer.gen_prompt)
        budget = cfg.max_context_tokens - max(cfg.reserve_tokens, gen_tokens or 0)

        if force and cfg.policy in ("full", "truncate"):
            raise ContextExhaustedError(f"the server refused the view and the {cfg.policy} policy cannot shrink it")
        if cfg.policy == "full":
            return self._make(head, turns, 0, list(range(t)), {}, 0, False, fixed + sum(lengths[:t]))

        if cfg.policy == "truncate":
            total = fixed + sum(lengths[:t])
            if total > budget:
                raise ContextExhaustedError(
                    f"truncate policy: {total} prompt tokens do not fit {budget} (window minus reserve)"
                )
            return self._make(head, turns, 0, list(range(t)), {}, 0, False, total)

        pinned = self._pinned(head, turns, lengths)
        if self.epoch == 0:
            shown = list(range(t))
            total = fixed + sum(lengths[:t])
        else:
            shown = list(range(pinned)) + list(range(max(self.epoch_start, pinned), t))
            sizes = [self._cut[j][1] if j in self._cut else lengths[j] for j in shown]
            total = fixed + sum(sizes) + len(self.renderer.message_piece(self._notice))
        if total <= budget and not force:
            cut = {j: m for j, (m, _) in self._cut.items()}
            return self._make(head, turns, self.epoch, shown, cut, pinned, False, total)
        return self._new_epoch(head, turns, lengths, pinned, fixed, budget, force)

    def _new_epoch(self, head, turns, lengths, pinned, fixed, budget, force: int = 0) -> View:
        cfg = self.config
        t = len(turns)
        overlap = cfg.overlap
        if force > 1:  # the server refused a new epoch already: smaller budgets, deterministically
            budget = int(budget * 0.75 ** (force - 1))
            overlap >>= force - 1
        base = fixed + sum(lengths[:pinned]) + len(self.renderer.message_piece(self._notice))
        if base > budget:
            raise ContextExhaustedError(f"the pinned prefix and notice ({base} tokens) leave no room in {budget}")
        room = budget - base
        limit = min(overlap, room)
        start = t
        carried = 0
        while start - 1 >= pinned and carried + lengths[start - 1] <= limit:
            start -= 1
            carried += lengths[start]
        cut: dict[int, tuple[list[Message], int]] = {}
        if start == t and t - 1 >= pinned:
            # The most recent turn alone exceeds the overlap budget: keep it anyway, cut to fit if it must be.
            start = t - 1
            carried = lengths[t - 1]
            if carried > room:
                turn, carried = self._cut_to_fit(turns[t - 1], room)
                if turn is None:
                    start, carried = t, 0
                else:
                    cut[t - 1] = (turn, carried)
        self.epoch += 1
        self.epoch_start = start
        self._cut = cut
        shown = list(range(pinned)) + list(range(start, t))
        return self._make(
            head, turns, self.epoch, shown, {j: m for j, (m, _) in cut.items()}, pinned, True, base + carried
        )

    def _cut_to_fit(self, turn: Sequence[Message], room: int) -> tuple[list[Message] | None, int]:
        if room <= 0 or _text_size(turn) == 0:
            return None, 0
        full = len(self.renderer.turn_piece(turn))
        ratio = min(1.0, room / max(full, 1))
        for _ in range(40):
            candidate = cut_turn(turn, ratio)
            size = len(self.renderer.turn_piece(candidate))
            if size <= room:
                return candidate, size
            ratio *= 0.8 * room / size if size > 0 else 0.5
            if ratio < 1e-4:
                break
        return None, 0

    def _make(self, head, turns, epoch, shown, cut, pinned, new_epoch, total) -> View:
        def turn_part(j: int) -> ViewPart:
            return ViewPart("turn", list(cut.get(j, turns[j])), turn=j, cut=j in cut)

        parts = [ViewPart("head", list(head))]
        parts += [turn_part(j) for j in shown if j < pinned]
        if epoch > 0:
            parts.append(ViewPart("notice", [self._notice]))
        parts += [turn_part(j) for j in shown if j >= pinned]
        return View(parts=parts, epoch=epoch, new_epoch=new_epoch, prompt_tokens=total, pinned=pinned,
                    call=len(turns), turns=list(shown))  # fmt: skip
