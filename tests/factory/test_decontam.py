"""`decontam`: every PaperBench paper is caught by title variants, ids and repository URL variants; unrelated papers
are not; user lists (YAML/JSON/txt) and abstract similarity work; the stage drops with reasons."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from klong.cli import app
from klong.exceptions import InputFileError
from klong.factory.decontam import (
    DecontamConfig,
    Decontaminator,
    builtin_eval_set,
    load_eval_set,
    normalize_repo,
    normalize_title,
    run_decontam,
)
from klong.factory.layout import papers_path, read_papers, write_papers
from klong.factory.records import CodeLink, PaperRecord
from tests.shared import shared_path

PB = builtin_eval_set("paperbench")
CHECK = Decontaminator([PB], DecontamConfig())


def _rec(title="An Unrelated Paper About Graph Neural Networks", **kw) -> PaperRecord:
    return PaperRecord(key=kw.pop("key", "arxiv:0000.00000"), slug=kw.pop("slug", "unrelated"), title=title, **kw)


def _typo(title: str) -> str:
    """Drop one letter in the middle of the longest word (a small typo)."""
    words = title.split()
    i = max(range(len(words)), key=lambda j: len(words[j]))
    w = words[i]
    words[i] = w[: len(w) // 2] + w[len(w) // 2 + 1 :]
    return " ".join(words)


def _swap(title: str) -> str:
    """Swap two adjacent letters of the longest word."""
    words = title.split()
    i = max(range(len(words)), key=lambda j: len(words[j]))
    w, k = words[i], len(words[i]) // 2
    words[i] = w[: k - 1] + w[k] + w[k - 1] + w[k + 1 :]
    return " ".join(words)


TITLE_VARIANTS = [
    lambda t: t,
    str.lower,
    str.upper,
    lambda t: t.replace(":", " -").replace("-", " ") + ".",
    lambda t: "  ".join(t.split()) + "  ",
    lambda t: t.replace("-", ""),
    _typo,
    _swap,
]


def test_the_builtin_set_has_all_23_paperbench_papers():
    ids = {p.id for p in PB.papers}
    assert len(PB.papers) == 23 == len(ids)
    splits = shared_path("paperbench", "splits")
    expected = set((splits / "all.txt").read_text().split()) | set((splits / "dev.txt").read_text().split())
    assert ids == expected


def test_shipped_papers_use_the_exact_titles_and_blacklists():
    papers = {p.id: p for p in PB.papers}
    for folder in sorted(shared_path("paperbench", "papers").iterdir()):
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        ours = papers[folder.name]
        assert ours.title == cfg["title"], folder.name
        blacklist = [x.strip() for x in (folder / "blacklist.txt").read_text().splitlines() if x.strip() != "none"]
        assert ours.repos == [x for x in blacklist if x], folder.name


@pytest.mark.parametrize("variant", range(len(TITLE_VARIANTS)))
def test_every_paperbench_paper_is_caught_by_title_variants(variant):
    for p in PB.papers:
        title = TITLE_VARIANTS[variant](p.title)
        m = CHECK.match(_rec(title=title))
        assert m is not None and m.eval_id == p.id, (p.id, title)
        assert m.kind in ("title", "fuzzy_title")


def test_title_without_its_acronym_prefix_is_caught():
    m = CHECK.match(
        _rec(title="Adaptive Pruning and Tuning Pretrained Language Models for Efficient Training and Inference")
    )
    assert m is not None and m.eval_id == "adaptive-pruning"


def test_every_paperbench_paper_is_caught_by_id():
    for p in PB.papers:
        m = CHECK.match(_rec(slug=p.id))
        assert m is not None and m.eval_id == p.id and m.kind == "id"
        if p.arxiv_id:
            m = CHECK.match(_rec(arxiv_id=p.arxiv_id + "v3"))
            assert m is not None and m.eval_id == p.id and m.kind == "arxiv_id"
    assert sum(bool(p.arxiv_id) for p in PB.papers) >= 15


def _repo_variants(url: str) -> list[str]:
    owner_name = url.split("github.com/", 1)[1]
    return [
        url,
        url.replace("https://", "http://"),
        url.replace("https://", "https://www."),
        url + ".git",
        url + "/",
        url.upper(),
        f"git@github.com:{owner_name}.git",
        f"ssh://git@github.com/{owner_name}",
        f"git+https://github.com/{owner_name}.git",
        f"{url}/tree/main/src",
        f"https://gitlab.com/{owner_name}",  # a mirror on another host
        f"https://github.com/{owner_name}#readme",
    ]


def test_every_paperbench_repository_is_caught_by_url_variant():
    count = 0
    for p in PB.papers:
        for repo in p.repos:
            for url in _repo_variants(repo):
                rec = _rec(code_links=[CodeLink(url=url, source="huggingface", official=True)])
                m = CHECK.match(rec)
                assert m is not None and m.eval_id == p.id and m.kind == "repository", url
                count += 1
    assert count >= 21 * 12


def test_unrelated_papers_are_not_flagged():
    titles = [
        "Attention Is All You Need",
        "Mistral 7B",
        "DocLayNet: A Large Human-Annotated Dataset for Document-Layout Analysis",
        "Stochastic Interpolants: A Unifying Framework for Flows and Diffusions",
        "Robust Fine-Tuning of Zero-Shot Models",
        "Test-Time Training with Self-Supervision for Generalization under Distribution Shifts",
        "Classifier-Free Diffusion Guidance",
        "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
        "Adaptive Pruning of Neural Language Models for Mobile Devices",
        "Split and Merge Policy Gradients for Multi-Task Learning",
        "Sequential Neural Likelihood Estimation",
        "Self-Consistency Improves Chain of Thought Reasoning in Language Models",
    ]
    for t in titles:
        assert CHECK.match(_rec(title=t, slug=normalize_title(t).replace(" ", "-"))) is None, t
    near_repos = ["https://github.com/ROIM1998/APT-extension", "https://github.com/kvfrans/fre2",
                  "https://github.com/someone/fre", "https://github.com/mackelab/sbi"]  # fmt: skip
    for url in near_repos:
        assert CHECK.match(_rec(code_links=[CodeLink(url=url, source="paper_text", official=True)])) is None, url


def test_non_official_links_match_only_when_asked():
    rec = _rec(code_links=[CodeLink(url="https://github.com/kvfrans/fre", source="paper_text", official=False)])
    assert CHECK.match(rec) is None
    assert Decontaminator([PB], DecontamConfig(all_code_links=True)).match(rec).eval_id == "fre"


def test_normalize_helpers():
    assert (
        normalize_title("  Stay on Topic — with Classifier-Free   Guidance!! ")
        == "stay on topic with classifier free guidance"
    )
    assert normalize_repo("git@gitlab.com:Grp/Tool.git") == ("gitlab.com", "grp/tool")
    assert normalize_repo("https://github.com/onlyowner") is None and normalize_repo("none") is None


def test_user_lists_in_every_format(tmp_path):
    (tmp_path / "extra.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "mybench",
                "papers": [{"id": "m1", "title": "Counting With Tiny Transformers", "abstract": ABSTRACT}],
            }
        )
    )
    (tmp_path / "extra.json").write_text(
        json.dumps([{"id": "j1", "doi": "10.1/xyz", "repos": ["https://github.com/j/one"]}])
    )
    (tmp_path / "extra.txt").write_text(
        "# one entry per line\nA Benchmark Of Long Horizon Agents\n2409.00001\nhttps://github.com/t/two\n\n"
    )
    sets = [load_eval_set(tmp_path / f"extra.{ext}") for ext in ("yaml", "json", "txt")]
    assert [s.name for s in sets] == ["mybench", "extra", "extra"]
    checker = Decontaminator(sets, DecontamConfig())
    assert checker.match(_rec(title="Counting with tiny transformers")).set == "mybench"
    reworded = _rec(title="A New Title Entirely", abstract=ABSTRACT.replace("simple", "small"))
    m = checker.match(reworded)
    assert m is not None and m.kind == "abstract" and m.eval_id == "m1"
    assert checker.match(_rec(doi="10.1/XYZ")).kind == "doi"
    assert checker.match(_rec(code_links=[CodeLink(url="https://github.com/J/One", source="user", official=True)]))
    assert checker.match(_rec(title="A benchmark of long-horizon agents")).eval_id == "line 2"
    assert checker.match(_rec(arxiv_id="2409.00001")).eval_id == "line 3"
    assert checker.match(_rec(code_links=[CodeLink(url="https://github.com/t/two", source="user", official=True)]))
    assert checker.match(_rec(abstract="We study graphs. " * 5)) is None


def test_bad_user_list_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("papers:\n  - id: x\n")
    with pytest.raises(InputFileError, match=r"bad.yaml.*nothing to match on"):
        load_eval_set(bad)


ABSTRACT = (
    "We train a simple transformer to count the tokens of its input and show that it generalises to inputs far "
    "longer than those seen in training when positions are encoded relative to the end of the sequence, and we "
    "analyse the circuits it learns with activation patching."
)


def test_run_decontam_drops_with_reasons_and_writes_matches(tmp_path):
    records = [
        _rec(key="a", slug="a", title="Stay on topic with Classifier-Free Guidance"),
        _rec(
            key="b",
            slug="b",
            code_links=[CodeLink(url="git@github.com:mr-eggplant/FOA.git", source="huggingface", official=True)],
        ),
        _rec(key="c", slug="c", title="A Fine Unrelated Paper"),
        _rec(key="d", slug="d", title="Mistral 7B").dropped("select", "select: earlier"),
        _rec(key="e", slug="e", title="Some Other Work", arxiv_id="2402.17135"),
    ]
    write_papers(papers_path(tmp_path, "select"), records)
    extra = tmp_path / "mine.txt"
    extra.write_text("A Fine Unrelated Paper\n")
    result = CliRunner().invoke(app, ["factory", "decontam", "--dir", str(tmp_path), "--against", str(extra), "--json"])
    assert result.exit_code == 0, result.output
    out = {r.key: r for r in read_papers(papers_path(tmp_path, "decontam"))}
    assert out["a"].drop.reason.startswith("decontam: title matches 'Stay on topic with Classifier-Free Guidance'")
    assert "paperbench paper 'stay-on-topic-with-classifier-free-guidance'" in out["a"].drop.reason
    assert "https://github.com/mr-eggplant/FOA" in out["b"].drop.reason and "(repository)" in out["b"].drop.reason
    assert "mine paper 'line 1'" in out["c"].drop.reason
    assert out["d"].drop.reason == "select: earlier"
    assert "arXiv id 2402.17135" in out["e"].drop.reason and "'fre'" in out["e"].drop.reason
    matches = [json.loads(x) for x in (tmp_path / "decontam" / "matches.jsonl").read_text().splitlines()]
    assert [m["key"] for m in matches] == ["a", "b", "c", "e"]
    again = run_decontam(tmp_path, DecontamConfig(against=[str(extra)]))
    assert [r.drop for r in again] == [r.drop for r in out.values()]
