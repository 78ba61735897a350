"""The factory folder: one sub-folder per stage, each with its `papers.jsonl`, written atomically and resumable.

```
FACTORY_DIR/
  collect/papers.jsonl       every stage writes the full list (dropped papers included, with their reason)
  enrich/papers.jsonl
  ...
  fetch/pdf/<slug>.pdf       per-paper files live in the stage that made them
  convert/md/<slug>.md
  package/papers/<slug>/     task dirs in PaperBench's layout (what the agent may see, plus rubric.json)
  package/factory/<slug>/    the sidecar: provenance, drafting stages, quality report (never reaches the agent)
```

A stage reads the previous stage's file (`read_input`), and writes its own with a `StageWriter`, which appends one
record per line as soon as a paper is done and, on resume, skips the papers already in the output.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from klong.exceptions import ConfigError, InputFileError
from klong.factory.config import save_stage_config
from klong.factory.records import PaperRecord
from klong.io import atomic_write_text

STAGES = ("collect", "enrich", "select", "decontam", "fetch", "convert", "blacklist", "draft", "check", "package")
PAPERS_FILE = "papers.jsonl"


def stage_dir(root: str | Path, stage: str) -> Path:
    if stage not in STAGES:
        raise ConfigError(f"unknown factory stage {stage!r}; stages: {', '.join(STAGES)}")
    return Path(root) / stage


def previous_stage(stage: str) -> str | None:
    i = STAGES.index(stage)
    return STAGES[i - 1] if i else None


def papers_path(root: str | Path, stage: str) -> Path:
    return stage_dir(root, stage) / PAPERS_FILE


def read_papers(path: str | Path) -> list[PaperRecord]:
    """Read a `papers.jsonl`; a bad line raises `InputFileError` naming the file and line. A torn last line (a writer
    killed mid-line) is ignored, since `StageWriter` will redo that paper."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found (run the previous factory stage first)")
    lines = path.read_text(encoding="utf-8").splitlines()
    records: list[PaperRecord] = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(PaperRecord.model_validate_json(line))
        except ValidationError as e:
            if i == len(lines) and not line.rstrip().endswith("}"):
                break
            raise InputFileError(path, f"line {i}: not a paper record ({e.errors()[0]['msg']})") from None
    return records


def read_input(root: str | Path, stage: str) -> list[PaperRecord]:
    """The records a stage works on: the previous stage's output (the first stage has none)."""
    prev = previous_stage(stage)
    if prev is None:
        return []
    return read_papers(papers_path(root, prev))


def write_papers(path: str | Path, records: Iterable[PaperRecord]) -> None:
    """Write a whole `papers.jsonl` atomically."""
    atomic_write_text(path, "".join(r.model_dump_json(exclude_none=True) + "\n" for r in records))


class StageWriter:
    """Appends finished records to a stage's `papers.jsonl`, one fsync'd line each; on resume, knows what is done.

    Use `done(key)` to skip a paper already written, `write(record)` after finishing one, and `finish(order)` at the
    end to rewrite the file atomically in the input's order (so outputs are deterministic whatever the resume history).
    """

    def __init__(self, root: str | Path, stage: str, *, resume: bool = True):
        self.stage = stage
        self.path = papers_path(root, stage)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, PaperRecord] = {}
        if resume and self.path.exists():
            for r in read_papers(self.path):
                self.records[r.key] = r
        else:
            write_papers(self.path, [])

    def done(self, key: str) -> bool:
        return key in self.records

    def write(self, record: PaperRecord) -> None:
        self.records[record.key] = record
        with self.path.open("a", encoding="utf-8") as f:
            f.write(record.model_dump_json(exclude_none=True) + "\n")
            f.flush()

    def finish(self, order: Iterable[str] | None = None) -> list[PaperRecord]:
        keys = list(order) if order is not None else list(self.records)
        ordered = set(keys)
        out = [self.records[k] for k in keys if k in self.records]
        out += [r for k, r in self.records.items() if k not in ordered]
        write_papers(self.path, out)
        return out


def run_per_paper(
    root: str | Path,
    stage: str,
    config: BaseModel,
    one: Callable[[PaperRecord], PaperRecord],
    *,
    resume: bool = True,
    progress: Callable[[PaperRecord], None] | None = None,
) -> list[PaperRecord]:
    """The loop every resumable per-paper stage shares: read the previous stage's records, save the resolved config,
    write `one(record)` for each active paper not already done (dropped papers are copied through untouched), call
    `progress` once per paper (done before or now), and rewrite the output in the input's order."""
    records = read_input(root, stage)
    writer = StageWriter(root, stage, resume=resume)
    save_stage_config(stage_dir(root, stage), config)
    for rec in records:
        if not writer.done(rec.key):
            writer.write(one(rec) if rec.active else rec)
        if progress is not None:
            progress(writer.records[rec.key])
    return writer.finish(r.key for r in records)


def summary(records: Iterable[PaperRecord]) -> dict[str, int]:
    """Counts for a progress line: active papers and drops per stage."""
    counts: dict[str, int] = {"active": 0}
    for r in records:
        if r.drop is None:
            counts["active"] += 1
        else:
            counts[f"dropped@{r.drop.stage}"] = counts.get(f"dropped@{r.drop.stage}", 0) + 1
    return counts


def dump_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    """Write plain JSON rows (reports, decisions) atomically."""
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
