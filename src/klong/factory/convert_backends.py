"""Paper-to-markdown backends behind one interface: `convert_paper(backend, source, ...) -> PdfMarkdown`.

- `pypdfium2` (default): `klong.factory.pdf2md`, no model weights, permissive licence.
- `docling` (optional extra, imported lazily): IBM's layout models give better tables and reading order. Its model
  weights must already be on disk (`artifacts_path`, or the Hugging Face cache); downloads are refused
  (`HF_HUB_OFFLINE=1`), so a missing model is a clear error, not a silent multi-GB fetch.
- `latex`: an arXiv LaTeX source (a `.tex` file, a folder, or the `.tar.gz` arXiv serves at `/e-print/ID`) converted
  with `pandoc` (the best math). Needs the `pandoc` executable.

`check_backend(name)` fails early, with a message saying what to install, before a stage starts on hundreds of papers.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from klong.exceptions import ConfigError
from klong.factory.pdf2md import PdfConversionError, PdfMarkdown, pdf_to_markdown

Backend = Literal["pypdfium2", "docling", "latex"]
BACKENDS: tuple[str, ...] = ("pypdfium2", "docling", "latex")


def check_backend(backend: str) -> None:
    """Raise `ConfigError` when `backend` is unknown or its software is not installed."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown conversion backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "docling":
        try:
            import docling.document_converter  # noqa: F401
        except ImportError:
            raise ConfigError(
                "the docling backend needs the optional `docling` package (pip install docling) and its layout "
                "models on disk; or use --backend pypdfium2"
            ) from None
    if backend == "latex" and shutil.which("pandoc") is None:
        raise ConfigError(
            "the latex backend needs the `pandoc` executable on PATH (https://pandoc.org/installing.html)"
        )


def convert_paper(backend: str, source: str | Path, *, artifacts_path: str | None = None) -> PdfMarkdown:
    """Convert `source` (a PDF; for `latex`, a LaTeX source) to markdown with `backend`.

    Raises `PdfConversionError` (naming the file) when this paper cannot be converted and `ConfigError` when the
    backend itself is unusable.
    """
    check_backend(backend)
    if backend == "pypdfium2":
        return pdf_to_markdown(source)
    if backend == "docling":
        return docling_to_markdown(source, artifacts_path=artifacts_path)
    return latex_to_markdown(source)


def docling_to_markdown(path: str | Path, *, artifacts_path: str | None = None) -> PdfMarkdown:
    """Convert a PDF with docling's standard pipeline (no OCR, offline)."""
    check_backend("docling")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from docling.datamodel.base_models import InputFormat
    from docling.datamodel.pipeline_options import PdfPipelineOptions
    from docling.document_converter import DocumentConverter, PdfFormatOption

    options = PdfPipelineOptions(do_ocr=False, artifacts_path=artifacts_path)
    converter = DocumentConverter(format_options={InputFormat.PDF: PdfFormatOption(pipeline_options=options)})
    try:
        result = converter.convert(str(path))
    except (OSError, FileNotFoundError) as e:
        raise ConfigError(
            f"docling could not load its models ({e}); download them once (docling-tools models download) and "
            "pass convert.docling_artifacts_path"
        ) from None
    except Exception as e:  # docling wraps PDF failures in its own exception types
        raise PdfConversionError(path, f"docling failed: {e}") from None
    markdown = result.document.export_to_markdown()
    heads = re.findall(r"^#{1,6}\s+(.+)$", markdown, re.M)
    return PdfMarkdown(markdown=markdown, pages=len(result.document.pages), headings=heads)


def _main_tex(folder: Path) -> Path | None:
    """The `.tex` file holding `\\documentclass` (the largest one when several do)."""
    mains = [p for p in folder.rglob("*.tex") if "\\documentclass" in p.read_text(encoding="utf-8", errors="replace")]
    return max(mains, key=lambda p: p.stat().st_size) if mains else None


def latex_to_markdown(source: str | Path, *, timeout_s: float = 300.0) -> PdfMarkdown:
    """Convert a LaTeX paper with pandoc: `source` is a `.tex` file, a folder, or a (gzipped) tar of the source."""
    check_backend("latex")
    source = Path(source)
    if not source.exists():
        raise PdfConversionError(source, "file not found")
    with tempfile.TemporaryDirectory(prefix="klong-latex-") as tmp:
        if source.is_file() and tarfile.is_tarfile(source):
            try:
                with tarfile.open(source) as tar:
                    tar.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError) as e:
                raise PdfConversionError(source, f"not a readable LaTeX source archive ({e})") from None
            main = _main_tex(Path(tmp))
        elif source.is_dir():
            main = _main_tex(source)
        else:
            main = source
        if main is None:
            raise PdfConversionError(source, "no .tex file with \\documentclass found")
        proc = subprocess.run(
            ["pandoc", main.name, "--from", "latex", "--to", "gfm", "--wrap", "none"],
            cwd=main.parent,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    if proc.returncode != 0:
        raise PdfConversionError(source, f"pandoc failed: {proc.stderr.strip()[-400:]}")
    heads = re.findall(r"^#{1,6}\s+(.+)$", proc.stdout, re.M)
    return PdfMarkdown(markdown=proc.stdout, pages=0, headings=heads)
