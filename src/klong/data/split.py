"""Split trajectories into training windows by replaying the `ContextPolicy` the runtime uses.

For every assistant turn t the policy is asked for the view the runtime would have sent before generating t. Calls are
grouped by epoch; each epoch becomes one sample: the epoch's last view followed by the turn it generated, with the loss
on every assistant turn generated during the epoch (overlap turns carried in from the previous epoch, and the pinned
reading after epoch 0, are context only). Hence every sample fits the window, every assistant turn is trained exactly
once, and each sample is, token for token, the prompt of each call of its epoch followed by what was generated.

With a template that rewrites earlier turns (not prefix-stable) an epoch's calls are rendered one by one through the
template itself and merged while each prompt extends the previous sample; otherwise a new sample starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klong.chat.context import ContextConfig, ContextExhaustedError, ContextPolicy, View
from klong.chat.render import ChatRenderer, Piece, RenderedSequence, TurnPiece
from klong.chat.turns import split_turns
from klong.schema import Trajectory


@dataclass
class Sample:
    trajectory_id: str
    window: int
    input_ids: list[int]
    loss_mask: list[int]
    epoch: int
    first_turn: int
    """First assistant turn trained in this window."""
    last_turn: int
    logprobs: list[float] | None = None
    """Sampling logprobs aligned with `input_ids` (0 where unknown or untrained); present when the turns recorded them."""
    exact_template: bool = True

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def num_trained(self) -> int:
        return sum(self.loss_mask)


@dataclass
class SplitResult:
    trajectory_id: str
    samples: list[Sample]
    turns: int
    unique_tokens: int
    """Tokens of the whole trajectory rendered once."""
    assistant_tokens: int
    """Generated tokens of all assistant turns (what `epoch` trains exactly once)."""
    dropped_turns: list[int] = field(default_factory=list)
    """Turns no window could train (`truncate` after the window fills; a single generation longer than the window)."""


def _turn_ranges(group: Sequence[tuple[int, View]]) -> tuple[int, int]:
    return group[0][0], group[-1][0]


class _Builder:
    def __init__(self, renderer: ChatRenderer, head, pieces: list[TurnPiece]):
        self.renderer = renderer
        self.head_piece = renderer.head_piece(head)
        self.pieces = pieces

    def piece_for(self, part) -> TurnPiece:
        return self.renderer.turn_piece(part.messages) if part.cut else self.pieces[part.turn]

    def prompt(self, view: View, trained: set[int]) -> RenderedSequence:
        seq = RenderedSequence()
        for part in view.parts:
            if part.kind == "head":
                seq.extend(self.head_piece, trained=False)
            elif part.kind == "notice":
                seq.extend(self.renderer.message_piece(part.messages[0]), trained=False)
            else:
                piece = self.piece_for(part)
                seq.extend(piece.header, trained=False)
                seq.extend(piece.gen, trained=part.turn in trained and not part.cut)
                seq.extend(piece.rest, trained=False)
        seq.extend(self.renderer.gen_prompt, trained=False)
        return seq

    def composed_sample(self, group: Sequence[tuple[int, View]]) -> RenderedSequence | None:
        """The epoch's sample from pieces; None when the template's own text of the last view differs."""
        trained = {t for t, _ in group}
        last_t, last_view = group[-1]
        seq = self.prompt(last_view, trained)
        if seq.text != self.renderer.template_text(last_view.messages, add_generation_prompt=True):
            return None
        seq.extend(self.pieces[last_t].gen)
        return seq

    def exact_samples(self, group: Sequence[tuple[int, View]]) -> list[tuple[RenderedSequence, int, int]]:
        out: list[tuple[RenderedSequence, int, int]] = []
        current: RenderedSequence | None = None
        first = last = 0
        for t, view in group:
            prompt = self.renderer.render_prompt(view.messages)
            gen: Piece = self.pieces[t].gen
            if current is not None and prompt.input_ids[: len(current)] == current.input_ids:
                extra = prompt.input_ids[len(current) :]
                current.input_ids += extra
                current.loss_mask += [0] * len(extra)
                if current.logprobs is not None:
                    current.logprobs += [0.0] * len(extra)
                current.text = prompt.text
            else:
                if current is not None:
                    out.append((current, first, last))
                current, first = prompt, t
            current.extend(gen)
            last = t
        if current is not None:
            out.append((current, first, last))
        return out


def split_trajectory(
    traj: Trajectory,
    tokenizer,
    config: ContextConfig,
    *,
    template_kwargs: dict[str, Any] | None = None,
    end_of_turn: Sequence[str] | None = None,
) -> SplitResult:
    conv = split_turns(traj.messages)
    system = conv.head[0] if conv.head and conv.head[0].role == "system" else None
    renderer = ChatRenderer(tokenizer, traj.tools, system, end_of_turn=end_of_turn, template_kwargs=template_kwargs)
    pieces = renderer.turn_pieces(conv.turns)
    policy = ContextPolicy(config, renderer, [len(p) for p in pieces])
    builder = _Builder(renderer, conv.head, pieces)

    groups: list[list[tuple[int, View]]] = []
    dropped: list[int] = []
    for t in range(len(conv.turns)):
        # a new epoch the runtime forced after a context-length error from its server is replayed as such
        forced = bool(((conv.turns[t][0].meta or {}).get("context") or {}).get("forced"))
        try:
            view = policy.select(conv.head, conv.turns[:t], gen_tokens=len(pieces[t].gen), force_new_epoch=forced)
        except ContextExhaustedError:
            if config.policy == "truncate":
                dropped.extend(range(t, len(conv.turns)))
                break
            dropped.append(t)
            continue
        if view.new_epoch or not groups:
            groups.append([])
        groups[-1].append((t, view))

    samples: list[Sample] = []
    for group in groups:
        epoch = group[0][1].epoch
        composed = builder.composed_sample(group)
        built = [(composed, *_turn_ranges(group))] if composed is not None else builder.exact_samples(group)
        for seq, first, last in built:
            samples.append(
                Sample(
                    trajectory_id=traj.id,
                    window=len(samples),
                    input_ids=seq.input_ids,
                    loss_mask=seq.loss_mask,
                    epoch=epoch,
                    first_turn=first,
                    last_turn=last,
                    logprobs=seq.logprobs,
                    exact_template=seq.exact_template and composed is not None,
                )
            )
    unique = len(builder.head_piece) + sum(len(p) for p in pieces)
    return SplitResult(
        trajectory_id=traj.id,
        samples=samples,
        turns=len(conv.turns),
        unique_tokens=unique,
        assistant_tokens=sum(sum(p.gen.mask) for p in pieces),
        dropped_turns=dropped,
    )


@dataclass
class SplitStats:
    trajectories: int = 0
    windows: int = 0
    tokens: int = 0
    trained_tokens: int = 0
    unique_tokens: int = 0
    assistant_tokens: int = 0
    turns: int = 0
    dropped_turns: int = 0

    def add(self, result: SplitResult) -> None:
        self.trajectories += 1
        self.windows += len(result.samples)
        self.tokens += sum(s.num_tokens for s in result.samples)
        self.trained_tokens += sum(s.num_trained for s in result.samples)
        self.unique_tokens += result.unique_tokens
        self.assistant_tokens += result.assistant_tokens
        self.turns += result.turns
        self.dropped_turns += len(result.dropped_turns)

    @property
    def duplication(self) -> float:
        """Tokens computed in training / unique trajectory tokens."""
        return self.tokens / self.unique_tokens if self.unique_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "duplication": round(self.duplication, 4)}


def samples_table(samples: Iterable[Sample], policy: str):
    import pyarrow as pa

    samples = list(samples)
    columns: dict[str, Any] = {
        "input_ids": pa.array([s.input_ids for s in samples], type=pa.list_(pa.int32())),
        "loss_mask": pa.array([s.loss_mask for s in samples], type=pa.list_(pa.int8())),
        "trajectory_id": pa.array([s.trajectory_id for s in samples], type=pa.string()),
        "window": pa.array([s.window for s in samples], type=pa.int32()),
        "epoch": pa.array([s.epoch for s in samples], type=pa.int32()),
        "first_turn": pa.array([s.first_turn for s in samples], type=pa.int32()),
        "last_turn": pa.array([s.last_turn for s in samples], type=pa.int32()),
        "num_tokens": pa.array([s.num_tokens for s in samples], type=pa.int32()),
        "num_trained": pa.array([s.num_trained for s in samples], type=pa.int32()),
        "exact_template": pa.array([s.exact_template for s in samples], type=pa.bool_()),
        "policy": pa.array([policy] * len(samples), type=pa.string()),
        "logprobs": pa.array([s.logprobs for s in samples], type=pa.list_(pa.float32())),
    }
    return pa.table(columns)


class SampleWriter:
    """Streams samples to a Parquet file; the file appears (atomically renamed) only when `close` succeeds."""

    def __init__(self, path: str | Path, policy: str):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.policy = policy
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        self._writer = pq.ParquetWriter(self._tmp, samples_table([], policy).schema)

    def write(self, samples: Sequence[Sample]) -> None:
        if samples:
            self._writer.write_table(samples_table(samples, self.policy))

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from klong.exceptions import InputFileError

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"not a readable Parquet file of samples: {e}") from None
