"""Split trajectories into training windows by replaying the `ContextPolicy` the runtime uses.

For every assistant turn t the policy is asked for the view the runtime would have sent before generating t. Calls are
grouped by epoch; each epoch becomes one sample: the epoch's last view followed by the turn it generated, with the loss
on every assistant turn generated during the epoch (overlap turns carried in from the previous epoch, and the pinned
reading after epoch 0, are context only). Hence every sample fits the window, every assistant turn is trained exactly
once, and each sample is, token for token, the prompt of each call of its epoch followed by what was generated.

The context settings are the ones the runtime recorded (`trajectory.meta["context"]`) unless the caller gives others.
Where the runtime recorded what each call's prompt was (`meta["context"]` of every assistant message: epoch, prompt
length and fingerprint), every window is checked against it: a window whose prompt for some call differs from what the
model was given is an error naming the trajectory and the turn (`ViewMismatchError`), never a silently different sample.

With a template that rewrites earlier turns (not prefix-stable) an epoch's calls are rendered one by one through the
template itself and merged while each prompt extends the previous sample; otherwise a new sample starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from klong.chat.context import ContextConfig, ContextExhaustedError, ContextPolicy, View
from klong.chat.render import ChatRenderer, Piece, RenderedSequence, TurnPiece, prompt_digest
from klong.chat.turns import split_turns
from klong.exceptions import ConfigError, KlongError
from klong.schema import Message, Sampling, Trajectory


class ViewMismatchError(KlongError):
    """A training window is not what the runtime gave the model at some call (the one-context-view invariant broke)."""


def recorded_context(traj: Trajectory) -> ContextConfig:
    """The context settings the runtime ran `traj` with (`meta["context"]`); `ConfigError` when it recorded none."""
    data = traj.meta.get("context")
    if data is None:
        raise ConfigError(
            f"trajectory {traj.id} records no context settings (not a klong rollout): give the window size and the "
            "other context settings explicitly"
        )
    try:
        return ContextConfig.model_validate(data)
    except ValidationError as e:
        from klong.io import format_validation_error

        raise ConfigError(f"trajectory {traj.id}: meta.context: {format_validation_error(e)}") from None


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
    sampling: Sampling | None = None
    """How the trained turns were sampled (what `logprobs` mean); one setting per window."""
    exact_template: bool = True
    checked: bool = False
    """Every call of this window was checked against the prompt fingerprint the runtime recorded."""

    @property
    def num_tokens(self) -> int:
        return len(self.input_ids)

    @property
    def num_trained(self) -> int:
        return sum(self.loss_mask)

    @property
    def logprobs_temperature(self) -> float | None:
        return self.sampling.logprobs_temperature if self.sampling is not None else None


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
    checked_calls: int = 0
    """Calls whose prompt was checked against the runtime's record."""


def _turn_ranges(group: Sequence[tuple[int, View]]) -> tuple[int, int]:
    return group[0][0], group[-1][0]


class _Builder:
    def __init__(self, renderer: ChatRenderer, head, pieces: list[TurnPiece]):
        self.renderer = renderer
        self.head_piece = renderer.head_piece(head)
        self.pieces = pieces

    def piece_for(self, part) -> TurnPiece:
        return self.renderer.turn_piece(part.messages) if part.cut else self.pieces[part.turn]

    def prompt(self, view: View, trained: set[int], starts: dict[int, int] | None = None) -> RenderedSequence:
        """The view's prompt; `starts` receives, for each trained turn shown, where its generated tokens begin (the
        prompt of the call that generated it is the sequence up to there)."""
        seq = RenderedSequence()
        for part in view.parts:
            if part.kind == "head":
                seq.extend(self.head_piece, trained=False)
            elif part.kind == "notice":
                seq.extend(self.renderer.message_piece(part.messages[0]), trained=False)
            else:
                piece = self.piece_for(part)
                seq.extend(piece.header, trained=False)
                if starts is not None and part.turn in trained:
                    starts[part.turn] = len(seq)
                seq.extend(piece.gen, trained=part.turn in trained and not part.cut)
                seq.extend(piece.rest, trained=False)
        seq.extend(self.renderer.gen_prompt, trained=False)
        return seq

    def composed_sample(self, group: Sequence[tuple[int, View]]) -> tuple[RenderedSequence, dict[int, int]] | None:
        """The epoch's sample from pieces and where each call's prompt ends; None when the template's own text of the
        last view differs."""
        trained = {t for t, _ in group}
        last_t, last_view = group[-1]
        starts: dict[int, int] = {}
        seq = self.prompt(last_view, trained, starts)
        if seq.text != self.renderer.template_text(last_view.messages, add_generation_prompt=True):
            return None
        starts[last_t] = len(seq)
        seq.extend(self.pieces[last_t].gen)
        return seq, starts

    def exact_samples(self, group: Sequence[tuple[int, View]]) -> list[tuple[RenderedSequence, int, int, dict]]:
        out: list[tuple[RenderedSequence, int, int, dict]] = []
        current: RenderedSequence | None = None
        starts: dict[int, int] = {}
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
                    out.append((current, first, last, starts))
                current, first, starts = prompt, t, {}
            starts[t] = len(current)
            current.extend(gen)
            last = t
        if current is not None:
            out.append((current, first, last, starts))
        return out


def _recorded_view(turn: Sequence[Message]) -> dict[str, Any]:
    return (turn[0].meta or {}).get("context") or {}


def _check_calls(traj: Trajectory, turns, seq: RenderedSequence, starts: dict[int, int],
                 views: dict[int, View]) -> int:  # fmt: skip
    """Compare each call of a window with the runtime's record: the view's epoch and structure, and where the backend
    reported the ids it fed the model, the prompt itself (the window up to where the call's generation starts).
    Returns the number of calls checked."""
    checked = 0
    for t, end in sorted(starts.items()):
        record = _recorded_view(turns[t])
        view = views[t]
        if "epoch" in record and record["epoch"] != view.epoch:
            raise ViewMismatchError(
                f"trajectory {traj.id}, turn {t}: the runtime was in context epoch {record['epoch']}, the replay in "
                f"{view.epoch} (other context settings or tokenizer than the run's?)"
            )
        if "view_sha" in record and record["view_sha"] != view.fingerprint():
            raise ViewMismatchError(
                f"trajectory {traj.id}, turn {t}: the replay shows other turns (turns {view.turns}) than the runtime "
                "did at this call (other context settings or tokenizer than the run's?)"
            )
        sha = record.get("prompt_sha")
        if sha is not None:
            ids = seq.input_ids[:end]
            if prompt_digest(ids) != sha:
                raise ViewMismatchError(
                    f"trajectory {traj.id}, turn {t}: the window's prompt ({len(ids)} tokens) is not the one the model "
                    f"was given ({record.get('prompt_tokens')} tokens, fingerprint {sha}); the tokenizer or chat "
                    "template differs from the run's"
                )
        if "view_sha" in record or sha is not None:
            checked += 1
    return checked


def _window_sampling(traj: Trajectory, turns, first: int, last: int) -> Sampling | None:
    found = {turns[t][0].sampling for t in range(first, last + 1) if turns[t][0].logprobs is not None}
    found.discard(None)
    if len(found) > 1:
        raise ConfigError(f"trajectory {traj.id}: turns {first}-{last} were sampled with different settings: {found}")
    return found.pop() if found else None


def split_trajectory(
    traj: Trajectory,
    tokenizer,
    config: ContextConfig | None = None,
    *,
    template_kwargs: dict[str, Any] | None = None,
    end_of_turn: Sequence[str] | None = None,
    check: bool | None = None,
) -> SplitResult:
    """Windows of `traj` under `config` (default: the settings the runtime recorded). With `check`, every call the
    runtime recorded a prompt fingerprint for is checked against its window (`ViewMismatchError` on a difference).
    By default the check runs when the windows are meant to be the run's views: `config` is None or equals the
    recorded settings; other settings (an ablation, a baseline policy) are not checked."""
    if config is None:
        config = recorded_context(traj)
        check = True if check is None else check
    elif check is None:
        check = traj.meta.get("context") is not None and config.model_dump() == traj.meta["context"]
    conv = split_turns(traj.messages)
    system = conv.head[0] if conv.head and conv.head[0].role == "system" else None
    renderer = ChatRenderer(tokenizer, traj.tools, system, end_of_turn=end_of_turn, template_kwargs=template_kwargs)
    pieces = renderer.turn_pieces(conv.turns)
    policy = ContextPolicy(config, renderer, [len(p) for p in pieces])
    builder = _Builder(renderer, conv.head, pieces)

    groups: list[list[tuple[int, View]]] = []
    dropped: list[int] = []
    for t in range(len(conv.turns)):
        # a new epoch the runtime forced after context-length errors from its server is replayed as such
        forced = int(_recorded_view(conv.turns[t]).get("forced") or 0)
        # Replaying a run (check): its budget exactly, the window minus the reserve it kept for the answer, whatever
        # the answer's length. Other settings: windows must hold each answer, so the reserve is at least its length.
        gen_tokens = None if check else len(pieces[t].gen)
        try:
            view = policy.select(conv.head, conv.turns[:t], gen_tokens=gen_tokens, force_new_epoch=forced)
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
    checked_calls = 0
    for group in groups:
        epoch = group[0][1].epoch
        composed = builder.composed_sample(group)
        if composed is not None:
            built = [(composed[0], *_turn_ranges(group), composed[1])]
        else:
            built = builder.exact_samples(group)
        for seq, first, last, starts in built:
            checks = _check_calls(traj, conv.turns, seq, starts, dict(group)) if check else 0
            checked_calls += checks
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
                    sampling=_window_sampling(traj, conv.turns, first, last),
                    exact_template=seq.exact_template and composed is not None,
                    checked=check and checks == len(starts),
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
        checked_calls=checked_calls,
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
    checked_calls: int = 0

    def add(self, result: SplitResult) -> None:
        self.trajectories += 1
        self.windows += len(result.samples)
        self.tokens += sum(s.num_tokens for s in result.samples)
        self.trained_tokens += sum(s.num_trained for s in result.samples)
        self.unique_tokens += result.unique_tokens
        self.assistant_tokens += result.assistant_tokens
        self.turns += result.turns
        self.dropped_turns += len(result.dropped_turns)
        self.checked_calls += result.checked_calls

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
        "checked": pa.array([s.checked for s in samples], type=pa.bool_()),
        "logprobs_temperature": pa.array([s.logprobs_temperature for s in samples], type=pa.float32()),
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

    def write(self, samples: Sequence[Sample], policy: str | None = None) -> None:
        """Append samples (made with `policy`, default the writer's)."""
        if samples:
            self._writer.write_table(samples_table(samples, policy or self.policy))

    def close(self) -> None:
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop what was written; an existing file at `path` stays as it was."""
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    from klong.exceptions import InputFileError

    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"not a readable Parquet file of samples: {e}") from None
