"""`klong factory enrich`: complete each paper's record with arXiv ids, code links and citation counts.

Per active paper, in order:
1. arXiv id, when missing: an exact title match through the arXiv API (`find_arxiv_ids`).
2. Citations from each of `citation_sources` (Semantic Scholar, OpenAlex), which also fill a missing arXiv id / DOI.
3. Code links: a user-supplied dump (`code_links_file`: YAML/JSON mapping a record key, arXiv id or slug to a URL or a
   list of URLs; counted as official), repository links stated in the paper's own markdown (`paper_text_links`;
   official when the sentence says the code is the authors'), and the Hugging Face paper page's `githubRepo`.
4. `pdf_url` from the arXiv id when the paper has neither one nor a local source.

Nothing is dropped here. A 404 means "unknown to that source"; `AccessDenied` and transient failures that outlast the
retries stop the stage with a typed error, and a resumed run skips the papers already enriched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from klong.exceptions import InputFileError
from klong.factory.decontam import normalize_repo
from klong.factory.layout import run_per_paper
from klong.factory.records import CodeLink, PaperRecord
from klong.factory.sources.arxiv_source import ArxivConfig, normalize_arxiv_id, pdf_url
from klong.factory.sources.citations import OpenAlexConfig, SemanticScholarConfig, citation_source
from klong.factory.sources.huggingface import HuggingFaceConfig
from klong.factory.sources.progress import Progress
from klong.io import read_json, read_text, read_yaml

STAGE = "enrich"
_REPO_URL = re.compile(r"https?://(?:www\.)?(?:github\.com|gitlab\.com|bitbucket\.org)/[\w.\-]+/[\w.\-]+", re.I)
_OFFICIAL_CUE = re.compile(
    r"\b(our|the) (code|implementation|source code)\b|\bcode (is|are|will be) (publicly )?(available|released)|"
    r"\bavailable at\b|\bwe (release|open[- ]source)|\bsource code\b",
    re.I,
)


class EnrichConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    find_arxiv_ids: bool = True
    huggingface: bool = True
    paper_text_links: bool = True
    code_links_file: str | None = None
    citation_sources: list[Literal["semantic_scholar", "openalex"]] = Field(default_factory=lambda: ["openalex"])
    hf: HuggingFaceConfig = Field(default_factory=HuggingFaceConfig)
    semantic_scholar: SemanticScholarConfig = Field(default_factory=SemanticScholarConfig)
    openalex: OpenAlexConfig = Field(default_factory=OpenAlexConfig)
    arxiv: ArxivConfig = Field(default_factory=ArxivConfig)


def paper_text_code_links(text: str) -> list[CodeLink]:
    """Repository URLs in a paper's text; official when their sentence says it is the authors' code."""
    out: dict[str, CodeLink] = {}
    for m in _REPO_URL.finditer(text):
        url = m.group(0).rstrip(".,;)")
        key = normalize_repo(url)
        if key is None:
            continue
        start = max(text.rfind(".", 0, m.start() - 1), text.rfind("\n\n", 0, m.start()), m.start() - 300, 0)
        sentence = text[start : m.end()]
        official = bool(_OFFICIAL_CUE.search(sentence))
        prev = out.get(key[1])
        if prev is None or (official and not prev.official):
            out[key[1]] = CodeLink(url=url, source="paper_text", official=official)
    return list(out.values())


def load_code_links(path: str | Path) -> dict[str, list[str]]:
    """A user dump: `{key | arXiv id | slug: url | [urls]}` (YAML or JSON)."""
    path = Path(path)
    data = read_json(path) if path.suffix.lower() == ".json" else read_yaml(path)
    if not isinstance(data, dict):
        raise InputFileError(path, "expected a mapping from paper key / arXiv id / slug to a URL or a list of URLs")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        urls = [v] if isinstance(v, str) else v
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise InputFileError(path, f"entry {k!r}: expected a URL or a list of URLs")
        out[str(k)] = urls
    return out


def _add_links(rec: PaperRecord, links: list[CodeLink]) -> PaperRecord:
    have = {normalize_repo(c.url) or c.url: i for i, c in enumerate(rec.code_links)}
    merged = list(rec.code_links)
    for link in links:
        key = normalize_repo(link.url) or link.url
        if key not in have:
            have[key] = len(merged)
            merged.append(link)
        elif link.official and not merged[have[key]].official:
            merged[have[key]] = merged[have[key]].model_copy(update={"official": True})
    return rec.model_copy(update={"code_links": merged})


class _Enricher:
    def __init__(self, root: Path, config: EnrichConfig):
        from klong.factory.sources.huggingface import huggingface_client

        self.root, self.config = root, config
        self.user_links = load_code_links(config.code_links_file) if config.code_links_file else {}
        self.hf = huggingface_client(config.hf) if config.huggingface else None
        self.citers = [citation_source(n, config.semantic_scholar, config.openalex) for n in config.citation_sources]

    def close(self) -> None:
        for c in [self.hf, *self.citers]:
            if c is not None:
                c.close()

    def enrich(self, rec: PaperRecord) -> PaperRecord:
        from klong.factory.sources.arxiv_source import find_by_title
        from klong.factory.sources.huggingface import paper_code_link

        facts: list[str] = []
        if not rec.arxiv_id and self.config.find_arxiv_ids:
            found = find_by_title(self.config.arxiv, rec.title)
            if found is not None:
                rec = rec.model_copy(update={"arxiv_id": found.arxiv_id, "abstract": rec.abstract or found.abstract})
                facts.append(f"arXiv id {found.arxiv_id} by title")
        for citer in self.citers:
            result = citer.lookup(rec)
            if result is None:
                facts.append(f"{citer.source}: not found")
                continue
            update: dict = {"citations": [c for c in rec.citations if c.source != citer.source] + [result.citations]}
            if not rec.arxiv_id and result.arxiv_id:
                update["arxiv_id"] = result.arxiv_id
            if not rec.doi and result.doi:
                update["doi"] = result.doi
            rec = rec.model_copy(update=update)
            facts.append(f"{citer.source}: {result.citations.count} citations")
        links: list[CodeLink] = []
        for ident in (rec.key, rec.arxiv_id, rec.slug):
            for url in self.user_links.get(ident or "", []):
                links.append(CodeLink(url=url, source="user", official=True))
        md = rec.files.get("source_markdown")
        if self.config.paper_text_links and md:
            links += paper_text_code_links(read_text(self.root / md))
        link = paper_code_link(self.hf, rec.arxiv_id) if self.hf is not None and rec.arxiv_id else None
        if link is not None:
            links.append(link)
            facts.append(f"HF code {link.url}")
        before = len(rec.code_links)
        rec = _add_links(rec, links)
        if len(rec.code_links) > before:
            facts.append(f"{len(rec.code_links) - before} new code link(s)")
        if not rec.pdf_url and rec.arxiv_id and not {"source_pdf", "source_markdown"} & rec.files.keys():
            rec = rec.model_copy(update={"pdf_url": pdf_url(self.config.arxiv, normalize_arxiv_id(rec.arxiv_id) or "")})
        return rec.model_copy(update={"notes": {**rec.notes, STAGE: "; ".join(facts) or "nothing new"}})


def run_enrich(
    root: str | Path, config: EnrichConfig, *, resume: bool = True, progress: Progress | None = None
) -> list[PaperRecord]:
    """Enrich every active paper of `collect/papers.jsonl` into `enrich/papers.jsonl`; returns the records."""
    root = Path(root)
    enricher = _Enricher(root, config)
    try:
        return run_per_paper(root, STAGE, config, enricher.enrich, resume=resume, progress=progress)
    finally:
        enricher.close()
