"""A local folder of papers people bring themselves.

Two layouts, which may be mixed in one folder:

```
DIR/my-paper.pdf                  flat: one file per paper (*.pdf or *.md); the file stem is the paper's name
DIR/other-paper.md
DIR/<name>/paper.md | paper.pdf   one folder per paper (markdown preferred when both exist)
DIR/<name>/meta.yaml              optional: title, abstract, authors, arxiv_id, venue, year, license,
                                  code_url, code_official (default true)
DIR/<name>/code/                  optional: a local copy of the official repository
```

A title missing from `meta.yaml` is taken from the first markdown heading (not "Abstract"/"Introduction"...) or the
PDF's metadata, else from the name. Records get key `local:<slug>`, `files.source_markdown` / `files.source_pdf` /
`files.source_code` (paths relative to the factory folder when inside it, absolute otherwise).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from klong.exceptions import InputFileError
from klong.factory.records import CodeLink, PaperRecord, slugify
from klong.io import read_text, read_yaml, validate_record

_GENERIC_HEADINGS = re.compile(r"^(abstract|introduction|contents|table of contents|references|\d+(\.\d+)*)\b", re.I)


class LocalMeta(BaseModel):
    """`meta.yaml` of a paper folder."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    abstract: str = ""
    authors: list[str] = Field(default_factory=list)
    arxiv_id: str | None = None
    venue: str | None = None
    year: int | None = None
    license: str | None = None
    code_url: str | None = None
    code_official: bool = True
    """Whether `code_url` is the authors' own repository."""


def _rel(path: Path, root: Path) -> str:
    path, root = path.resolve(), root.resolve()
    return os.path.relpath(path, root) if path.is_relative_to(root) else str(path)


def markdown_title(text: str) -> str | None:
    """The first markdown heading that is not a generic section name."""
    for line in text.splitlines()[:200]:
        m = re.match(r"^\s{0,3}#{1,3}\s+(.+?)\s*#*\s*$", line)
        if m and not _GENERIC_HEADINGS.match(m.group(1)):
            return m.group(1).strip()
    return None


def markdown_abstract(text: str, max_chars: int = 4000) -> str:
    """The paragraph(s) under an `Abstract` heading, or after a line reading `Abstract`; empty when absent."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\s*(#{1,4}\s*)?(\*\*)?abstract(\*\*)?[.:]?\s*$", line, re.I):
            body: list[str] = []
            for nxt in lines[i + 1 :]:
                if re.match(r"^\s{0,3}#{1,4}\s", nxt) and body:
                    break
                body.append(nxt)
            return re.sub(r"\s+", " ", " ".join(body)).strip()[:max_chars]
    return ""


def pdf_title(path: Path) -> str | None:
    """The PDF's metadata title, else None (a PDF that cannot be opened raises `InputFileError`)."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(str(path))
    except pypdfium2.PdfiumError as e:
        raise InputFileError(path, f"not a readable PDF ({e})") from None
    try:
        title = (pdf.get_metadata_dict().get("Title") or "").strip()
    finally:
        pdf.close()
    return title or None


def _humanize(name: str) -> str:
    return re.sub(r"[-_]+", " ", name).strip() or name


def _record(name: str, paper: Path, meta: LocalMeta, code: Path | None, root: Path) -> PaperRecord:
    files: dict[str, str] = {}
    abstract = meta.abstract
    title = meta.title
    if paper.suffix.lower() == ".md":
        files["source_markdown"] = _rel(paper, root)
        text = read_text(paper)
        title = title or markdown_title(text)
        abstract = abstract or markdown_abstract(text)
    else:
        files["source_pdf"] = _rel(paper, root)
        title = title or pdf_title(paper)
    if code is not None:
        files["source_code"] = _rel(code, root)
    links = [CodeLink(url=meta.code_url, source="user", official=meta.code_official)] if meta.code_url else []
    slug = slugify(name)
    return PaperRecord(
        key=f"local:{slug}",
        slug=slug,
        title=title or _humanize(name),
        abstract=abstract,
        authors=meta.authors,
        venue=meta.venue,
        year=meta.year,
        arxiv_id=meta.arxiv_id,
        license=meta.license,
        code_links=links,
        files=files,
        notes={"collect": f"local folder {paper.parent}"},
    )


def local_records(folder: str | Path, root: str | Path) -> list[PaperRecord]:
    """Every paper in `folder` (both layouts), sorted by name. `root` is the factory folder (for relative paths).

    A sub-folder without `paper.md`/`paper.pdf` is skipped; a bad `meta.yaml` raises `InputFileError` naming it.
    """
    folder, root = Path(folder), Path(root)
    if not folder.is_dir():
        raise InputFileError(folder, "local paper folder not found")
    out: list[PaperRecord] = []
    names: dict[str, int] = {}

    def unique(name: str) -> str:  # `a_b.md` and `a-b.md` must not share a key
        slug = slugify(name)
        names[slug] = names.get(slug, 0) + 1
        return name if names[slug] == 1 else f"{slug}-{names[slug]}"

    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() in (".md", ".pdf"):
            out.append(_record(unique(entry.stem), entry, LocalMeta(), None, root))
        elif entry.is_dir():
            paper = next((entry / n for n in ("paper.md", "paper.pdf") if (entry / n).is_file()), None)
            if paper is None:
                continue
            meta_path = entry / "meta.yaml"
            meta = LocalMeta()
            if meta_path.exists():
                meta = validate_record(LocalMeta, read_yaml(meta_path) or {}, meta_path, what="paper meta.yaml")
            code = entry / "code"
            out.append(_record(unique(entry.name), paper, meta, code if code.is_dir() else None, root))
    return out
