"""Blacklist extraction: official vs third-party links, broken URLs, mirrors, PaperBench's format, the stage."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from klong.cli.common import app
from klong.factory.blacklist import (
    BlacklistConfig,
    blacklist_entries,
    canonical_url,
    find_repo_links,
    format_blacklist,
    run_blacklist,
)
from klong.factory.layout import papers_path, read_papers, write_papers
from klong.factory.pdf2md import pdf_to_markdown
from klong.factory.records import CodeLink, PaperRecord
from klong.task import parse_blacklist
from tests.shared import shared_path

REC = PaperRecord(key="arxiv:1", slug="p", title="Long Agents")
FILLER = "We study long-horizon agents. " * 40  # pushes later links out of the paper's opening

SNIPPET = f"""# Long Agents

## Abstract

We train agents for hours. Our code is available at https://github.com/klong-lab/KLong-Agents.

## 1 Introduction

{FILLER}

We compare with ReAct (Yao et al., 2023), using the implementation of Smith et al.
https://github.com/smith/react-baseline, and we use the tokenizer from https://github.com/huggingface/tokenizers. Models are on
https://huggingface.co/papers/2401.00001 and https://github.com/features/copilot is irrelevant.

The data are released at https://huggingface.co/datasets/klong-lab/long-tasks.

Our evaluation harness is open-sourced: https://github.com/klong-lab/
harness.git).

See also github.com/someone/some-tool for plots.
"""


def _decisions(text: str, rec: PaperRecord = REC, **cfg) -> dict[str, tuple[bool, str]]:
    return {x.url: (x.official, x.reason) for x in find_repo_links(text, rec, BlacklistConfig(**cfg))}


def test_official_versus_third_party_links() -> None:
    got = _decisions(SNIPPET)
    assert got["https://github.com/klong-lab/KLong-Agents"][0] is True
    assert got["https://huggingface.co/datasets/klong-lab/long-tasks"][0] is True
    # a URL broken across lines after a slash, with `.git` and a trailing `).`
    assert got["https://github.com/klong-lab/harness"][0] is True
    assert got["https://github.com/smith/react-baseline"] == (False, "third-party cue 'et al.' before the link")
    assert got["https://github.com/huggingface/tokenizers"][0] is False
    assert got["https://github.com/someone/some-tool"] == (False, "no release cue near the link")
    # not repositories: HF paper pages, GitHub product pages
    assert not [u for u in got if "papers" in u or "features" in u]


def test_opening_links_and_record_links() -> None:
    text = "# Title\n\nAbstract text.1\n\n1 https://github.com/martian/longeval-summarization\n\n" + FILLER
    assert _decisions(text)["https://github.com/martian/longeval-summarization"][0] is True
    late = FILLER + "\n\nhttps://github.com/martian/longeval-summarization\n"
    assert _decisions(late)["https://github.com/martian/longeval-summarization"][0] is False
    rec = REC.model_copy(update={"code_links": [
        CodeLink(url="https://github.com/Martian/LongEval-Summarization.git", source="huggingface", official=True),
        CodeLink(url="https://github.com/other/thing/tree/main/src", source="user", official=False),
    ]})  # fmt: skip
    got = _decisions(late, rec)
    assert got["https://github.com/Martian/LongEval-Summarization"] == (True, "record: official (huggingface)")
    assert got["https://github.com/other/thing"][0] is False
    assert len([u for u in got if u.lower().endswith("longeval-summarization")]) == 1  # deduplicated, any case


def test_entries_mirrors_and_format() -> None:
    links = find_repo_links(SNIPPET, REC)
    entries = blacklist_entries(links, BlacklistConfig())
    assert entries[:3] == ["https://github.com/klong-lab/KLong-Agents",
                           "https://huggingface.co/datasets/klong-lab/long-tasks",
                           "https://github.com/klong-lab/harness"]  # fmt: skip
    assert "git@github.com:klong-lab/KLong-Agents" in entries
    assert "https://raw.githubusercontent.com/klong-lab/harness" in entries
    assert not any("smith" in e for e in entries)
    assert blacklist_entries(links, BlacklistConfig(mirrors=False)) == entries[:3]
    wide = blacklist_entries(links, BlacklistConfig(include_third_party=True, mirrors=False, extra=["https://x.org/y"]))
    assert "https://github.com/smith/react-baseline" in wide and wide[-1] == "https://x.org/y"
    assert format_blacklist([]) == "none\n"
    assert parse_blacklist(format_blacklist(entries)) == entries
    assert canonical_url("git clone https://www.github.com/a/b.git") == "https://github.com/a/b"
    assert canonical_url("https://github.com/orgs/b") is None


def test_real_paper_footnote_link() -> None:
    md = pdf_to_markdown(shared_path("papers", "pdf", "2023.eacl-main.121.pdf")).markdown
    got = _decisions(md)
    assert got["https://github.com/martiansideofthemoon/longeval-summarization"][0] is True
    assert got["https://github.com/statsmodels/statsmodels"][0] is False  # "measured using the library ..."
    mistral = shared_path("papers", "md", "2310.06825.md").read_text(encoding="utf-8")
    got = _decisions(mistral)
    assert got["https://github.com/mistralai/mistral-src"][0] is True
    assert got["https://github.com/skypilot-org/skypilot"][0] is False


def _factory(tmp_path: Path) -> Path:
    root = tmp_path / "fac"
    (root / "convert" / "md").mkdir(parents=True)
    (root / "convert/md/p.md").write_text(SNIPPET, encoding="utf-8")
    (root / "convert/md/q.md").write_text("# Q\n\nNo links here.\n", encoding="utf-8")
    records = [
        REC.model_copy(update={"files": {"markdown": "convert/md/p.md"}}),
        PaperRecord(key="arxiv:2", slug="q", title="Q", files={"markdown": "convert/md/q.md"}),
        PaperRecord(key="arxiv:3", slug="r", title="R"),
        PaperRecord(key="arxiv:4", slug="s", title="S").dropped("convert", "convert: no text"),
    ]
    write_papers(papers_path(root, "convert"), records)
    return root


def test_blacklist_stage(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    out = {r.key: r for r in run_blacklist(root, BlacklistConfig())}
    p = out["arxiv:1"]
    assert p.files["blacklist"] == "blacklist/p.txt"
    lines = (root / "blacklist/p.txt").read_text().splitlines()
    assert lines[0] == "https://github.com/klong-lab/KLong-Agents" and len(lines) == 3 + 4
    assert "3 official" in p.notes["blacklist"]
    assert {c.url for c in p.code_links if c.official and c.source == "paper_text"} >= {
        "https://github.com/klong-lab/KLong-Agents"
    }
    decisions = json.loads((root / "blacklist/p.links.json").read_text())
    assert {d["url"] for d in decisions if not d["official"]} >= {"https://github.com/smith/react-baseline"}
    assert (root / "blacklist/q.txt").read_text() == "none\n" and out["arxiv:2"].active
    assert "no converted markdown" in out["arxiv:3"].drop.reason
    assert out["arxiv:4"].drop.stage == "convert"
    # resume: done papers are not redone (their markdown may be gone)
    (root / "convert/md/p.md").unlink()
    assert run_blacklist(root, BlacklistConfig()) == list(out.values())
    strict = {r.key: r for r in run_blacklist(root, BlacklistConfig(require_official=True), resume=False)}
    assert "no converted markdown" in strict["arxiv:1"].drop.reason
    assert "no official repository found" in strict["arxiv:2"].drop.reason
    assert read_papers(papers_path(root, "blacklist")) == list(strict.values())


def test_cli_blacklist(tmp_path: Path) -> None:
    root = _factory(tmp_path)
    res = CliRunner().invoke(app, ["factory", "blacklist", "--dir", str(root), "--include-third-party", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["active"] == 2
    assert "https://github.com/smith/react-baseline" in (root / "blacklist/p.txt").read_text()
