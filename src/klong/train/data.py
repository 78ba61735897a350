"""Training windows: loading, padding-free packing, and the deterministic order of optimizer steps.

Windows come from `klong split` Parquet files or from trajectories split on the fly with a `ContextConfig`. Each epoch
shuffles the windows with `seed + epoch`, packs them greedily (in that order) into rows of at most `pack_length`
tokens, and groups rows into optimizer steps of `rows_per_step` rows (the last step of an epoch may have fewer: every
window is trained in every epoch). Position ids
restart at every window, so attention never crosses windows (transformers builds the block-diagonal mask from the
position ids; flash-attention uses them as sequence boundaries). The plan is a pure function of the data and
(seed, epoch): a resumed run sees exactly the same steps.

A windows file's mask column is `assistant_masks` (`loss_mask` in files from before windows format version 2).
Given the training tokenizer, a file that records another tokenizer (`klong.data.split.windows_provenance`) is refused:
its ids would mean other tokens; another chat template than the one the windows were rendered with is a warning.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from klong.exceptions import ConfigError, InputFileError


@dataclass
class Window:
    input_ids: list[int]
    loss_mask: list[int]
    trajectory_id: str
    window: int
    logprobs: list[float] | None = None
    advantage: float = 0.0
    """Per-window advantage (RL); 0 for SFT."""
    temperature: float = 1.0
    """The temperature at which `logprobs` were taken (RL recomputes the policy's at the same one)."""

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class PackedRow:
    input_ids: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    loss_positions: list[int] = field(default_factory=list)
    """Positions whose next token is trained (the logits there predict it)."""
    targets: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    """Per-target weight (1, or 1/trained tokens of the trajectory under trajectory weighting)."""
    windows: list[tuple[str, int]] = field(default_factory=list)
    old_logprobs: list[float] = field(default_factory=list)
    """Sampling logprob of each target (RL), 0 when unknown."""
    advantages: list[float] = field(default_factory=list)
    temperatures: list[float] = field(default_factory=list)
    """Temperature of each target's recorded logprob (RL)."""

    def __len__(self) -> int:
        return len(self.input_ids)

    def add(self, w: Window, weight: float) -> None:
        offset = len(self.input_ids)
        self.input_ids.extend(w.input_ids)
        self.position_ids.extend(range(len(w)))
        for i in range(len(w) - 1):
            if w.loss_mask[i + 1]:
                self.loss_positions.append(offset + i)
                self.targets.append(w.input_ids[i + 1])
                self.weights.append(weight)
                self.old_logprobs.append(w.logprobs[i + 1] if w.logprobs is not None else 0.0)
                self.advantages.append(w.advantage)
                self.temperatures.append(w.temperature)
        self.windows.append((w.trajectory_id, w.window))


def read_windows(path: str | Path, tokenizer=None) -> list[Window]:
    """The windows of a `klong split` Parquet file; with `tokenizer` (the one training will use), the file's record
    of the tokenizer it was made with is checked first (`check_provenance`)."""
    from klong.data.split import LEGACY_MASK_COLUMN, MASK_COLUMN, read_metadata

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"not a readable Parquet file of windows: {e}") from None
    if tokenizer is not None:
        check_provenance(path, read_metadata(path, table.schema.metadata or {}), tokenizer)
    mask_column = next((c for c in (MASK_COLUMN, LEGACY_MASK_COLUMN) if c in table.column_names), None)
    missing = [c for c, there in (("input_ids", "input_ids" in table.column_names), (MASK_COLUMN, mask_column))
               if not there]  # fmt: skip
    if missing:
        raise InputFileError(path, f"missing column(s) {', '.join(missing)} (expected `klong split` output; files "
                                   f"from klong before format version 2 have {LEGACY_MASK_COLUMN})")  # fmt: skip
    cols = table.to_pydict()
    n = table.num_rows
    out = []
    for i in range(n):
        ids, mask = cols["input_ids"][i], cols[mask_column][i]
        if len(ids) != len(mask):
            raise InputFileError(path, f"row {i}: input_ids and {mask_column} differ in length")
        lp = cols.get("logprobs", [None] * n)[i]
        temp = cols.get("logprobs_temperature", [None] * n)[i]
        out.append(Window(ids, mask, cols.get("trajectory_id", [str(path)] * n)[i],
                          cols.get("window", list(range(n)))[i], lp, temperature=temp if temp is not None else 1.0))  # fmt: skip
    return out


def check_provenance(path: str | Path, provenance: dict, tokenizer) -> None:
    """Refuse (`InputFileError`) windows made with another vocabulary than `tokenizer`'s; warn when the chat template
    differs from the one they were rendered with (the model would be trained on one format and prompted with another).
    Files that record nothing (written before klong recorded it) are not checked."""
    from klong.data.split import chat_template_sha256, vocab_sha256

    made = provenance.get("tokenizer") or {}
    if made.get("vocab_sha256") and made["vocab_sha256"] != vocab_sha256(tokenizer):
        where = made.get("path") or made.get("name_or_path") or "another tokenizer"
        raise InputFileError(
            path,
            f"made with the tokenizer {where} ({made.get('vocab_size')} tokens), not the training tokenizer "
            f"{getattr(tokenizer, 'name_or_path', '?')} ({len(tokenizer)} tokens, another vocabulary): its ids would "
            "mean other tokens; re-split with --tokenizer set to the training model's tokenizer",
        )
    template = (provenance.get("chat_template") or {}).get("sha256")
    if template and template != chat_template_sha256(tokenizer):
        source = provenance["chat_template"].get("source")
        origin = "the split tokenizer's own" if source == "tokenizer" else source
        warnings.warn(f"{path}: the windows were rendered with another chat template ({origin}, sha256 "
                      f"{template[:12]}) than the training tokenizer's: the model is trained on one format and will "
                      "be prompted with the other", stacklevel=2)  # fmt: skip


def load_windows(sources: Sequence[str], tokenizer=None, split=None) -> list[Window]:
    """Windows from Parquet files (`klong split`), or from trajectory files/folders split with `split` (default: the
    context settings each trajectory recorded). With `tokenizer`, Parquet files are checked against it
    (`check_provenance`)."""
    windows: list[Window] = []
    for source in sources:
        path = Path(source)
        if not path.exists():
            raise InputFileError(path, "training data not found")
        if path.suffix == ".parquet":
            windows += read_windows(path, tokenizer)
            continue
        if tokenizer is None:
            raise ConfigError(f"{path}: trajectories need a tokenizer to be split on the fly")
        from klong.data.split import split_trajectory
        from klong.data.stats import trajectory_files
        from klong.schema import read_trajectory

        for f in trajectory_files(path):
            for s in split_trajectory(read_trajectory(f), tokenizer, split).samples:
                windows.append(window_of(s))
    if not windows:
        raise ConfigError(f"no training windows found in {', '.join(sources)}")
    return windows


def window_of(sample, advantage: float = 0.0) -> Window:
    """A training window from a `klong.data.split.Sample`."""
    temp = sample.logprobs_temperature
    return Window(sample.input_ids, sample.loss_mask, sample.trajectory_id, sample.window, sample.logprobs,
                  advantage=advantage, temperature=temp if temp is not None else 1.0)  # fmt: skip


def token_weights(windows: Sequence[Window], mode: str) -> dict[tuple[str, int], float]:
    """Weight of each trained token: 1 (`token`: loss averaged per trained token), or 1 / trained tokens of its
    trajectory (`trajectory`: every trajectory counts the same however many windows it has)."""
    if mode == "token":
        return {(w.trajectory_id, w.window): 1.0 for w in windows}
    per_traj: dict[str, int] = {}
    for w in windows:
        per_traj[w.trajectory_id] = per_traj.get(w.trajectory_id, 0) + sum(w.loss_mask[1:])
    return {(w.trajectory_id, w.window): 1.0 / max(1, per_traj[w.trajectory_id]) for w in windows}


def pack(windows: Sequence[Window], pack_length: int, weights: dict[tuple[str, int], float]) -> list[PackedRow]:
    rows: list[PackedRow] = []
    current = PackedRow()
    for w in windows:
        if len(w) > pack_length:
            raise ConfigError(
                f"window {w.trajectory_id}#{w.window} has {len(w)} tokens, more than pack_length={pack_length}: raise "
                f"it (-c pack_length={len(w)} or more) or re-split with a smaller --max-len"
            )
        if len(current) + len(w) > pack_length and len(current):
            rows.append(current)
            current = PackedRow()
        current.add(w, weights[(w.trajectory_id, w.window)])
    if len(current):
        rows.append(current)
    return rows


def epoch_steps(windows: Sequence[Window], *, seed: int, epoch: int, pack_length: int, rows_per_step: int,
                weighting: str = "token", shuffle: bool = True) -> list[list[PackedRow]]:  # fmt: skip
    order = list(windows)
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    rows = pack(order, pack_length, token_weights(windows, weighting))
    return [rows[i : i + rows_per_step] for i in range(0, len(rows), rows_per_step)]
