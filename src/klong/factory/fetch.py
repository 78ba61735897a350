"""`klong factory fetch`: get each paper's text (and, when there is one, a copy of its official code) onto disk.

Per active paper:
- paper text: a local PDF is copied to `fetch/pdf/<slug>.pdf` (`files.pdf`); a local markdown source is copied to
  `fetch/md/<slug>.md` (`files.source_markdown` then points at the copy, so the factory folder is self-contained);
  otherwise `pdf_url` is downloaded to `fetch/pdf/<slug>.pdf` with the shared HTTP client. A PDF must be non-empty and
  start with `%PDF-`. A paper with no text to be had (no source, 404/403, not a PDF) is dropped with the reason.
- code: a local `code/` folder (`files.source_code`) is copied to `fetch/code/<slug>/` (without `.git`), or, with
  `clone_code` (off by default), the first official repository is cloned with `git clone --depth 1` (any URL git
  accepts, `file://` included). Either becomes `files.code`. A failed clone is noted, not a drop.

Transient network failures that outlast the retries stop the stage with a typed error; the papers already fetched are
kept and a resumed run skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from klong.factory.layout import run_per_paper, stage_dir
from klong.factory.records import PaperRecord
from klong.factory.sources.http import AccessDenied, HttpClient, HttpConfig, HttpError
from klong.factory.sources.progress import Progress

STAGE = "fetch"
PDF_MAGIC = b"%PDF-"


class FetchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    download_pdfs: bool = True
    max_pdf_mb: float = 100.0
    clone_code: bool = False
    """Clone the official repository when no local copy came with the paper (needs network and git)."""
    clone_timeout_s: float = 600.0
    http: HttpConfig = Field(default_factory=lambda: HttpConfig(min_interval_s=1.0))


def pdf_problem(path: Path) -> str | None:
    """Why the file at `path` is not a usable PDF, or None."""
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    with path.open("rb") as f:
        head = f.read(1024)
    if PDF_MAGIC not in head[:1024]:
        preview = head[:24].decode("latin-1").replace("\n", " ")
        return f"not a PDF (starts with {preview!r})"
    return None


def clone_repo(url: str, dest: Path, *, timeout_s: float = 600.0) -> None:
    """`git clone --depth 1 url dest` into a temporary folder renamed into place; raises HttpError on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        proc = subprocess.run(
            ["git", "clone", "--quiet", "--depth", "1", url, str(tmp / "repo")],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
        if proc.returncode != 0:
            raise HttpError(url, f"git clone failed: {proc.stderr.strip()[-300:]}")
        shutil.rmtree(tmp / "repo" / ".git", ignore_errors=True)
        if dest.exists():
            shutil.rmtree(dest)
        (tmp / "repo").rename(dest)
    except subprocess.TimeoutExpired:
        raise HttpError(url, f"git clone timed out after {timeout_s:.0f}s") from None
    except FileNotFoundError:
        raise HttpError(url, "git clone failed: git is not installed") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _Fetcher:
    def __init__(self, root: Path, config: FetchConfig):
        self.root, self.config = root, config
        self.dir = stage_dir(root, STAGE)
        self.http = HttpClient(None, config.http)

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def text(self, rec: PaperRecord) -> tuple[dict[str, str], str | None]:
        """(files to add, drop reason)."""
        files: dict[str, str] = {}
        for key in ("source_pdf", "source_markdown"):
            if (src := rec.files.get(key)) and not (self.root / src).is_file():
                return {}, f"fetch: local paper file {self.root / src} not found (moved or deleted since collect?)"
        if src := rec.files.get("source_pdf"):
            dest = self.dir / "pdf" / f"{rec.slug}.pdf"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / src, dest)
            if why := pdf_problem(dest):
                dest.unlink()
                return {}, f"fetch: local PDF {src} unusable: {why}"
            files["pdf"] = self.rel(dest)
        if src := rec.files.get("source_markdown"):
            dest = self.dir / "md" / f"{rec.slug}.md"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / src, dest)
            if not dest.read_text(encoding="utf-8", errors="replace").strip():
                return {}, f"fetch: local markdown {src} is empty"
            files["source_markdown"] = self.rel(dest)
        if files:
            return files, None
        if not rec.pdf_url:
            return {}, "fetch: no paper text to be had (no local source and no PDF URL)"
        if not self.config.download_pdfs:
            return {}, "fetch: PDF downloads are off (fetch.download_pdfs=false) and there is no local source"
        dest = self.dir / "pdf" / f"{rec.slug}.pdf"
        try:
            self.http.download(rec.pdf_url, dest, max_bytes=int(self.config.max_pdf_mb * 2**20))
        except AccessDenied as e:
            return {}, f"fetch: {e}"
        except HttpError as e:
            if e.status is not None and 400 <= e.status < 500 and e.status != 429:
                return {}, f"fetch: {e}"
            if "larger than the limit" in str(e):
                return {}, f"fetch: {e}"
            raise
        if why := pdf_problem(dest):
            dest.unlink()
            return {}, f"fetch: {rec.pdf_url} is {why}"
        return {"pdf": self.rel(dest)}, None

    def code(self, rec: PaperRecord) -> tuple[dict[str, str], str]:
        dest = self.dir / "code" / rec.slug
        if (src := rec.files.get("source_code")) and not (self.root / src).is_dir():
            return {}, f"no code: local code folder {self.root / src} not found"
        if src:
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(self.root / src, dest, ignore=shutil.ignore_patterns(".git"), symlinks=True)
            return {"code": self.rel(dest)}, f"code copied from {src}"
        if self.config.clone_code and rec.official_repos:
            url = rec.official_repos[0]
            try:
                clone_repo(url, dest, timeout_s=self.config.clone_timeout_s)
            except HttpError as e:
                return {}, f"no code: {e}"
            return {"code": self.rel(dest)}, f"code cloned from {url}"
        return {}, "no local code" + ("" if self.config.clone_code else " (clone_code off)")

    def fetch(self, rec: PaperRecord) -> PaperRecord:
        files, reason = self.text(rec)
        if reason is not None:
            return rec.dropped(STAGE, reason)
        code_files, code_note = self.code(rec)
        return rec.model_copy(
            update={"files": {**rec.files, **files, **code_files}, "notes": {**rec.notes, STAGE: code_note}}
        )


def run_fetch(
    root: str | Path, config: FetchConfig, *, resume: bool = True, progress: Progress | None = None
) -> list[PaperRecord]:
    """Fetch every active paper of `decontam/papers.jsonl` into `fetch/`; returns the records."""
    root = Path(root)
    fetcher = _Fetcher(root, config)
    try:
        return run_per_paper(root, STAGE, config, fetcher.fetch, resume=resume, progress=progress)
    finally:
        fetcher.http.close()
