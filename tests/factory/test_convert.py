"""The `convert` stage: markdown copied through, PDFs converted, drops with reasons, resume, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from typer.testing import CliRunner

from klong.cli.common import app
from klong.exceptions import ConfigError
from klong.factory.convert import ConvertConfig, run_convert
from klong.factory.layout import papers_path, read_papers, write_papers
from klong.factory.records import PaperRecord
from tests.shared import shared_path


def _factory(tmp_path: Path) -> Path:
    root = tmp_path / "fac"
    src = root / "fetch"
    (src / "pdf").mkdir(parents=True)
    (src / "md").mkdir()
    (src / "md" / "mine.md").write_text("# My Paper\n\nSome text about agents.\n", encoding="utf-8")
    shutil.copyfile(shared_path("papers", "pdf", "2305.03393v1-pg9.pdf"), src / "pdf" / "otsl.pdf")
    (src / "pdf" / "broken.pdf").write_bytes(b"%PDF-1.7\ngarbage that is not a PDF body\n")
    blank = pdfium.PdfDocument.new()
    blank.new_page(300, 400)
    blank.save(str(src / "pdf" / "blank.pdf"))
    records = [
        PaperRecord(key="local:mine", slug="mine", title="My Paper", files={"source_markdown": "fetch/md/mine.md"}),
        PaperRecord(key="arxiv:2305.03393", slug="otsl", title="OTSL", files={"pdf": "fetch/pdf/otsl.pdf"}),
        PaperRecord(key="local:broken", slug="broken", title="Broken", files={"source_pdf": "fetch/pdf/broken.pdf"}),
        PaperRecord(key="local:blank", slug="blank", title="Blank", files={"pdf": "fetch/pdf/blank.pdf"}),
        PaperRecord(key="local:none", slug="none", title="No text"),
        PaperRecord(key="local:gone", slug="gone", title="Gone").dropped("decontam", "decontam: matches bbox"),
    ]
    write_papers(papers_path(root, "fetch"), records)
    return root


def test_convert_stage_outputs_and_drop_reasons(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    seen: list[str] = []
    out = run_convert(root, ConvertConfig(min_words=100), progress=lambda r: seen.append(r.key))
    by = {r.key: r for r in out}
    assert [r.key for r in out] == [r.key for r in read_papers(papers_path(root, "fetch"))] and len(seen) == 6
    mine = by["local:mine"]
    assert mine.files["markdown"] == "convert/md/mine.md"
    assert (root / "convert/md/mine.md").read_text() == "# My Paper\n\nSome text about agents.\n"
    otsl = by["arxiv:2305.03393"]
    assert otsl.active and otsl.files["markdown"] == "convert/md/otsl.md"
    assert "### 5.1 Hyper Parameter Optimization" in (root / "convert/md/otsl.md").read_text()
    assert otsl.notes["convert"].startswith("pypdfium2: 1 pages, 3") and "words" in otsl.notes["convert"]
    assert "not a PDF, or the PDF is damaged" in by["local:broken"].drop.reason
    assert "fetch/pdf/broken.pdf" in by["local:broken"].drop.reason
    assert "no extractable text" in by["local:blank"].drop.reason
    assert "no paper text" in by["local:none"].drop.reason
    assert by["local:gone"].drop.stage == "decontam"  # copied through untouched
    assert all(r.drop.stage == "convert" for k, r in by.items() if k in {"local:broken", "local:blank", "local:none"})
    assert (root / "convert" / "config.yaml").exists()
    assert read_papers(papers_path(root, "convert")) == out


def test_too_little_text_is_dropped(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    out = {r.key: r for r in run_convert(root, ConvertConfig(min_words=5000))}
    reason = out["arxiv:2305.03393"].drop.reason
    assert "gave only 3" in reason and "5000 required" in reason
    assert out["local:mine"].active  # markdown sources only need to be non-empty


def test_resume_skips_done_papers_and_no_resume_redoes_them(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    first = run_convert(root, ConvertConfig(min_words=100))
    (root / "fetch/pdf/otsl.pdf").unlink()  # a redo would now fail
    again = run_convert(root, ConvertConfig(min_words=100))
    assert again == first
    redone = {r.key: r for r in run_convert(root, ConvertConfig(min_words=100), resume=False)}
    assert "file not found" in redone["arxiv:2305.03393"].drop.reason


def test_unavailable_backend_stops_before_any_paper(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    pytest.importorskip("pypdfium2")
    try:
        import docling  # noqa: F401

        pytest.skip("docling is installed here")
    except ImportError:
        pass
    with pytest.raises(ConfigError, match="docling"):
        run_convert(root, ConvertConfig(backend="docling"))
    assert not papers_path(root, "convert").exists()


def test_cli_convert_and_pdf2md(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["factory", "convert", "--dir", str(root), "--min-words", "100", "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["papers"] == 6 and info["active"] == 2
    res = runner.invoke(app, ["factory", "convert", "--dir", str(root), "--backend", "nope"])
    assert res.exit_code == 2 and "backend" in res.output and "'pypdfium2', 'docling' or 'latex'" in res.output
    pdf = shared_path("papers", "pdf", "2305.03393v1-pg9.pdf")
    expected = shared_path("papers", "pdf", "2305.03393v1-pg9.expected.md")
    out = tmp_path / "one.md"
    res = runner.invoke(app, ["factory", "pdf2md", str(pdf), "--out", str(out), "--expected", str(expected), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["recall"]["heading_recall"] == 1.0 and info["recall"]["token_recall"] > 0.9
    assert out.read_text().startswith("order to compute the TED score")
    res = runner.invoke(app, ["factory", "pdf2md", str(tmp_path / "missing.pdf")])
    assert res.exit_code == 2 and "missing.pdf: file not found" in res.output
