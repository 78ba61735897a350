"""`klong factory collect`: gather candidate papers from the configured sources into `collect/papers.jsonl`.

Sources, in this order: local folders (`local`), OpenReview venues (`openreview_venues`, accepted papers only),
arXiv id lists (`arxiv_ids`) and arXiv searches (`arxiv_queries`). The same paper found twice (same key, arXiv id,
OpenReview id or normalised title) is kept once, the first record being completed with what the later one adds
(arXiv id, PDF URL, abstract, code links). Slugs are made unique (`-2`, `-3`...).

Resume: papers already written are kept; a source that finished (recorded in `collect/sources.json`) is not queried
again, so an interrupted collection of several venues picks up at the venue it was in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from klong.factory.config import save_stage_config
from klong.factory.decontam import normalize_repo, normalize_title
from klong.factory.layout import StageWriter, stage_dir
from klong.factory.records import PaperRecord
from klong.factory.sources.arxiv_source import ArxivConfig
from klong.factory.sources.openreview import OpenReviewConfig
from klong.factory.sources.progress import Progress
from klong.io import atomic_write_json, read_json

STAGE = "collect"
SOURCES_FILE = "sources.json"


class CollectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    local: list[str] = Field(default_factory=list)
    """Local folders of papers (flat *.pdf/*.md files, or one folder per paper)."""
    openreview_venues: list[str] = Field(default_factory=list)
    """OpenReview venue ids (`ICLR.cc/2024/Conference`): their accepted papers."""
    arxiv_queries: list[str] = Field(default_factory=list)
    """arXiv search queries (`cat:cs.LG AND abs:"reinforcement learning"`)."""
    arxiv_ids: list[str] = Field(default_factory=list)
    """arXiv ids to look up."""
    max_per_source: int | None = None
    """Stop each source after this many papers."""
    openreview: OpenReviewConfig = Field(default_factory=OpenReviewConfig)
    arxiv: ArxivConfig = Field(default_factory=ArxivConfig)


def _merge(old: PaperRecord, new: PaperRecord) -> PaperRecord:
    """`old` completed with the fields `new` knows and `old` does not (code links united by repository)."""
    update: dict[str, Any] = {}
    for field in ("arxiv_id", "openreview_id", "doi", "pdf_url", "license", "year", "venue", "venue_id", "tier"):
        if getattr(old, field) in (None, "unknown") and getattr(new, field) not in (None, "unknown"):
            update[field] = getattr(new, field)
    if not old.abstract and new.abstract:
        update["abstract"] = new.abstract
    if not old.authors and new.authors:
        update["authors"] = new.authors
    seen = {normalize_repo(c.url) or c.url for c in old.code_links}
    extra = [c for c in new.code_links if (normalize_repo(c.url) or c.url) not in seen]
    if extra:
        update["code_links"] = old.code_links + extra
    if update:
        update["notes"] = {**old.notes, "collect": old.notes.get("collect", "") + f"; merged with {new.key}"}
    return old.model_copy(update=update) if update else old


class _Collector:
    def __init__(self, writer: StageWriter, progress: Progress | None):
        self.writer = writer
        self.progress = progress
        self.by_arxiv: dict[str, str] = {}
        self.by_openreview: dict[str, str] = {}
        self.by_title: dict[str, str] = {}
        self.slugs: dict[str, str] = {}
        for rec in writer.records.values():
            self._index(rec)

    def _index(self, rec: PaperRecord) -> None:
        if rec.arxiv_id:
            self.by_arxiv.setdefault(rec.arxiv_id, rec.key)
        if rec.openreview_id:
            self.by_openreview.setdefault(rec.openreview_id, rec.key)
        self.by_title.setdefault(normalize_title(rec.title), rec.key)
        self.slugs.setdefault(rec.slug, rec.key)

    def add(self, rec: PaperRecord) -> None:
        same = (
            (rec.key if rec.key in self.writer.records else None)
            or (self.by_arxiv.get(rec.arxiv_id) if rec.arxiv_id else None)
            or (self.by_openreview.get(rec.openreview_id) if rec.openreview_id else None)
            or self.by_title.get(normalize_title(rec.title))
        )
        if same is not None:
            old = self.writer.records[same]
            merged = _merge(old, rec)
            if merged is not old:
                self.writer.write(merged)
                self._index(merged)
            return
        slug, n = rec.slug, 1
        while slug in self.slugs and self.slugs[slug] != rec.key:
            n += 1
            slug = f"{rec.slug}-{n}"
        if slug != rec.slug:
            rec = rec.model_copy(update={"slug": slug})
        self.writer.write(rec)
        self._index(rec)
        if self.progress is not None:
            self.progress(rec)


def _sources(root: Path, config: CollectConfig, openreview_client: Any) -> list[tuple[str, Callable[[], Iterable]]]:
    """`(label, query)` per source; `query()` runs it (lazily, so a source finished before is never queried)."""
    from klong.factory.sources import arxiv_source
    from klong.factory.sources.local import local_records
    from klong.factory.sources.openreview import accepted_papers

    out: list[tuple[str, Callable[[], Iterable[PaperRecord]]]] = []
    for folder in config.local:
        out.append((f"local:{Path(folder).resolve()}", partial(local_records, folder, root)))
    for venue in config.openreview_venues:
        out.append(
            (f"openreview:{venue}", partial(accepted_papers, config.openreview, venue, client=openreview_client))
        )
    if config.arxiv_ids:
        out.append(
            ("arxiv-ids:" + ",".join(config.arxiv_ids), partial(arxiv_source.lookup, config.arxiv, config.arxiv_ids))
        )
    for query in config.arxiv_queries:
        out.append(
            (f"arxiv:{query}", partial(arxiv_source.search, config.arxiv, query, max_results=config.max_per_source))
        )
    return out


def run_collect(
    root: str | Path,
    config: CollectConfig,
    *,
    resume: bool = True,
    progress: Progress | None = None,
    openreview_client: Any = None,
) -> list[PaperRecord]:
    """Collect papers from every configured source into `root/collect/papers.jsonl` and return the records.

    `openreview_client` (an `openreview.api.OpenReviewClient`) is made from `config.openreview` when not given. A source
    that fails raises a typed error; the papers collected so far stay written and a resumed run continues.
    """
    root = Path(root)
    d = stage_dir(root, STAGE)
    writer = StageWriter(root, STAGE, resume=resume)
    sources_path = d / SOURCES_FILE
    done: dict[str, int] = read_json(sources_path) if resume and sources_path.exists() else {}
    save_stage_config(d, config)
    collector = _Collector(writer, progress)
    for label, query in _sources(root, config, openreview_client):
        if label in done:
            continue
        count = 0
        for rec in islice(query(), config.max_per_source):
            collector.add(rec)
            count += 1
        done[label] = count
        atomic_write_json(sources_path, done, indent=2)
    return writer.finish()
