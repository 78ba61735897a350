"""`enrich`: arXiv ids by title, code links (paper text, Hugging Face, a user dump), citations, resume, errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from klong.cli import app
from klong.factory.enrich import EnrichConfig, paper_text_code_links, run_enrich
from klong.factory.layout import papers_path, read_papers, write_papers
from klong.factory.records import PaperRecord
from klong.factory.sources.arxiv_source import ArxivConfig
from klong.factory.sources.citations import OpenAlexConfig, SemanticScholarConfig
from klong.factory.sources.http import AccessDenied, HttpConfig, HttpError
from klong.factory.sources.huggingface import HuggingFaceConfig
from klong.factory.sources.local import local_records
from tests.factory.servers import FixtureServer, Reply, arxiv_api
from tests.factory.test_collect import make_local_folder

FAST = HttpConfig(retries=1, backoff_s=0.01, max_wait_s=0.02, timeout_s=5)
FRE_TITLE = "Unsupervised Zero-Shot Reinforcement Learning via Functional Reward Encodings"


def _inputs(tmp_path):
    root = tmp_path / "factory"
    local = {r.slug: r for r in local_records(make_local_folder(tmp_path), root)}
    records = [
        local["tiny-paper"],
        PaperRecord(
            key="openreview:abc",
            slug="fre",
            title=FRE_TITLE,
            openreview_id="abc",
            pdf_url="https://openreview.net/pdf/abc.pdf",
            year=2024,
        ),
        PaperRecord(key="openreview:def", slug="obscure", title="An Obscure Workshop Paper", year=2023),
        local["flat-notes"].dropped("collect", "collect: test drop"),
    ]
    write_papers(papers_path(root, "collect"), records)
    return root


def _routes(s2_status: int = 200, hf_status: int = 200) -> dict:
    arxiv = [{"id": "2402.17135", "title": FRE_TITLE}]

    def s2_match(req):
        if s2_status != 200:
            return Reply(s2_status, "busy", {"Retry-After": "0"})
        if req.arg("query") == "An Obscure Workshop Paper":
            return Reply.json({"data": [{"title": "An obscure workshop paper", "citationCount": 3,
                                         "externalIds": {"ArXiv": "2301.00009"}}]})  # fmt: skip
        return Reply.json({"error": "Title match not found"}, 404)

    def hf(req):
        if hf_status != 200:
            return Reply(hf_status, "no")
        repo = {"2402.17135": "https://github.com/kvfrans/fre"}.get(req.path.rsplit("/", 1)[1])
        return Reply.json({"githubRepo": repo} if repo else {"title": "x"})

    return {
        "/api/query": arxiv_api(arxiv),
        "/api/papers/*": hf,
        "/s2/paper/ARXIV:2402.17135": Reply.json({"title": FRE_TITLE, "citationCount": 120, "externalIds": {}}),
        "/s2/paper/ARXIV:2501.01234": Reply.json({"title": "Tiny", "citationCount": 0}),
        "/s2/paper/search/match": s2_match,
    }


def _config(srv, **kw) -> EnrichConfig:
    return EnrichConfig(
        citation_sources=["semantic_scholar"],
        hf=HuggingFaceConfig(base_url=srv.url, http=FAST),
        semantic_scholar=SemanticScholarConfig(base_url=f"{srv.url}/s2", http=FAST),
        openalex=OpenAlexConfig(base_url=srv.url, http=FAST),
        arxiv=ArxivConfig(api_url=f"{srv.url}/api/query", pdf_base="https://arxiv.example", delay_s=0, retries=0),
        **kw,
    )


def test_enrich_fills_ids_links_and_citations(tmp_path):
    root = _inputs(tmp_path)
    dump = tmp_path / "links.yaml"
    dump.write_text("openreview:def: https://gitlab.com/obscure/workshop-code\n")
    with FixtureServer(_routes()) as srv:
        records = run_enrich(root, _config(srv, code_links_file=str(dump)))
    by = {r.key: r for r in records}
    assert [r.key for r in records] == ["local:tiny-paper", "openreview:abc", "openreview:def", "local:flat-notes"]

    tiny = by["local:tiny-paper"]  # meta.yaml link and the paper-text link are the same repository: one link
    assert [(c.url, c.source, c.official) for c in tiny.code_links] == [
        ("https://github.com/tiny-lab/tiny-count", "user", True)
    ]
    assert tiny.citations[0].count == 0 and tiny.pdf_url is None  # a local source: no PDF URL needed

    fre = by["openreview:abc"]
    assert fre.arxiv_id == "2402.17135"  # found on arXiv by its title
    assert fre.official_repos == ["https://github.com/kvfrans/fre"] and fre.code_links[0].source == "huggingface"
    assert fre.citations[0].count == 120 and fre.citations[0].source == "semantic_scholar"
    assert fre.pdf_url == "https://openreview.net/pdf/abc.pdf"  # kept

    obscure = by["openreview:def"]
    assert obscure.arxiv_id == "2301.00009"  # from Semantic Scholar's title match
    assert obscure.pdf_url == "https://arxiv.example/pdf/2301.00009"
    assert obscure.official_repos == ["https://gitlab.com/obscure/workshop-code"]
    assert "semantic_scholar: 3 citations" in obscure.notes["enrich"]

    assert by["local:flat-notes"].drop.reason == "collect: test drop" and "enrich" not in by["local:flat-notes"].notes
    assert read_papers(papers_path(root, "enrich")) == records


def test_enrich_resumes_after_rate_limit_exhaustion(tmp_path):
    root = _inputs(tmp_path)
    with FixtureServer(_routes(s2_status=429)) as srv, pytest.raises(HttpError, match="429"):
        run_enrich(root, _config(srv))
    done = [r.key for r in read_papers(papers_path(root, "enrich"))]
    assert done == ["local:tiny-paper", "openreview:abc"]  # the third paper hit the exhausted rate limit
    with FixtureServer(_routes()) as srv:
        records = run_enrich(root, _config(srv))
        hf_paths = [r.path for r in srv.requests if r.path.startswith("/api/papers/")]
    assert hf_paths == ["/api/papers/2301.00009"]  # only the unfinished paper was looked up again
    assert len(records) == 4 and records[2].arxiv_id == "2301.00009"


def test_enrich_access_denied_is_a_clear_error(tmp_path):
    root = _inputs(tmp_path)
    denied = pytest.raises(AccessDenied, match=r"api/papers/2501.01234.*credentials")
    with FixtureServer(_routes(hf_status=401)) as srv, denied:
        run_enrich(root, _config(srv))


def test_enrich_cli_with_dotted_overrides(tmp_path):
    root = _inputs(tmp_path)
    with FixtureServer(_routes()) as srv:
        args = ["factory", "enrich", "--dir", str(root), "--json", "-c", f"enrich.hf.base_url={srv.url}",
                "-c", f"enrich.arxiv.api_url={srv.url}/api/query", "-c", "enrich.arxiv.delay_s=0",
                "-c", f"enrich.openalex.base_url={srv.url}", "-c", "enrich.openalex.http.min_interval_s=0"]  # fmt: skip
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"papers": 4' in result.output


def test_paper_text_code_links():
    text = (
        "We compare with https://github.com/other/baseline. Our code is available at "
        "https://github.com/me/ours.\n\nSee also git@github.com:x/y and https://gitlab.com/grp/tool for tools."
    )
    links = {c.url: c.official for c in paper_text_code_links(text)}
    assert links == {
        "https://github.com/other/baseline": False,
        "https://github.com/me/ours": True,
        "https://gitlab.com/grp/tool": False,
    }
