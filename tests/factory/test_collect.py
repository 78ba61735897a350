"""`collect`: local folders (both layouts), OpenReview and arXiv sources, de-duplication, resume, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from klong.cli import app
from klong.exceptions import InputFileError
from klong.factory.collect import CollectConfig, run_collect
from klong.factory.layout import papers_path, read_papers
from klong.factory.sources.arxiv_source import ArxivConfig
from klong.factory.sources.http import HttpError
from klong.factory.sources.local import local_records, markdown_abstract, markdown_title
from klong.factory.sources.openreview import OpenReviewConfig
from tests.factory.servers import FixtureServer, Reply, arxiv_api
from tests.factory.test_sources import ARXIV, VENUE, openreview_routes

runner = CliRunner()

TINY_MD = """# Tiny Paper: Learning to Count with Small Transformers

Ada Lovelace, Alan Turing

## Abstract

We train a tiny transformer to count tokens and show that it generalises to longer inputs.
Our code is available at https://github.com/tiny-lab/tiny-count.

## 1 Introduction

Counting is hard for transformers.
"""


def make_pdf(path: Path, pages: int = 1) -> Path:
    """A real (blank) PDF written with pypdfium2."""
    import pypdfium2

    pdf = pypdfium2.PdfDocument.new()
    for _ in range(pages):
        pdf.new_page(612, 792)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.save(str(path))
    pdf.close()
    return path


def make_local_folder(base: Path) -> Path:
    """A folder mixing both layouts: two flat files, a paper folder with meta.yaml and code/, and noise."""
    folder = base / "papers"
    folder.mkdir(parents=True)
    (folder / "flat-notes.md").write_text("# Flat Notes on Sparse Attention\n\n## Abstract\n\nSparse is fast.\n")
    make_pdf(folder / "scanned_paper.pdf")
    tiny = folder / "tiny-paper"
    (tiny / "code").mkdir(parents=True)
    (tiny / "paper.md").write_text(TINY_MD)
    (tiny / "meta.yaml").write_text(
        "arxiv_id: '2501.01234'\nyear: 2025\nvenue: ICLR 2025\nlicense: CC-BY-4.0\n"
        "code_url: https://github.com/tiny-lab/tiny-count\n"
    )
    (tiny / "code" / "train.py").write_text("print('training')\n")
    (tiny / "code" / ".git").mkdir()
    (tiny / "code" / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "empty-dir").mkdir()
    (folder / "notes.txt").write_text("not a paper")
    return folder


def test_local_folder_both_layouts(tmp_path):
    folder = make_local_folder(tmp_path)
    root = tmp_path / "factory"
    records = {r.slug: r for r in local_records(folder, root)}
    assert sorted(records) == ["flat-notes", "scanned-paper", "tiny-paper"]
    flat = records["flat-notes"]
    assert flat.key == "local:flat-notes" and flat.title == "Flat Notes on Sparse Attention"
    assert (
        flat.abstract == "Sparse is fast."
        and (root / flat.files["source_markdown"]).resolve() == (folder / "flat-notes.md").resolve()
    )
    pdf = records["scanned-paper"]
    assert pdf.title == "scanned paper"  # no PDF metadata title: the name, humanised
    assert "source_pdf" in pdf.files
    tiny = records["tiny-paper"]
    assert tiny.title == "Tiny Paper: Learning to Count with Small Transformers"
    assert tiny.abstract.startswith("We train a tiny transformer")
    assert tiny.arxiv_id == "2501.01234" and tiny.year == 2025 and tiny.license == "CC-BY-4.0"
    assert tiny.official_repos == ["https://github.com/tiny-lab/tiny-count"]
    assert tiny.code_links[0].source == "user"
    assert (root / tiny.files["source_code"]).resolve() == (folder / "tiny-paper" / "code").resolve()


def test_local_paths_inside_the_factory_folder_are_relative(tmp_path):
    folder = make_local_folder(tmp_path / "factory")
    rec = local_records(folder, tmp_path / "factory")[0]
    assert rec.files["source_markdown"] == "papers/flat-notes.md"


def test_bad_meta_yaml_names_the_file(tmp_path):
    folder = make_local_folder(tmp_path)
    (folder / "tiny-paper" / "meta.yaml").write_text("year: not-a-year\n")
    with pytest.raises(InputFileError, match=r"meta.yaml.*year"):
        local_records(folder, tmp_path)
    with pytest.raises(InputFileError, match="not found"):
        local_records(tmp_path / "nope", tmp_path)


def test_markdown_helpers():
    assert markdown_title("## Abstract\n\ntext\n# Real Title\n") == "Real Title"
    assert markdown_title("no headings") is None
    assert markdown_abstract("**Abstract**\nFirst line\nsecond.\n## 1 Intro\nx") == "First line second."


def test_collect_all_sources_dedupes_and_keeps_slugs_unique(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    folder = make_local_folder(tmp_path)
    # a second local copy of an arXiv paper (same title as ARXIV[1]) and a paper whose slug collides
    (folder / "mistral.md").write_text("# Mistral 7B\n\nText.\n")
    (folder / "flat_notes.md").write_text("# Flat notes: another paper\n\nText.\n")
    root = tmp_path / "factory"
    with FixtureServer({**openreview_routes(), "/api/query": arxiv_api(ARXIV)}) as srv:
        cfg = CollectConfig(
            local=[str(folder)],
            openreview_venues=[VENUE],
            arxiv_queries=["cat:cs.LG"],
            openreview=OpenReviewConfig(baseurl=srv.url, username="me@example.org", password="pw"),
            arxiv=ArxivConfig(api_url=f"{srv.url}/api/query", delay_s=0, retries=0),
        )
        seen = []
        records = run_collect(root, cfg, progress=seen.append)
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("openreview:") for k in keys) == 5
    assert sum(k.startswith("arxiv:") for k in keys) == 2  # Mistral 7B merged into the local copy
    mistral = next(r for r in records if r.slug == "mistral")
    assert (
        mistral.key == "local:mistral"
        and mistral.arxiv_id == "2310.06825"
        and "merged with arxiv" in mistral.notes["collect"]
    )
    slugs = [r.slug for r in records]
    assert len(slugs) == len(set(slugs)) and "flat-notes-2" in slugs
    assert read_papers(papers_path(root, "collect")) == records
    assert json.loads((root / "collect" / "sources.json").read_text())[f"openreview:{VENUE}"] == 5
    assert (root / "collect" / "config.yaml").exists()
    assert len(seen) == len(records)


def test_collect_resumes_after_a_failed_source(tmp_path, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    folder = make_local_folder(tmp_path)
    root = tmp_path / "factory"
    broken = {"/api/query": Reply(503, "down")}
    with FixtureServer(broken) as srv:
        cfg = CollectConfig(local=[str(folder)], arxiv_ids=["2402.17135", "2310.06825"],
                            arxiv=ArxivConfig(api_url=f"{srv.url}/api/query", delay_s=0, retries=0))  # fmt: skip
        with pytest.raises(HttpError, match="503"):
            run_collect(root, cfg)
    assert len(read_papers(papers_path(root, "collect"))) == 3  # the local papers stay written
    (folder / "late.md").write_text("# Added After The First Run\n")  # the local source is done: not rescanned
    with FixtureServer({"/api/query": arxiv_api(ARXIV)}) as srv:
        cfg = cfg.model_copy(update={"arxiv": ArxivConfig(api_url=f"{srv.url}/api/query", delay_s=0, retries=0)})
        records = run_collect(root, cfg)
        assert len(srv.hits("/api/query")) == 1
    assert sorted(r.key for r in records) == sorted(
        ["local:flat-notes", "local:scanned-paper", "local:tiny-paper", "arxiv:2402.17135", "arxiv:2310.06825"]
    )
    fresh = run_collect(root, cfg.model_copy(update={"arxiv_ids": []}), resume=False)
    assert "local:late" in {r.key for r in fresh} and len(fresh) == 4


def test_collect_cli(tmp_path):
    folder = make_local_folder(tmp_path)
    root = tmp_path / "factory"
    result = runner.invoke(app, ["factory", "collect", "--dir", str(root), "--local", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["papers"] == 3 and info["active"] == 3
    result = runner.invoke(app, ["factory", "collect", "--dir", str(root)])
    assert result.exit_code == 2 and "no source given" in result.output
