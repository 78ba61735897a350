"""arXiv through the `arxiv` package (export API search and id lookup); PDFs are fetched by URL, not by the package.

`arxiv` 4.x no longer downloads PDFs, so the record's `pdf_url` is built as `{pdf_base}/pdf/{id}`. The export API URL
is configurable (`api_url`), which points the package's client at a mirror or a local fixture server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import arxiv
from pydantic import BaseModel, ConfigDict

from klong.factory.records import PaperRecord, slugify
from klong.factory.sources.http import AccessDenied, HttpError

_NEW_ID = re.compile(r"(\d{4}\.\d{4,5})(v\d+)?")
_OLD_ID = re.compile(r"([a-z\-]+(?:\.[A-Z]{2})?/\d{7})(v\d+)?")


class ArxivConfig(BaseModel):
    """The arXiv export API and where PDFs are fetched from."""

    model_config = ConfigDict(extra="forbid")

    api_url: str = "https://export.arxiv.org/api/query"
    pdf_base: str = "https://arxiv.org"
    page_size: int = 100
    delay_s: float = 3.0
    """Seconds between API requests (arXiv's terms ask for at least 3)."""
    retries: int = 3
    max_results: int = 200
    """Per search query."""


def normalize_arxiv_id(text: str | None) -> str | None:
    """`arXiv:2310.06825v2`, `https://arxiv.org/abs/2310.06825`, `cs/0112017v1` -> the id without version, else None."""
    if not text:
        return None
    text = text.strip()
    m = _NEW_ID.search(text) or _OLD_ID.search(text)
    return m.group(1) if m else None


def pdf_url(config: ArxivConfig, arxiv_id: str) -> str:
    return f"{config.pdf_base.rstrip('/')}/pdf/{arxiv_id}"


def arxiv_client(config: ArxivConfig) -> arxiv.Client:
    client = arxiv.Client(page_size=config.page_size, delay_seconds=config.delay_s, num_retries=config.retries)
    client.query_url_format = config.api_url.rstrip("?") + "?{}"  # instance attribute: the package reads self.
    return client


def result_to_record(result: arxiv.Result, config: ArxivConfig) -> PaperRecord:
    arxiv_id = normalize_arxiv_id(result.entry_id) or result.get_short_id()
    title = re.sub(r"\s+", " ", result.title).strip()
    return PaperRecord(
        key=f"arxiv:{arxiv_id}",
        slug=slugify(title),
        title=title,
        abstract=re.sub(r"\s+", " ", result.summary or "").strip(),
        authors=[a.name for a in result.authors],
        year=result.published.year if result.published else None,
        arxiv_id=arxiv_id,
        doi=result.doi,
        pdf_url=pdf_url(config, arxiv_id),
        license=None,
        venue=result.journal_ref or None,
        notes={"collect": f"arxiv primary category {result.primary_category}"},
    )


def _run(client: arxiv.Client, search: arxiv.Search, config: ArxivConfig) -> list[arxiv.Result]:
    try:
        return list(client.results(search))
    except arxiv.HTTPError as e:
        if e.status in (401, 403):
            raise AccessDenied(e.url, f"HTTP {e.status}: the arXiv API refused the request", e.status) from None
        raise HttpError(
            e.url, f"arXiv API answered HTTP {e.status} after {config.retries + 1} tries", e.status
        ) from None
    except arxiv.ArxivError as e:
        raise HttpError(e.url, f"arXiv API error: {e.message}") from None
    except OSError as e:  # requests' connection errors derive from OSError
        raise HttpError(config.api_url, f"arXiv API unreachable: {e}") from None


def search(config: ArxivConfig, query: str, *, max_results: int | None = None) -> list[PaperRecord]:
    """Papers matching an arXiv query (`ti:"..."`, `cat:cs.LG AND abs:agent`), in the API's relevance order."""
    s = arxiv.Search(query=query, max_results=max_results or config.max_results)
    return [result_to_record(r, config) for r in _run(arxiv_client(config), s, config)]


def lookup(config: ArxivConfig, ids: Iterable[str]) -> list[PaperRecord]:
    """Records for arXiv ids (any form `normalize_arxiv_id` reads); unknown ids are simply absent from the result."""
    id_list = [i for i in (normalize_arxiv_id(x) for x in ids) if i]
    if not id_list:
        return []
    s = arxiv.Search(id_list=id_list, max_results=len(id_list))
    return [result_to_record(r, config) for r in _run(arxiv_client(config), s, config)]


def find_by_title(config: ArxivConfig, title: str, *, max_results: int = 5) -> PaperRecord | None:
    """The arXiv record whose normalised title equals `title`'s, searching `ti:"..."`; None when no exact match."""
    from klong.factory.decontam import normalize_title

    words = re.sub(r"[^\w\s]", " ", title).split()
    if not words:
        return None
    want = normalize_title(title)
    for rec in search(config, 'ti:"' + " ".join(words) + '"', max_results=max_results):
        if normalize_title(rec.title) == want:
            return rec
    return None
