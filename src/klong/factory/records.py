"""The paper record that flows through the factory's stages (`papers.jsonl`, one record per line)."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from klong.schema import _now

PAPER_SCHEMA_VERSION = 1

CodeSource = Literal["paper_text", "openreview", "huggingface", "user", "arxiv", "other"]


class CodeLink(BaseModel):
    """A link to code for a paper, where it came from and whether it is the authors' official repository."""

    model_config = ConfigDict(extra="forbid")

    url: str
    source: CodeSource
    official: bool = False
    """True when the source states the repository is the authors' own (an HF `githubRepo`, a link in the paper)."""


class Citations(BaseModel):
    """A citation count with its source and the date it was read."""

    model_config = ConfigDict(extra="forbid")

    count: int
    source: Literal["semantic_scholar", "openalex", "user"]
    date: datetime = Field(default_factory=_now)


class Drop(BaseModel):
    """Why and where a paper left the pipeline."""

    model_config = ConfigDict(extra="forbid")

    stage: str
    reason: str
    """A complete, human-readable reason ("decontam: title matches PaperBench paper 'bbox' (similarity 0.97)")."""


class PaperRecord(BaseModel):
    """One paper, as it is known after the stage that wrote it.

    `key` is the stable identity across stages (`arxiv:2310.06825`, `openreview:abc123`, `local:my-paper`); `slug` is the
    file-system name used for task dirs and per-paper files. Dropped papers stay in the file with `drop` set, so every
    drop keeps its reason; later stages copy them through untouched.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = PAPER_SCHEMA_VERSION
    key: str
    slug: str
    title: str
    abstract: str = ""
    authors: list[str] = Field(default_factory=list)
    venue: str | None = None
    """Human-readable venue ("ICLR 2024")."""
    venue_id: str | None = None
    """OpenReview venue id (`ICLR.cc/2024/Conference`)."""
    tier: Literal["oral", "spotlight", "poster", "unknown"] | None = None
    year: int | None = None
    arxiv_id: str | None = None
    openreview_id: str | None = None
    doi: str | None = None
    pdf_url: str | None = None
    license: str | None = None
    code_links: list[CodeLink] = Field(default_factory=list)
    citations: list[Citations] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict)
    """Per-paper files written by stages, relative to the factory folder (`pdf`, `markdown`, `blacklist`, `task_dir`...)."""
    notes: dict[str, str] = Field(default_factory=dict)
    """Free-form per-stage facts worth keeping (`select: score 0.83`)."""
    drop: Drop | None = None

    @property
    def active(self) -> bool:
        return self.drop is None

    @property
    def official_repos(self) -> list[str]:
        return [c.url for c in self.code_links if c.official]

    def dropped(self, stage: str, reason: str) -> PaperRecord:
        """A copy of this record marked as dropped at `stage` for `reason`."""
        return self.model_copy(update={"drop": Drop(stage=stage, reason=reason)})


def slugify(text: str, max_len: int = 60) -> str:
    """A lowercase ASCII file-system name: `Attention Is All You Need` -> `attention-is-all-you-need`."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return slug[:max_len].rstrip("-") or "paper"
