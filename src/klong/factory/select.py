"""`klong factory select`: keep the papers worth turning into tasks; every other paper is dropped with its reason.

Filters, applied in this order (the first that fails is the reason): venues (matched against `venue_id` exactly or
`venue` case-insensitively, e.g. `ICLR.cc/2024/Conference` or `ICLR 2024`), tiers, years (`years` list and/or
`min_year`/`max_year`), minimum citations (the highest count any source gave; with `citations_per_year` the count is
divided by the paper's age in years, `reference_year - year + 1`), an official code link. Then `max_papers` keeps the
highest-ranked survivors (by citations, per year when so configured; ties by input order) and drops the rest.

The stage is a pure function of its input and config, so it is recomputed on every run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from klong.factory.config import save_stage_config
from klong.factory.layout import read_input, stage_dir, write_papers
from klong.factory.records import PaperRecord
from klong.factory.sources.progress import Progress

STAGE = "select"


class SelectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venues: list[str] = Field(default_factory=list)
    tiers: list[Literal["oral", "spotlight", "poster", "unknown"]] = Field(default_factory=list)
    years: list[int] = Field(default_factory=list)
    min_year: int | None = None
    max_year: int | None = None
    min_citations: float | None = None
    citations_per_year: bool = False
    """Compare `min_citations` (and rank for `max_papers`) on citations per year since publication."""
    reference_year: int | None = None
    """The year citations-per-year is computed at (default: this year)."""
    missing_citations: Literal["drop", "keep"] = "drop"
    """What `min_citations` does with a paper no source gave a count for."""
    require_official_code: bool = False
    max_papers: int | None = None


def citation_score(rec: PaperRecord, config: SelectConfig) -> float | None:
    """The paper's citation count (max over sources), per year when configured; None when no source gave one."""
    if not rec.citations:
        return None
    count = float(max(c.count for c in rec.citations))
    if config.citations_per_year:
        ref = config.reference_year or date.today().year
        count /= max(1, ref - (rec.year or ref) + 1)
    return count


def reject_reason(rec: PaperRecord, config: SelectConfig) -> str | None:
    """Why `rec` fails the filters (before `max_papers`), or None when it passes."""
    if config.venues:
        wanted = {v.lower() for v in config.venues}
        if not ({(rec.venue_id or "").lower(), (rec.venue or "").lower()} & wanted):
            return f"venue {rec.venue_id or rec.venue or 'unknown'!r} not in {config.venues}"
    if config.tiers and (rec.tier or "unknown") not in config.tiers:
        return f"tier {rec.tier or 'unknown'!r} not in {config.tiers}"
    if config.years and rec.year not in config.years:
        return f"year {rec.year} not in {config.years}"
    if config.min_year is not None and (rec.year is None or rec.year < config.min_year):
        return f"year {rec.year} before min_year {config.min_year}"
    if config.max_year is not None and (rec.year is None or rec.year > config.max_year):
        return f"year {rec.year} after max_year {config.max_year}"
    if config.min_citations is not None:
        score = citation_score(rec, config)
        what = "citations per year" if config.citations_per_year else "citations"
        if score is None and config.missing_citations == "drop":
            return f"no citation count known (min_citations {config.min_citations})"
        if score is not None and score < config.min_citations:
            return f"{score:.1f} {what} < min_citations {config.min_citations}"
    if config.require_official_code and not rec.official_repos:
        return "no official code link (require_official_code)"
    return None


def run_select(
    root: str | Path, config: SelectConfig, *, resume: bool = True, progress: Progress | None = None
) -> list[PaperRecord]:
    """Apply the filters to `enrich/papers.jsonl`, write `select/papers.jsonl`, return the records."""
    records = read_input(root, STAGE)
    out: list[PaperRecord] = []
    for rec in records:
        if rec.active and (why := reject_reason(rec, config)) is not None:
            rec = rec.dropped(STAGE, f"select: {why}")
        out.append(rec)
    if config.max_papers is not None:
        active = [i for i, r in enumerate(out) if r.active]
        ranked = sorted(active, key=lambda i: (-(citation_score(out[i], config) or 0.0), i))
        for rank, i in enumerate(ranked):
            if rank >= config.max_papers:
                score = citation_score(out[i], config)
                out[i] = out[i].dropped(
                    STAGE, f"select: ranked {rank + 1} of {len(ranked)} (citation score {score}), beyond "
                    f"max_papers {config.max_papers}",
                )  # fmt: skip
    d = stage_dir(root, STAGE)
    d.mkdir(parents=True, exist_ok=True)
    write_papers(d / "papers.jsonl", out)
    save_stage_config(d, config)
    if progress is not None:
        for rec in out:
            progress(rec)
    return out
