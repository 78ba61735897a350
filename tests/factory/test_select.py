"""`select`: venue/tier/year/citation/code filters, per-year normalisation, max_papers ranking, a reason per drop."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from klong.cli import app
from klong.factory.layout import papers_path, read_papers, write_papers
from klong.factory.records import Citations, CodeLink, PaperRecord
from klong.factory.select import SelectConfig, run_select

GH = [CodeLink(url="https://github.com/a/b", source="huggingface", official=True)]


def _rec(key, *, venue_id="ICLR.cc/2024/Conference", tier="oral", year=2024, cites=None, code=True):
    return PaperRecord(
        key=key, slug=key, title=f"Paper {key}", venue_id=venue_id, venue=venue_id.split(".")[0] + f" {year}",
        tier=tier, year=year, citations=[] if cites is None else [Citations(count=cites, source="openalex")],
        code_links=GH if code else [],
    )  # fmt: skip


RECORDS = [
    _rec("a", cites=100),
    _rec("b", cites=10, tier="poster"),
    _rec("c", cites=50, venue_id="ICML.cc/2023/Conference", year=2023),
    _rec("d", cites=5),
    _rec("e", cites=None),
    _rec("f", cites=300, code=False),
    _rec("g", cites=80, year=2021, venue_id="ICLR.cc/2021/Conference"),
    _rec("h", cites=60, tier="spotlight").dropped("enrich", "enrich: earlier drop"),
]


def _run(tmp_path, **cfg):
    write_papers(papers_path(tmp_path, "enrich"), RECORDS)
    return {r.key: r for r in run_select(tmp_path, SelectConfig(**cfg))}


def test_filters_each_give_their_reason(tmp_path):
    out = _run(tmp_path, venues=["ICLR.cc/2024/Conference", "ICML 2023"], tiers=["oral", "spotlight"], min_citations=20,
               require_official_code=True)  # fmt: skip
    assert [k for k, r in out.items() if r.active] == ["a", "c"]
    reasons = {k: r.drop.reason for k, r in out.items() if not r.active}
    assert reasons["b"] == "select: tier 'poster' not in ['oral', 'spotlight']"
    assert reasons["d"] == "select: 5.0 citations < min_citations 20.0"
    assert reasons["e"].startswith("select: no citation count known")
    assert reasons["f"] == "select: no official code link (require_official_code)"
    assert reasons["g"].startswith("select: venue 'ICLR.cc/2021/Conference' not in")
    assert reasons["h"] == "enrich: earlier drop"  # copied through untouched
    assert all(r.drop.stage == "select" for k, r in out.items() if k != "h" and not r.active)
    assert read_papers(papers_path(tmp_path, "select")) == list(out.values())


def test_years_and_per_year_citations(tmp_path):
    out = _run(tmp_path, min_year=2022)
    assert out["g"].drop.reason == "select: year 2021 before min_year 2022"
    out = _run(tmp_path, years=[2023])
    assert [k for k, r in out.items() if r.active] == ["c"]
    # per year at 2025: a 100/2=50, c 50/3=16.7, g 80/5=16, f 300/2=150
    out = _run(tmp_path, min_citations=17, citations_per_year=True, reference_year=2025)
    assert [k for k, r in out.items() if r.active] == ["a", "f"]
    assert out["c"].drop.reason == "select: 16.7 citations per year < min_citations 17.0"
    out = _run(tmp_path, min_citations=1, missing_citations="keep")
    assert out["e"].active


def test_max_papers_keeps_the_best_ranked(tmp_path):
    out = _run(tmp_path, max_papers=3)
    assert [k for k, r in out.items() if r.active] == ["a", "f", "g"]
    assert out["c"].drop.reason.startswith("select: ranked 4 of 7") and "max_papers 3" in out["c"].drop.reason
    assert all(r.drop is not None and r.drop.reason for r in out.values() if not r.active)


def test_select_cli(tmp_path):
    write_papers(papers_path(tmp_path, "enrich"), RECORDS)
    result = CliRunner().invoke(app, ["factory", "select", "--dir", str(tmp_path), "--require-code", "--max-papers",
                                      "2", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["active"] == 2 and info["dropped@select"] == 5 and info["dropped@enrich"] == 1
