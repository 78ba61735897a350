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

The windows file (`SampleWriter`) is Parquet with the column names Hugging Face tools read as they are: `input_ids` and
`assistant_masks` (1 on every trained token; TRL's `SFTTrainer` turns the 0s into -100 labels). Its schema metadata
(`klong`, JSON) says what made it: tokenizer (path, vocabulary and file hashes), chat template hash, context settings,
klong version and the inputs (`windows_provenance`); the file's key-value metadata also holds the split report
(`klong.report`: statistics and the dropped turns with their reasons). Files written before the rename (`loss_mask`)
are still read (`read_samples`, `klong.train.data.read_windows`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from klong.chat.context import ContextConfig, ContextExhaustedError, ContextPolicy, View
from klong.chat.render import ChatRenderer, Piece, RenderedSequence, TurnPiece, prompt_digest
from klong.chat.turns import split_turns
from klong.exceptions import ConfigError, KlongError
from klong.schema import Message, Sampling, Trajectory

WINDOWS_FORMAT = "klong.windows"
WINDOWS_FORMAT_VERSION = 2
"""2: the mask column is `assistant_masks` (was `loss_mask`) and the schema metadata records what made the file."""
MASK_COLUMN = "assistant_masks"
"""1 where the token is trained: the name TRL's `SFTTrainer` (and `apply_chat_template(return_assistant_tokens_mask=
True)`) use, so the file trains exactly klong's tokens there without any option."""
LEGACY_MASK_COLUMN = "loss_mask"
"""The mask column of files written by klong before format version 2; still read."""
METADATA_KEY = b"klong"
REPORT_KEY = b"klong.report"


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
class DroppedTurn:
    """An assistant turn no window trains, and why."""

    turn: int
    """Index of the assistant turn (0 = the first assistant message)."""
    message: int
    """Index of its assistant message in `trajectory.messages`."""
    generated_tokens: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SplitResult:
    trajectory_id: str
    samples: list[Sample]
    turns: int
    unique_tokens: int
    """Tokens of the whole trajectory rendered once."""
    assistant_tokens: int
    """Generated tokens of all assistant turns (what `epoch` trains exactly once)."""
    dropped: list[DroppedTurn] = field(default_factory=list)
    """Turns no window could train, with the reason (`truncate` after the window fills; a single generation that does
    not fit the window with the task prompt; a pinned prefix that leaves no room)."""
    checked_calls: int = 0
    """Calls whose prompt was checked against the runtime's record."""

    @property
    def dropped_turns(self) -> list[int]:
        return [d.turn for d in self.dropped]


def _drop_reason(error: ContextExhaustedError, config: ContextConfig, gen: int, fixed: int) -> str:
    """Why turn generating `gen` tokens fits no window (`fixed`: the task prompt and the generation prompt). Worded
    without the turn's own numbers so that the turns dropped for one reason are reported together."""
    window = config.max_context_tokens
    if fixed >= window:
        return f"the task prompt alone ({fixed} tokens) fills the {window}-token window"
    if fixed + max(config.reserve_tokens, gen) > window:
        return (f"the turn's generation is longer than the {window}-token window leaves after the task prompt "
                f"({fixed} tokens)")  # fmt: skip
    return str(error)


def _message_indices(turns: Sequence[Sequence[Message]], start: int) -> list[int]:
    """Index in the trajectory's messages of each turn's assistant message."""
    out, at = [], start
    for turn in turns:
        out.append(at)
        at += len(turn)
    return out


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
    dropped: list[DroppedTurn] = []
    message_at = _message_indices(conv.turns, len(conv.head))
    fixed = len(builder.head_piece) + len(renderer.gen_prompt)

    def drop(t: int, reason: str) -> None:
        dropped.append(DroppedTurn(t, message_at[t], len(pieces[t].gen), reason))

    for t in range(len(conv.turns)):
        # a new epoch the runtime forced after context-length errors from its server is replayed as such
        forced = int(_recorded_view(conv.turns[t]).get("forced") or 0)
        # Replaying a run (check): its budget exactly, the window minus the reserve it kept for the answer, whatever
        # the answer's length. Other settings: windows must hold each answer, so the reserve is at least its length.
        gen_tokens = None if check else len(pieces[t].gen)
        try:
            view = policy.select(conv.head, conv.turns[:t], gen_tokens=gen_tokens, force_new_epoch=forced)
        except ContextExhaustedError as e:
            if config.policy == "truncate":
                full = (f"truncate policy: the window is full from turn {t} on (the prompt and that turn's "
                        f"generation exceed {config.max_context_tokens} tokens)")  # fmt: skip
                for later in range(t, len(conv.turns)):
                    drop(later, full)
                break
            drop(t, _drop_reason(e, config, len(pieces[t].gen), fixed))
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
        dropped=dropped,
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
    dropped: list[dict[str, Any]] = field(default_factory=list)
    """Every dropped turn: trajectory id, turn and message index, its generated tokens, the reason."""

    def add(self, result: SplitResult) -> None:
        self.trajectories += 1
        self.windows += len(result.samples)
        self.tokens += sum(s.num_tokens for s in result.samples)
        self.trained_tokens += sum(s.num_trained for s in result.samples)
        self.unique_tokens += result.unique_tokens
        self.assistant_tokens += result.assistant_tokens
        self.turns += result.turns
        self.dropped_turns += len(result.dropped)
        self.checked_calls += result.checked_calls
        self.dropped += [{"trajectory_id": result.trajectory_id, **d.as_dict()} for d in result.dropped]

    @property
    def duplication(self) -> float:
        """Tokens computed in training / unique trajectory tokens."""
        return self.tokens / self.unique_tokens if self.unique_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "duplication": round(self.duplication, 4)}

    def dropped_summary(self, limit: int = 5, more: str = " (--json lists every dropped turn)") -> list[str]:
        """One line per trajectory and reason: which turns were dropped and why (at most `limit` lines, then one that
        counts the others and ends with `more`)."""
        groups: dict[tuple[str, str], list[int]] = {}
        for d in self.dropped:
            groups.setdefault((d["trajectory_id"], d["reason"]), []).append(d["turn"])
        lines = [f"{tid}: {_ranges(turns)}: {reason}" for (tid, reason), turns in groups.items()]
        if len(lines) > limit:
            lines = [*lines[:limit], f"... and {len(lines) - limit} more{more}"]
        return lines


def _ranges(turns: list[int]) -> str:
    spans: list[list[int]] = []
    for t in turns:
        if spans and t == spans[-1][1] + 1:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return f"turn{'s' if len(turns) > 1 else ''} {text}"


# -- the windows file -----------------------------------------------------------------------------------------------

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                    "added_tokens.json", "tokenizer.model", "chat_template.jinja", "chat_template.json")  # fmt: skip


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def vocab_sha256(tokenizer) -> str:
    """Fingerprint of what the ids mean: every token and its id (added and special tokens included). Two tokenizers
    with the same fingerprint give the windows' ids the same tokens, whatever the files they were saved as."""
    items = sorted(tokenizer.get_vocab().items(), key=lambda kv: (kv[1], kv[0]))
    return _sha256(json.dumps(items, ensure_ascii=False))


def tokenizer_fingerprint(tokenizer, path: str | Path | None = None) -> dict[str, Any]:
    """What identifies a tokenizer: its folder and name, class, size, vocabulary hash, the hash of its files (the
    exact files, for reproduction) and its special tokens."""
    folder = Path(path) if path is not None else None
    files: dict[str, str] = {}
    if folder is not None and folder.is_dir():
        files = {name: _sha256((folder / name).read_bytes()) for name in _TOKENIZER_FILES if (folder / name).is_file()}
    return {
        "path": str(folder) if folder is not None else None,
        "name_or_path": getattr(tokenizer, "name_or_path", None),
        "class": type(tokenizer).__name__,
        "vocab_size": len(tokenizer),
        "vocab_sha256": vocab_sha256(tokenizer),
        "files_sha256": _sha256(json.dumps(sorted(files.items()))) if files else None,
        "files": sorted(files),
        "bos_token": getattr(tokenizer, "bos_token", None),
        "eos_token": getattr(tokenizer, "eos_token", None),
        "pad_token": getattr(tokenizer, "pad_token", None),
    }


def chat_template_sha256(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates
        template = json.dumps(template, sort_keys=True)
    return _sha256(template) if template else None


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def windows_provenance(
    tokenizer,
    contexts: Sequence[ContextConfig],
    *,
    tokenizer_path: str | Path | None = None,
    chat_template: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    inputs: Sequence[tuple[str, str | Path]] = (),
    sources: Sequence[str | Path] = (),
    template_kwargs: Mapping[str, Any] | None = None,
    end_of_turn: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What made a windows file, to store in its schema metadata: format version, klong version and git revision, the
    library versions that tokenise and render, the command, the tokenizer (`tokenizer_fingerprint`), the chat template
    (hash, and the file it came from when not the tokenizer's), the context settings (each distinct one, and the flags
    that overrode the recorded ones) and the inputs: the paths given and a hash over every trajectory (`inputs` =
    (trajectory id, file) pairs). Whether each window was checked against its run is the `checked` column."""
    from klong.provenance import collect_run_meta, package_versions

    meta = collect_run_meta()
    settings: list[dict[str, Any]] = []
    for c in contexts:
        dump = c.model_dump(mode="json")
        if dump not in settings:
            settings.append(dump)
    hashed = sorted((tid, file_sha256(path)) for tid, path in inputs)
    return {
        "format": WINDOWS_FORMAT,
        "format_version": WINDOWS_FORMAT_VERSION,
        "klong_version": meta.klong_version,
        "git_revision": meta.git_revision,
        "git_dirty": meta.git_dirty,
        "command": meta.command,
        "packages": package_versions(("transformers", "tokenizers", "jinja2", "pyarrow")),
        "columns": {"input_ids": "token ids", MASK_COLUMN: "1 where the token is trained"},
        "tokenizer": tokenizer_fingerprint(tokenizer, tokenizer_path),
        "chat_template": {
            "sha256": chat_template_sha256(tokenizer),
            "source": str(chat_template) if chat_template is not None else "tokenizer",
        },
        "template_kwargs": dict(template_kwargs) if template_kwargs else None,
        "end_of_turn": list(end_of_turn) if end_of_turn else None,
        "context": {"settings": settings, "overrides": dict(overrides or {})},
        "inputs": {
            "sources": [str(p) for p in sources],
            "trajectories": len(hashed),
            "sha256": _sha256(json.dumps(hashed)) if hashed else None,
        },
    }


def samples_table(samples: Iterable[Sample], policy: str):
    import pyarrow as pa

    samples = list(samples)
    columns: dict[str, Any] = {
        "input_ids": pa.array([s.input_ids for s in samples], type=pa.list_(pa.int32())),
        MASK_COLUMN: pa.array([s.loss_mask for s in samples], type=pa.list_(pa.int8())),
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
    """Streams samples to a Parquet file; the file appears (atomically renamed) only when `close` succeeds.

    `metadata` (what made the file, `windows_provenance`) goes into the schema metadata under `klong`; the report given
    to `close` (the split statistics) into the file's key-value metadata under `klong.report`."""

    def __init__(self, path: str | Path, policy: str, metadata: Mapping[str, Any] | None = None):
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.policy = policy
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp")
        info = {"format": WINDOWS_FORMAT, "format_version": WINDOWS_FORMAT_VERSION, **(metadata or {})}
        self._schema = samples_table([], policy).schema.with_metadata({METADATA_KEY: json.dumps(info)})
        self._writer = pq.ParquetWriter(self._tmp, self._schema)

    def write(self, samples: Sequence[Sample], policy: str | None = None) -> None:
        """Append samples (made with `policy`, default the writer's)."""
        if samples:
            self._writer.write_table(samples_table(samples, policy or self.policy))

    def close(self, report: Mapping[str, Any] | None = None) -> None:
        if report is not None:
            self._writer.add_key_value_metadata({REPORT_KEY: json.dumps(report)})
        self._writer.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop what was written; an existing file at `path` stays as it was."""
        self._writer.close()
        self._tmp.unlink(missing_ok=True)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a windows file; an older file's `loss_mask` column comes back as `assistant_masks`."""
    import pyarrow.parquet as pq

    from klong.exceptions import InputFileError

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"not a readable Parquet file of samples: {e}") from None
    if MASK_COLUMN not in table.column_names and LEGACY_MASK_COLUMN in table.column_names:
        table = table.rename_columns([MASK_COLUMN if c == LEGACY_MASK_COLUMN else c for c in table.column_names])
    return table.to_pylist()


def read_metadata(path: str | Path, schema_metadata: Mapping[bytes, bytes] | None = None) -> dict[str, Any]:
    """What made a windows file (`windows_provenance`, {} for files written before klong recorded it) with the split
    report under `report` where the file has one. `schema_metadata`: the schema metadata already read with the
    table (the report is read from the file's footer)."""
    import pyarrow.parquet as pq

    from klong.exceptions import InputFileError

    try:
        footer = pq.read_metadata(path).metadata or {}
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"not a readable Parquet file of samples: {e}") from None
    schema = schema_metadata if schema_metadata is not None else pq.read_schema(path).metadata or {}
    out: dict[str, Any] = {}
    for key, target in ((METADATA_KEY, None), (REPORT_KEY, "report")):
        raw = schema.get(key) or footer.get(key)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            raise InputFileError(path, f"the {key.decode()} metadata is not valid JSON") from None
        if target is None:
            out.update(value)
        else:
            out[target] = value
    return out
