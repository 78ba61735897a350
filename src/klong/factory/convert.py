"""`klong factory convert`: every active paper's text as markdown in `convert/md/<slug>.md` (`files.markdown`).

Per active paper of `fetch/papers.jsonl`:
- `files.source_markdown` (the user brought markdown) is copied through unchanged;
- otherwise `files.pdf` (fetched) or `files.source_pdf` (local) is converted with the configured backend
  (`pypdfium2` by default; `docling`; `latex` uses `files.latex` when the paper has a LaTeX source and falls back to
  `pypdfium2` when it has not, saying so in the notes);
- the paper is dropped, with the reason, when its PDF is broken, encrypted or has no text layer, or when the
  conversion yields fewer than `min_words` words (a scan, a stub, an extended abstract).

`notes.convert` records the backend, page count, word count and headings found. A backend that is not installed stops
the stage before any paper is touched (`ConfigError`); converted papers are kept and a resumed run skips them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from klong.factory.convert_backends import Backend, check_backend, convert_paper
from klong.factory.layout import run_per_paper, stage_dir
from klong.factory.pdf2md import PdfConversionError
from klong.factory.records import PaperRecord
from klong.factory.sources.progress import Progress
from klong.io import atomic_write_text

STAGE = "convert"


class ConvertConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Backend = "pypdfium2"
    """Converter for PDFs: pypdfium2 (default, no weights), docling (extra), latex (pandoc on `files.latex`)."""
    min_words: int = 500
    """A converted PDF with fewer words is dropped (a scan without text layer, a stub). Markdown sources only need to
    be non-empty."""
    docling_artifacts_path: str | None = None
    """Folder holding docling's model weights (downloads are refused)."""


def convert_one(root: Path, rec: PaperRecord, config: ConvertConfig) -> PaperRecord:
    """Convert one active record; returns it with `files.markdown` and `notes.convert`, or dropped with the reason."""
    out = stage_dir(root, STAGE) / "md" / f"{rec.slug}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = str(out.relative_to(root))
    if src := rec.files.get("source_markdown"):
        if not (root / src).is_file():
            return rec.dropped(STAGE, f"convert: markdown source {root / src} not found")
        text = (root / src).read_text(encoding="utf-8", errors="replace")
        if not text.strip():
            return rec.dropped(STAGE, f"convert: markdown source {src} is empty")
        shutil.copyfile(root / src, out)
        note = f"copied from {src}; {len(text.split())} words"
        return rec.model_copy(update={"files": {**rec.files, "markdown": rel}, "notes": {**rec.notes, STAGE: note}})
    pdf = rec.files.get("pdf") or rec.files.get("source_pdf")
    backend, source, fallback = config.backend, pdf, ""
    if backend == "latex":
        source = rec.files.get("latex")
        if source is None:
            backend, source, fallback = "pypdfium2", pdf, " (no LaTeX source: fell back to pypdfium2)"
    if source is None:
        return rec.dropped(STAGE, "convert: no paper text (no markdown, PDF or LaTeX source in files)")
    try:
        result = convert_paper(backend, root / source, artifacts_path=config.docling_artifacts_path)
    except PdfConversionError as e:
        return rec.dropped(STAGE, f"convert: {e}")
    if result.words < config.min_words:
        return rec.dropped(
            STAGE,
            f"convert: {source} gave only {result.words} words ({config.min_words} required; a scan or a stub?)",
        )
    atomic_write_text(out, result.markdown)
    note = (f"{backend}{fallback}: {result.pages} pages, {result.words} words, {len(result.headings)} headings "
            f"from {source}")  # fmt: skip
    return rec.model_copy(update={"files": {**rec.files, "markdown": rel}, "notes": {**rec.notes, STAGE: note}})


def run_convert(
    root: str | Path, config: ConvertConfig, *, resume: bool = True, progress: Progress | None = None
) -> list[PaperRecord]:
    """Convert every active paper of `fetch/papers.jsonl` into `convert/`; returns the records (dropped ones too)."""
    root = Path(root)
    check_backend(config.backend)
    return run_per_paper(
        root, STAGE, config, lambda rec: convert_one(root, rec, config), resume=resume, progress=progress
    )
