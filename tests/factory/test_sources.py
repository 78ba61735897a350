"""The network sources against local fixture servers: the shared HTTP client (429/Retry-After, 5xx, 403), OpenReview
through openreview-py (login, paging, refusal), arXiv through the arxiv package, Hugging Face, Semantic Scholar and
OpenAlex."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from klong.factory.records import PaperRecord
from klong.factory.sources import arxiv_source
from klong.factory.sources.citations import OpenAlex, OpenAlexConfig, SemanticScholar, SemanticScholarConfig
from klong.factory.sources.http import AccessDenied, HttpClient, HttpConfig, HttpError, parse_retry_after
from klong.factory.sources.huggingface import paper_code_link
from klong.factory.sources.openreview import OpenReviewConfig, accepted_papers, tier_from_venue, venue_name
from tests.factory.servers import FixtureServer, Reply, arxiv_api, paged

FAST = HttpConfig(retries=3, backoff_s=0.01, max_wait_s=0.05, timeout_s=5)


# --- the shared HTTP client ---------------------------------------------------------------------------------------


def test_429_retry_after_is_honoured_and_capped():
    routes = {"/x": [Reply(429, "slow down", {"Retry-After": "30"}), Reply.json({"ok": True})]}
    with FixtureServer(routes) as srv, HttpClient(srv.url, FAST) as client:
        t0 = time.monotonic()
        assert client.get_json("/x") == {"ok": True}
        elapsed = time.monotonic() - t0
        assert client.waits == [0.05]  # 30 s asked, capped by max_wait_s
        assert elapsed >= 0.05
        assert len(srv.hits("/x")) == 2


def test_retry_after_shorter_than_the_cap_is_waited_exactly():
    cfg = FAST.model_copy(update={"max_wait_s": 5.0})
    routes = {
        "/x": [Reply(429, headers={"Retry-After": "0.2"}), Reply(429, headers={"Retry-After": "0"}), Reply.json(1)]
    }
    with FixtureServer(routes) as srv, HttpClient(srv.url, cfg) as client:
        t0 = time.monotonic()
        assert client.get_json("/x") == 1
        assert client.waits == [0.2, 0.0]
        assert time.monotonic() - t0 >= 0.2


def test_retry_after_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None
    future = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    routes = {"/d": [Reply(429, headers={"Retry-After": future}), Reply.json(2)]}
    with FixtureServer(routes) as srv, HttpClient(srv.url, FAST) as client:
        assert client.get_json("/d") == 2
        assert client.waits == [0.05]  # about 60 s asked, capped


def test_429_forever_gives_up_with_the_url_and_status():
    with FixtureServer({"/x": Reply(429, headers={"Retry-After": "0"})}) as srv, HttpClient(srv.url, FAST) as client:
        with pytest.raises(HttpError) as e:
            client.get("/x")
        assert e.value.status == 429 and "/x" in str(e.value) and "after 4 tries" in str(e.value)
        assert len(srv.hits("/x")) == 4


def test_5xx_backs_off_exponentially_then_succeeds():
    routes = {"/x": [Reply(500), Reply(502), Reply.json({"fine": 1})]}
    cfg = FAST.model_copy(update={"max_wait_s": 1.0})
    with FixtureServer(routes) as srv, HttpClient(srv.url, cfg) as client:
        assert client.get_json("/x") == {"fine": 1}
        assert client.waits == [0.01, 0.02]


def test_403_is_a_clear_access_error_and_is_not_retried():
    with FixtureServer({"/secret": Reply(403, "Forbidden")}) as srv, HttpClient(srv.url, FAST) as client:
        with pytest.raises(AccessDenied) as e:
            client.get("/secret")
        msg = str(e.value)
        assert f"{srv.url}/secret" in msg and "credentials are needed" in msg and "403" in msg
        assert len(srv.hits("/secret")) == 1


def test_404_is_none_when_missing_is_ok(tmp_path):
    with FixtureServer({}) as srv, HttpClient(srv.url, FAST) as client:
        assert client.get_json("/nope", missing_ok=True) is None
        with pytest.raises(HttpError, match="404"):
            client.get_json("/nope")


def test_download_is_atomic(tmp_path):
    routes = {"/ok.pdf": Reply(200, b"%PDF-1.5 hello"), "/gone.pdf": Reply(404, "no")}
    with FixtureServer(routes) as srv, HttpClient(srv.url, FAST) as client:
        assert client.download("/ok.pdf", tmp_path / "a.pdf") == 14
        assert (tmp_path / "a.pdf").read_bytes() == b"%PDF-1.5 hello"
        with pytest.raises(HttpError):
            client.download("/gone.pdf", tmp_path / "b.pdf")
        with pytest.raises(HttpError, match="larger than the limit"):
            client.download("/ok.pdf", tmp_path / "c.pdf", max_bytes=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf"]  # no partial or temporary files


def test_polite_pacing_spaces_requests():
    cfg = FAST.model_copy(update={"min_interval_s": 0.1})
    with FixtureServer({"/x": Reply.json(1)}) as srv, HttpClient(srv.url, cfg) as client:
        t0 = time.monotonic()
        for _ in range(3):
            client.get("/x")
        assert time.monotonic() - t0 >= 0.2


# --- OpenReview ---------------------------------------------------------------------------------------------------

VENUE = "ICLR.cc/2024/Conference"


def _note(i: int, venueid: str, venue: str) -> dict:
    return {
        "id": f"note{i:02d}",
        "content": {
            "title": {"value": f"Paper number {i}"},
            "abstract": {"value": f"Abstract {i}."},
            "authors": {"value": ["Ada Lovelace", "Alan Turing"]},
            "venue": {"value": venue},
            "venueid": {"value": venueid},
            "pdf": {"value": f"/pdf/{i:02d}.pdf"},
        },
    }


NOTES = [
    _note(1, VENUE, "ICLR 2024 oral"),
    _note(2, VENUE, "ICLR 2024 spotlight"),
    _note(3, "ICLR.cc/2024/Conference/Rejected_Submission", "Submitted to ICLR 2024"),
    _note(4, VENUE, "ICLR 2024 poster"),
    _note(5, VENUE, "ICLR 2024 poster"),
    _note(6, VENUE, "ICLR 2024 Poster"),
]


def openreview_routes(token: str = "tok-123") -> dict:
    def notes(req):
        if req.headers.get("Authorization") != f"Bearer {token}":
            return Reply.json({"name": "ForbiddenError", "message": "Forbidden: login required", "status": 403}, 403)
        venueid = req.arg("content.venueid")
        return paged([n for n in NOTES if n["content"]["venueid"]["value"] == venueid])(req)

    def login(req):
        body = req.json()
        if body.get("id") != "me@example.org" or body.get("password") != "pw":
            return Reply.json({"name": "LoginError", "message": "Invalid username or password", "status": 400}, 400)
        return Reply.json({"token": token, "user": {"id": "~Me1", "profile": {"id": "~Me1"}}})

    return {"POST /login": login, "GET /notes": notes}


def test_openreview_accepted_papers_with_login_and_paging(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    with FixtureServer(openreview_routes()) as srv:
        cfg = OpenReviewConfig(baseurl=srv.url, site_url="https://or.example", username="me@example.org", password="pw",
                               page_size=2)  # fmt: skip
        records = list(accepted_papers(cfg, VENUE))
        pages = srv.hits("/notes")
        assert len(srv.hits("/login")) == 1
    assert [r.openreview_id for r in records] == ["note01", "note02", "note04", "note05", "note06"]
    assert [r.tier for r in records] == ["oral", "spotlight", "poster", "poster", "poster"]
    r = records[0]
    assert r.key == "openreview:note01" and r.venue == "ICLR 2024" and r.venue_id == VENUE and r.year == 2024
    assert r.pdf_url == "https://or.example/pdf/01.pdf" and r.authors == ["Ada Lovelace", "Alan Turing"]
    assert len(pages) == 4  # 5 accepted notes, 2 per page, then the empty page that ends the paging
    assert pages[1].arg("after") == "note02" and pages[0].arg("limit") == "2"


def test_openreview_refuses_anonymous_calls_with_a_clear_error(monkeypatch):
    for var in ("OPENREVIEW_USERNAME", "OPENREVIEW_PASSWORD", "OPENREVIEW_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with FixtureServer(openreview_routes()) as srv, pytest.raises(AccessDenied) as e:
        list(accepted_papers(OpenReviewConfig(baseurl=srv.url), VENUE))
    assert "credentials" in str(e.value) and "OPENREVIEW_USERNAME" in str(e.value) and srv.url in str(e.value)


def test_openreview_credentials_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENREVIEW_USERNAME", "me@example.org")
    monkeypatch.setenv("OPENREVIEW_PASSWORD", "pw")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    with FixtureServer(openreview_routes()) as srv:
        assert len(list(accepted_papers(OpenReviewConfig(baseurl=srv.url), VENUE))) == 5


def test_tiers_and_venue_names():
    assert tier_from_venue("ICML 2024 Oral") == "oral"
    assert tier_from_venue("NeurIPS 2023 spotlight") == "spotlight"
    assert tier_from_venue("ICLR 2024") == "unknown"
    assert venue_name("NeurIPS.cc/2023/Conference") == "NeurIPS 2023"


# --- arXiv ---------------------------------------------------------------------------------------------------------

ARXIV = [
    {"id": "2402.17135", "title": "Unsupervised Zero-Shot Reinforcement Learning via Functional Reward Encodings",
     "summary": "We present FRE.", "authors": ["Kevin Frans"], "published": "2024-02-27T00:00:00Z"},
    {"id": "2310.06825", "title": "Mistral 7B", "summary": "A 7B model.", "published": "2023-10-10T00:00:00Z"},
    {"id": "2501.00001", "title": "A Third Paper on Agents", "doi": "10.1234/x"},
]  # fmt: skip


def arxiv_cfg(srv) -> arxiv_source.ArxivConfig:
    return arxiv_source.ArxivConfig(api_url=f"{srv.url}/api/query", pdf_base="https://mirror.example", delay_s=0,
                                    page_size=2, retries=0)  # fmt: skip


def test_arxiv_search_pages_through_a_fixture_atom_feed():
    with FixtureServer({"/api/query": arxiv_api(ARXIV)}) as srv:
        records = arxiv_source.search(arxiv_cfg(srv), "cat:cs.LG")
        queries = srv.hits("/api/query")
    assert [r.arxiv_id for r in records] == ["2402.17135", "2310.06825", "2501.00001"]
    assert len(queries) == 2 and queries[1].arg("start") == "2"
    r = records[0]
    assert r.key == "arxiv:2402.17135" and r.year == 2024 and r.authors == ["Kevin Frans"]
    assert r.pdf_url == "https://mirror.example/pdf/2402.17135" and r.abstract == "We present FRE."
    assert records[2].doi == "10.1234/x"


def test_arxiv_lookup_and_title_match():
    with FixtureServer({"/api/query": arxiv_api(ARXIV)}) as srv:
        cfg = arxiv_cfg(srv)
        assert [r.arxiv_id for r in arxiv_source.lookup(cfg, ["arXiv:2310.06825v2"])] == ["2310.06825"]
        assert arxiv_source.find_by_title(cfg, "Mistral 7b").arxiv_id == "2310.06825"
        assert arxiv_source.find_by_title(cfg, "Mistral") is None  # a phrase hit, but not the same title


def test_arxiv_errors_are_typed():
    with FixtureServer({"/api/query": Reply(403, "no")}) as srv, pytest.raises(AccessDenied):
        arxiv_source.search(arxiv_cfg(srv), "x")
    with FixtureServer({"/api/query": Reply(500, "boom")}) as srv, pytest.raises(HttpError, match="HTTP 500"):
        arxiv_source.search(arxiv_cfg(srv), "x")


def test_normalize_arxiv_id():
    assert arxiv_source.normalize_arxiv_id("https://arxiv.org/abs/2310.06825v3") == "2310.06825"
    assert arxiv_source.normalize_arxiv_id("arXiv:1706.03762") == "1706.03762"
    assert arxiv_source.normalize_arxiv_id("hep-th/9901001v1") == "hep-th/9901001"
    assert arxiv_source.normalize_arxiv_id("not an id") is None


# --- Hugging Face, Semantic Scholar, OpenAlex ------------------------------------------------------------------------


def test_huggingface_paper_page_code_link():
    routes = {
        "/api/papers/2402.17135": Reply.json({"id": "2402.17135", "githubRepo": "https://github.com/kvfrans/fre"}),
        "/api/papers/2310.06825": Reply.json({"id": "2310.06825"}),
    }
    with FixtureServer(routes) as srv, HttpClient(srv.url, FAST) as client:
        link = paper_code_link(client, "2402.17135")
        assert link.url == "https://github.com/kvfrans/fre" and link.official and link.source == "huggingface"
        assert paper_code_link(client, "2310.06825") is None
        assert paper_code_link(client, "2999.99999") is None  # 404: unknown paper


def _rec(**kw) -> PaperRecord:
    return PaperRecord(key=kw.pop("key", "x:1"), slug="s", title=kw.pop("title", "Some Title"), **kw)


def test_semantic_scholar_by_arxiv_id_and_by_title():
    routes = {
        "/graph/v1/paper/ARXIV:2402.17135": Reply.json(
            {"title": "FRE", "citationCount": 42, "externalIds": {"ArXiv": "2402.17135", "DOI": "10.5/fre"}}
        ),
        "/graph/v1/paper/search/match": Reply.json(
            {"data": [{"title": "Some title!", "citationCount": 7, "externalIds": {"ArXiv": "2401.00002"}}]}
        ),
    }
    cfg = lambda srv: SemanticScholarConfig(base_url=f"{srv.url}/graph/v1", http=FAST)  # noqa: E731
    with FixtureServer(routes) as srv:
        s2 = SemanticScholar(cfg(srv))
        res = s2.lookup(_rec(arxiv_id="2402.17135"))
        assert res.citations.count == 42 and res.citations.source == "semantic_scholar" and res.doi == "10.5/fre"
        res = s2.lookup(_rec())
        assert res.citations.count == 7 and res.arxiv_id == "2401.00002"
        assert srv.hits("/graph/v1/paper/search/match")[0].arg("fields") == "title,citationCount,externalIds"
        assert s2.lookup(_rec(title="Nothing like it")) is None
        s2.close()


def test_openalex_by_arxiv_doi_and_by_title():
    routes = {
        "/works/doi:10.48550/arXiv.2402.17135": Reply.json(
            {"display_name": "FRE", "cited_by_count": 40, "doi": "https://doi.org/10.48550/arxiv.2402.17135"}
        ),
        "/works": Reply.json({"results": [{"display_name": "Other", "cited_by_count": 1},
                                          {"display_name": "Some Title", "cited_by_count": 9, "doi": None}]}),
    }  # fmt: skip
    with FixtureServer(routes) as srv:
        oa = OpenAlex(OpenAlexConfig(base_url=srv.url, mailto="me@example.org", http=FAST))
        res = oa.lookup(_rec(arxiv_id="2402.17135"))
        assert res.citations.count == 40 and res.citations.source == "openalex" and res.arxiv_id == "2402.17135"
        assert srv.requests[0].arg("mailto") == "me@example.org"
        assert oa.lookup(_rec()).citations.count == 9
        assert srv.hits("/works")[0].arg("filter") == "title.search:Some Title"
        oa.close()
