"""Citation counts from Semantic Scholar's graph API or OpenAlex, both at a configurable base URL, politely paced.

Lookup order per paper: arXiv id, then DOI, then an exact (normalised) title match. Each lookup also reports the
identifiers the service knows (arXiv id, DOI), which `enrich` uses to fill records that lack them.

Semantic Scholar allows about 100 requests / 5 minutes without a key (`min_interval_s` 3 s by default; an API key from
`S2_API_KEY` is sent as `x-api-key`). OpenAlex needs no key; a `mailto` puts requests in its polite pool.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from klong.factory.records import Citations, PaperRecord
from klong.factory.sources.arxiv_source import normalize_arxiv_id
from klong.factory.sources.http import HttpClient, HttpConfig


class SemanticScholarConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = "https://api.semanticscholar.org/graph/v1"
    api_key_env: str = "S2_API_KEY"
    http: HttpConfig = Field(default_factory=lambda: HttpConfig(min_interval_s=3.0))


class OpenAlexConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = "https://api.openalex.org"
    mailto: str | None = None
    """An e-mail address for OpenAlex's polite pool."""
    api_key_env: str = "OPENALEX_API_KEY"
    http: HttpConfig = Field(default_factory=lambda: HttpConfig(min_interval_s=0.1))


class CitationResult(BaseModel):
    citations: Citations
    arxiv_id: str | None = None
    doi: str | None = None


def _norm_title(title: str) -> str:
    from klong.factory.decontam import normalize_title

    return normalize_title(title)


def _norm_doi(doi: str | None) -> str | None:
    if not doi:
        return None
    doi = doi.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "doi:"):
        if doi.lower().startswith(prefix):
            doi = doi[len(prefix) :]
    return doi or None


class SemanticScholar:
    """`paper/ARXIV:{id}`, `paper/DOI:{doi}`, `paper/search/match?query=title` with `fields=citationCount,externalIds`."""

    source = "semantic_scholar"
    FIELDS = "title,citationCount,externalIds"

    def __init__(self, config: SemanticScholarConfig):
        key = os.environ.get(config.api_key_env)
        self.client = HttpClient(config.base_url, config.http, headers={"x-api-key": key} if key else None)

    def close(self) -> None:
        self.client.close()

    def _result(self, paper: dict[str, Any]) -> CitationResult | None:
        if not isinstance(paper, dict) or paper.get("citationCount") is None:
            return None
        ext = paper.get("externalIds") or {}
        return CitationResult(
            citations=Citations(count=int(paper["citationCount"]), source="semantic_scholar"),
            arxiv_id=normalize_arxiv_id(ext.get("ArXiv")),
            doi=_norm_doi(ext.get("DOI")),
        )

    def lookup(self, record: PaperRecord) -> CitationResult | None:
        params = {"fields": self.FIELDS}
        ids = [f"ARXIV:{record.arxiv_id}"] if record.arxiv_id else []
        ids += [f"DOI:{record.doi}"] if record.doi else []
        for pid in ids:
            paper = self.client.get_json(f"/paper/{pid}", params=params, missing_ok=True)
            if paper:
                return self._result(paper)
        found = self.client.get_json("/paper/search/match", params={**params, "query": record.title}, missing_ok=True)
        for paper in (found or {}).get("data", []) or []:
            if _norm_title(paper.get("title") or "") == _norm_title(record.title):
                return self._result(paper)
        return None


class OpenAlex:
    """`works/doi:{doi}` (arXiv papers have DOI 10.48550/arXiv.{id}), else `works?filter=title.search:...`."""

    source = "openalex"

    def __init__(self, config: OpenAlexConfig):
        self.params: dict[str, str] = {}
        if config.mailto:
            self.params["mailto"] = config.mailto
        if key := os.environ.get(config.api_key_env):
            self.params["api_key"] = key
        self.client = HttpClient(config.base_url, config.http)

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _result(work: dict[str, Any]) -> CitationResult | None:
        if not isinstance(work, dict) or work.get("cited_by_count") is None:
            return None
        doi = _norm_doi(work.get("doi"))
        arxiv_id = None
        if doi and doi.lower().startswith("10.48550/arxiv."):
            arxiv_id = normalize_arxiv_id(doi[len("10.48550/arxiv.") :])
        return CitationResult(
            citations=Citations(count=int(work["cited_by_count"]), source="openalex"), arxiv_id=arxiv_id, doi=doi
        )

    def lookup(self, record: PaperRecord) -> CitationResult | None:
        dois = [_norm_doi(record.doi)] if record.doi else []
        dois += [f"10.48550/arXiv.{record.arxiv_id}"] if record.arxiv_id else []
        for doi in dois:
            work = self.client.get_json(f"/works/doi:{doi}", params=self.params, missing_ok=True)
            if work:
                return self._result(work)
        title = record.title.replace(",", " ").replace(":", " ")
        found = self.client.get_json(
            "/works", params={**self.params, "filter": f"title.search:{title}", "per-page": "5"}, missing_ok=True
        )
        for work in (found or {}).get("results", []) or []:
            if _norm_title(work.get("display_name") or work.get("title") or "") == _norm_title(record.title):
                return self._result(work)
        return None


def citation_source(name: str, semantic_scholar: SemanticScholarConfig, openalex: OpenAlexConfig):
    """A `SemanticScholar` or `OpenAlex` lookup by name."""
    return SemanticScholar(semantic_scholar) if name == "semantic_scholar" else OpenAlex(openalex)
