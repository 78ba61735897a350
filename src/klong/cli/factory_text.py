"""Factory stages (paper text): `klong factory convert | blacklist`, and `klong factory pdf2md` for one PDF."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from klong.cli.common import console, handle_errors, print_json
from klong.cli.factory import factory_app
from klong.cli.factory_sources import (
    ConfigOpt,
    DirOpt,
    JsonOpt,
    OldNoResumeOpt,
    ResumeOpt,
    _config,
    _from_config,
    _run,
    resuming,
)


@factory_app.command("convert")
@handle_errors
def convert_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="pypdfium2, docling (extra) or latex (pandoc).",
            show_default=_from_config("convert.backend", "pypdfium2"),
        ),
    ] = None,
    min_words: Annotated[
        int | None,
        typer.Option(
            "--min-words",
            help="Drop conversions shorter than this.",
            show_default=_from_config("convert.min_words", 500),
        ),
    ] = None,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert each paper's PDF (or LaTeX source) to markdown; markdown sources are copied through."""
    from klong.factory.convert import STAGE, ConvertConfig, run_convert

    cfg = _config(ConvertConfig, STAGE, config, backend=backend, min_words=min_words)
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_convert(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )


@factory_app.command("blacklist")
@handle_errors
def blacklist_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    third_party: Annotated[
        bool,
        typer.Option(
            "--include-third-party",
            help="Also blacklist repositories the paper only cites (blacklist.include_third_party from -c, else off).",
        ),
    ] = False,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find each paper's official repositories (paper text + collected links) and write its blacklist.txt."""
    from klong.factory.blacklist import STAGE, BlacklistConfig, run_blacklist

    cfg = _config(BlacklistConfig, STAGE, config, include_third_party=third_party or None)
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_blacklist(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )


@factory_app.command("pdf2md")
@handle_errors
def pdf2md_cmd(
    pdf: Annotated[Path, typer.Argument(help="The PDF to convert.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the markdown here.", show_default="stdout")
    ] = None,
    expected: Annotated[
        Path | None,
        typer.Option(
            "--expected", help="An expected markdown: print the conversion's recall against it.", show_default="none"
        ),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="pypdfium2, docling or latex.")] = "pypdfium2",
    as_json: JsonOpt = False,
) -> None:
    """Convert one PDF to markdown (and measure its recall against an expected markdown)."""
    from klong.factory.convert_backends import convert_paper
    from klong.factory.recall import measure_recall
    from klong.io import atomic_write_text, read_text

    result = convert_paper(backend, pdf)
    if out is not None:
        atomic_write_text(out, result.markdown)
    elif expected is None and not as_json:
        print(result.markdown, end="")
    info: dict = {"pdf": str(pdf), "pages": result.pages, "words": result.words, "headings": len(result.headings)}
    if out is not None:
        info["out"] = str(out)
    if expected is not None:
        info["recall"] = measure_recall(result.markdown, read_text(expected)).model_dump()
    if as_json:
        print_json(info)
        return
    if out is not None or expected is not None:
        console.print(f"{pdf}: {result.pages} pages, {result.words} words, {len(result.headings)} headings"
                      + (f" -> {out}" if out else ""))  # fmt: skip
    if expected is not None:
        r = info["recall"]

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}%"

        console.print(f"recall against {expected}: tokens {pct(r['token_recall'])} (precision "
                      f"{pct(r['token_precision'])}), bigrams {pct(r['bigram_recall'])}, headings "
                      f"{pct(r['heading_recall'])} of {r['expected_headings']}")  # fmt: skip
        if r["missing_headings"]:
            console.print("missing headings: " + "; ".join(r["missing_headings"]))
