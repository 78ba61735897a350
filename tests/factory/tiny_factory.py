"""Test helper for the rubric stages: a factory folder holding the shipped tiny paper as the `blacklist` stage would
leave it (markdown, official code, blacklist.txt), built directly with `PaperRecord` + `write_papers`."""

from __future__ import annotations

import shutil
from pathlib import Path

from klong.factory.draft.stage import DraftConfig
from klong.factory.gates import GateConfig
from klong.factory.layout import papers_path, write_papers
from klong.factory.records import CodeLink, PaperRecord

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "examples" / "factory" / "tiny-paper"
TITLE = "GateNorm: Learned Channel Gates for Stable Training of Small Residual Networks"
REPO_URL = "https://github.com/tinylab-ml/gatenorm"
# the tiny paper is ~800 words: PaperBench-sized leaf counts do not apply to it
TINY_DRAFT = {"min_leaves": 40}
TINY_GATES = GateConfig(min_leaves=20)


def tiny_record(root: Path, slug: str = "gatenorm", *, code: bool = True, paper: str | None = None) -> PaperRecord:
    md = root / "convert" / "md" / f"{slug}.md"
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(paper if paper is not None else (TINY / "paper.md").read_text())
    files = {"markdown": f"convert/md/{slug}.md", "blacklist": f"blacklist/{slug}/blacklist.txt"}
    bl = root / files["blacklist"]
    bl.parent.mkdir(parents=True, exist_ok=True)
    bl.write_text(REPO_URL + "\n")
    if code:
        shutil.copytree(TINY / "code", root / "fetch" / "code" / slug)
        files["code"] = f"fetch/code/{slug}"
    return PaperRecord(
        key=f"local:{slug}",
        slug=slug,
        title=TITLE,
        year=2025,
        license="CC-BY-4.0",
        code_links=[CodeLink(url=REPO_URL, source="paper_text", official=True)],
        files=files,
    )


def make_factory(root: Path, records: list[PaperRecord] | None = None) -> list[PaperRecord]:
    records = records if records is not None else [tiny_record(root)]
    write_papers(papers_path(root, "blacklist"), records)
    return records


def draft_config(**kw) -> DraftConfig:
    return DraftConfig(**{**TINY_DRAFT, **kw})
