"""Recall of klong's PDF -> markdown converter against expected markdown, with a plain-PDFium baseline in the same run.

Inputs (from ../shared/data/papers, see its README):
  - real: every shipped PDF that has an expected markdown next to it (`pdf/X.pdf` + `pdf/X.expected.md`: one arXiv
    page with docling's ground truth); PDFs without one (the 20-page EACL paper) get size and speed figures only;
  - synthetic round trip: each expected markdown of `md/` (3 arXiv papers) typeset here into a two-column, justified
    PDF with hyphenated line ends, bold numbered headings, a running header and page numbers (matplotlib, monospace),
    then converted back. Content is written column by column, as LaTeX does, so this mostly measures hyphenation,
    header/page-number removal and heading detection, not hard reading-order cases.

Converters: klong (`pdf_to_markdown`) and the baseline, PDFium's `get_text_range()` page text with no layout handling.
Measures: `klong.factory.recall.measure_recall` (token recall/precision, bigram recall, heading recall). The ratio
klong / baseline of the overall bigram recall is printed last.

    python benchmarks/pdf_recall.py [--data ../shared/data/papers] [--keep DIR]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from klong.factory.pdf2md import baseline_text, pdf_to_markdown
from klong.factory.recall import Recall, measure_recall, strip_markdown

WIDTH = 48  # characters per column line (monospace, so every full line has the same width)
LINES = 62  # lines per column


def _hyphenate(words: list[str]) -> list[str]:
    """Justified lines of WIDTH characters; an alphabetic word that does not fit is split with a hyphen."""
    lines, cur = [], []
    for w in words:
        room = WIDTH - len(" ".join(cur)) - (1 if cur else 0)
        if len(w) <= room:
            cur.append(w)
            continue
        if w.isalpha() and len(w) >= 8 and room >= 5:
            cut = min(room - 1, len(w) - 3)
            cur.append(w[:cut] + "-")
            w = w[cut:]
        if cur:
            lines.append(cur)
        cur = [w]
    out = []
    for ws in lines:
        gaps, extra = len(ws) - 1, WIDTH - len("".join(ws))
        if gaps == 0 or extra > 3 * gaps + 6:
            out.append(" ".join(ws))
        else:
            out.append("".join(w + " " * (extra // gaps + (i < extra % gaps)) for i, w in enumerate(ws[:-1])) + ws[-1])
    return out + ([" ".join(cur)] if cur else [])


def typeset(markdown: str, pdf_path: Path, title: str) -> int:
    """Render a markdown paper as a two-column PDF; returns the page count."""
    import matplotlib

    matplotlib.use("pdf")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    matplotlib.rcParams["pdf.fonttype"] = 42
    items: list[tuple[str, str]] = []  # (kind, text) with kind in {"h", "p"}
    number = 0
    for block in re.split(r"\n\s*\n", markdown):
        block = block.strip()
        if not block:
            continue
        m = re.match(r"#{1,6}\s+(.*)", block)
        if m and "\n" not in block:
            number += 1
            items.append(("h", m.group(1).strip()))
        else:
            text = " ".join(strip_markdown(block).split())
            if text:
                items.append(("p", text))
    pages = 0
    with PdfPages(pdf_path) as pdf:
        fig, col, row = None, 0, 0

        def new_page():
            nonlocal fig, pages, col, row
            if fig is not None:
                pdf.savefig(fig)
                plt.close(fig)
            pages += 1
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(
                0.5, 0.965, f"{title} (preprint)", ha="center", fontsize=7, family="DejaVu Sans Mono", parse_math=False
            )
            fig.text(0.5, 0.03, str(pages), ha="center", fontsize=8, family="DejaVu Sans Mono", parse_math=False)
            col, row = 0, 0

        def put(text: str, bold: bool = False, size: float = 7.5) -> None:
            nonlocal col, row
            if row >= LINES:
                col, row = col + 1, 0
                if col == 2:
                    new_page()
            x = 0.07 if col == 0 else 0.53
            fig.text(x, 0.93 - row * 0.0137, text, fontsize=size, weight="bold" if bold else "normal",
                     family="DejaVu Sans Mono", parse_math=False)  # fmt: skip
            row += 1

        new_page()
        for kind, text in items:
            if kind == "h":
                if row > LINES - 4:
                    row = LINES
                row += 1 if row else 0
                for line in _hyphenate(text.split()) if len(text) > WIDTH - 8 else [text]:
                    put(line, bold=True, size=8.5)
            else:
                for line in _hyphenate(text.split()):
                    put(line)
                row += 1
        pdf.savefig(fig)
        plt.close(fig)
    return pages


def _fmt(r: Recall) -> str:
    def pct(x: float | None) -> str:
        return "  n/a" if x is None else f"{100 * x:5.1f}"

    return (f"tokens {pct(r.token_recall)}  prec {pct(r.token_precision)}  bigrams {pct(r.bigram_recall)}  "
            f"headings {pct(r.heading_recall)} ({r.expected_headings})")  # fmt: skip


def _overall(results: list[Recall]) -> dict[str, float]:
    exp = sum(r.expected_tokens for r in results)
    heads = sum(r.expected_headings for r in results)
    return {
        "token_recall": sum((r.token_recall or 0) * r.expected_tokens for r in results) / exp,
        "bigram_recall": sum((r.bigram_recall or 0) * r.expected_tokens for r in results) / exp,
        "heading_recall": sum((r.heading_recall or 0) * r.expected_headings for r in results) / max(heads, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "papers")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the typeset PDFs and conversions here.")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="klong-pdf-recall-"))
    work.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, Path, str]] = []
    for pdf in sorted((args.data / "pdf").glob("*.pdf")):
        expected = pdf.with_suffix(".expected.md")
        if expected.exists():
            cases.append((f"real {pdf.name}", pdf, expected.read_text(encoding="utf-8")))
        else:
            t0 = time.perf_counter()
            res = pdf_to_markdown(pdf)
            dt = time.perf_counter() - t0
            base_words = len(baseline_text(pdf).split())
            print(f"real {pdf.name}: no expected markdown; {res.pages} pages, {res.words} words (baseline "
                  f"{base_words}), {len(res.headings)} headings, {res.pages / dt:.1f} pages/s")  # fmt: skip
    for md in sorted((args.data / "md").glob("*.md")):
        text = md.read_text(encoding="utf-8")
        pdf = work / f"{md.stem}.typeset.pdf"
        pages = typeset(text, pdf, md.stem)
        cases.append((f"synthetic {md.stem} ({pages} pages)", pdf, text))
    ours, base = [], []
    t_ours = t_base = 0.0
    for name, pdf, expected in cases:
        t0 = time.perf_counter()
        converted = pdf_to_markdown(pdf).markdown
        t1 = time.perf_counter()
        plain = baseline_text(pdf)
        t2 = time.perf_counter()
        t_ours, t_base = t_ours + t1 - t0, t_base + t2 - t1
        (work / f"{pdf.stem}.klong.md").write_text(converted, encoding="utf-8")
        r_ours, r_base = measure_recall(converted, expected), measure_recall(plain, expected)
        ours.append(r_ours)
        base.append(r_base)
        print(f"{name}\n  klong    {_fmt(r_ours)}\n  baseline {_fmt(r_base)}")
    o, b = _overall(ours), _overall(base)
    print(f"overall ({len(cases)} documents, token-weighted): klong tokens {o['token_recall']:.3f} bigrams "
          f"{o['bigram_recall']:.3f} headings {o['heading_recall']:.3f}; baseline tokens {b['token_recall']:.3f} "
          f"bigrams {b['bigram_recall']:.3f} headings {b['heading_recall']:.3f}")  # fmt: skip
    print(f"time: klong {t_ours:.2f}s, baseline {t_base:.2f}s ({t_ours / max(t_base, 1e-9):.1f}x); outputs in {work}")
    print(f"ratio klong/baseline (overall bigram recall): {o['bigram_recall'] / b['bigram_recall']:.3f}")


if __name__ == "__main__":
    main()
