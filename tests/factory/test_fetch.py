"""`fetch`: local copies, PDF downloads verified by magic bytes, drops with reasons, code copies and clones, resume."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from klong.cli import app
from klong.factory.fetch import FetchConfig, clone_repo, run_fetch
from klong.factory.layout import papers_path, read_papers, write_papers
from klong.factory.records import CodeLink, PaperRecord
from klong.factory.sources.http import HttpConfig, HttpError
from klong.factory.sources.local import local_records
from tests.factory.servers import FixtureServer, Reply
from tests.factory.test_collect import make_local_folder, make_pdf

FAST = HttpConfig(retries=1, backoff_s=0.01, max_wait_s=0.02, timeout_s=5)


def _remote(key: str, url: str | None, **kw) -> PaperRecord:
    return PaperRecord(key=key, slug=key, title=f"Remote {key}", pdf_url=url, **kw)


@pytest.fixture
def pdf_bytes(tmp_path):
    return make_pdf(tmp_path / "blank.pdf").read_bytes()


def _routes(pdf_bytes):
    return {
        "/pdf/good": Reply(200, pdf_bytes, {"Content-Type": "application/pdf"}),
        "/pdf/html": Reply.text("<html><body>Please log in</body></html>", content_type="text/html"),
        "/pdf/empty": Reply(200, b""),
        "/pdf/forbidden": Reply(403, "no"),
        "/pdf/flaky": [Reply(503, headers={"Retry-After": "0"}), Reply(200, pdf_bytes)],
    }


def _inputs(tmp_path, srv):
    root = tmp_path / "factory"
    local = local_records(make_local_folder(tmp_path), root)
    remote = [
        _remote("good", f"{srv.url}/pdf/good"),
        _remote("html", f"{srv.url}/pdf/html"),
        _remote("empty", f"{srv.url}/pdf/empty"),
        _remote("missing", f"{srv.url}/pdf/missing"),
        _remote("forbidden", f"{srv.url}/pdf/forbidden"),
        _remote("flaky", f"{srv.url}/pdf/flaky"),
        _remote("nothing", None),
        _remote("gone", f"{srv.url}/pdf/good").dropped("decontam", "decontam: earlier"),
    ]
    write_papers(papers_path(root, "decontam"), local + remote)
    return root


def test_fetch_copies_downloads_verifies_and_drops_with_reasons(tmp_path, pdf_bytes):
    with FixtureServer(_routes(pdf_bytes)) as srv:
        root = _inputs(tmp_path, srv)
        records = run_fetch(root, FetchConfig(http=FAST))
    by = {r.key: r for r in records}
    assert list(by) == [r.key for r in read_papers(papers_path(root, "decontam"))]

    tiny = by["local:tiny-paper"]
    assert tiny.files["source_markdown"] == "fetch/md/tiny-paper.md" and (root / tiny.files["source_markdown"]).exists()
    assert tiny.files["code"] == "fetch/code/tiny-paper"
    assert (root / "fetch/code/tiny-paper/train.py").exists() and not (root / "fetch/code/tiny-paper/.git").exists()
    scanned = by["local:scanned-paper"]
    assert scanned.files["pdf"] == "fetch/pdf/scanned-paper.pdf" and "code" not in scanned.files
    assert (root / scanned.files["pdf"]).read_bytes()[:5] == b"%PDF-"

    assert by["good"].files["pdf"] == "fetch/pdf/good.pdf" and (root / "fetch/pdf/good.pdf").read_bytes() == pdf_bytes
    assert by["flaky"].active and (root / "fetch/pdf/flaky.pdf").exists()
    reasons = {k: r.drop.reason for k, r in by.items() if not r.active}
    assert reasons["html"] == f"fetch: {srv.url}/pdf/html is not a PDF (starts with '<html><body>Please log i')"
    assert reasons["empty"].endswith("is empty file")
    assert "404" in reasons["missing"] and "/pdf/missing" in reasons["missing"]
    assert "403" in reasons["forbidden"] and "credentials" in reasons["forbidden"]
    assert reasons["nothing"] == "fetch: no paper text to be had (no local source and no PDF URL)"
    assert reasons["gone"] == "decontam: earlier"
    assert all(by[k].drop.stage == "fetch" for k in ("html", "empty", "missing", "forbidden", "nothing"))
    assert sorted(p.name for p in (root / "fetch" / "pdf").iterdir()) == ["flaky.pdf", "good.pdf", "scanned-paper.pdf"]


def test_fetch_resumes_after_a_server_outage(tmp_path, pdf_bytes):
    routes = _routes(pdf_bytes)
    routes["/pdf/flaky"] = Reply(503, "down", {"Retry-After": "0"})
    with FixtureServer(routes) as srv:
        root = _inputs(tmp_path, srv)
        with pytest.raises(HttpError, match="503"):
            run_fetch(root, FetchConfig(http=FAST))
        port = srv.url
    done = [r.key for r in read_papers(papers_path(root, "fetch"))]
    assert "good" in done and "flaky" not in done
    routes = _routes(pdf_bytes)
    with FixtureServer(routes) as srv:
        records = json.loads(
            json.dumps([r.model_dump(mode="json") for r in read_papers(papers_path(root, "decontam"))])
        )
        for r in records:  # the same papers, served from the new server's port
            if r.get("pdf_url"):
                r["pdf_url"] = r["pdf_url"].replace(port, srv.url)
        write_papers(papers_path(root, "decontam"), [PaperRecord.model_validate(r) for r in records])
        out = run_fetch(root, FetchConfig(http=FAST))
        assert {r.path for r in srv.requests} == {"/pdf/flaky"}  # the finished papers were not fetched again
    assert next(r for r in out if r.key == "flaky").files["pdf"] == "fetch/pdf/flaky.pdf"


def _git_repo(path):
    path.mkdir()
    (path / "model.py").write_text("LR = 3e-4\n")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"}
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *cmd], cwd=path, check=True, env={**env, "PATH": "/usr/bin:/bin:/usr/local/bin"})
    return path


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_clone_official_code_from_a_file_url(tmp_path):
    repo = _git_repo(tmp_path / "official")
    root = tmp_path / "factory"
    rec = PaperRecord(key="k", slug="k", title="K", code_links=[CodeLink(url=f"file://{repo}", source="user",
                                                                        official=True)])  # fmt: skip
    local = local_records(make_local_folder(tmp_path), root)[0]  # a markdown paper without code
    rec = rec.model_copy(update={"files": local.files})
    write_papers(papers_path(root, "decontam"), [rec])
    off = run_fetch(root, FetchConfig(http=FAST))[0]
    assert "code" not in off.files and off.notes["fetch"] == "no local code (clone_code off)"
    out = run_fetch(root, FetchConfig(http=FAST, clone_code=True), resume=False)[0]
    assert out.files["code"] == "fetch/code/k" and (root / "fetch/code/k/model.py").read_text() == "LR = 3e-4\n"
    assert not (root / "fetch/code/k/.git").exists() and out.notes["fetch"].startswith("code cloned from file://")
    with pytest.raises(HttpError, match="git clone failed"):
        clone_repo(f"file://{tmp_path}/nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_fetch_cli(tmp_path):
    root = tmp_path / "factory"
    write_papers(papers_path(root, "decontam"), local_records(make_local_folder(tmp_path), root))
    result = CliRunner().invoke(app, ["factory", "fetch", "--dir", str(root), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["active"] == 3


def test_a_local_source_gone_since_collect_is_dropped_naming_the_file(tmp_path):
    root = tmp_path / "factory"
    records = local_records(make_local_folder(tmp_path), root)
    gone = next(r for r in records if "source_pdf" in r.files)
    (root / gone.files["source_pdf"]).unlink()
    write_papers(papers_path(root, "decontam"), records)
    out = {r.key: r for r in run_fetch(root, FetchConfig(http=FAST, download_pdfs=False))}
    assert out[gone.key].drop is not None and "not found" in out[gone.key].drop.reason
    assert gone.files["source_pdf"].split("/")[-1] in out[gone.key].drop.reason
    assert sum(r.active for r in out.values()) == len(records) - 1
