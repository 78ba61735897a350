"""PDF -> markdown with pypdfium2: shipped real PDFs, a generated two-column PDF, and broken/encrypted/empty PDFs."""

from __future__ import annotations

import re
from pathlib import Path

import pypdfium2 as pdfium
import pytest

from klong.factory.pdf2md import PdfConversionError, baseline_text, pdf_to_markdown
from klong.factory.recall import measure_recall
from tests.shared import shared_path

LEFT = (
    "Long-horizon agents must keep working for hours on a single task, and the context window fills up long before "
    "the task is done. The problem is especially difficult when the paper itself is long."
)
RIGHT = "We split every trajectory into overlapping windows that keep the task and the paper, and train on each once."
WIDTH = 44


def justified(text: str) -> list[str]:
    """Lines of exactly WIDTH characters (monospace, so justified), the last one ragged; `difficult` hyphenated."""
    words, lines, line = text.replace("difficult", "diffi- cult").split(), [], []
    for w in words:
        if line and len(" ".join([*line, w])) > WIDTH:
            lines.append(line)
            line = []
        line.append(w)
        if w.endswith("-"):  # the hyphenated word ends its line
            lines.append(line)
            line = []
    out = []
    for ws in lines:
        gaps, extra = len(ws) - 1, WIDTH - len("".join(ws))
        out.append("".join(w + " " * (extra // gaps + (i < extra % gaps)) for i, w in enumerate(ws[:-1])) + ws[-1])
    return out + [" ".join(line)]


def two_column_pdf(path: Path, pages: int = 3) -> Path:
    """A letter-size PDF per page: running header, page number, a title on page 1, two columns with headings."""
    import matplotlib

    matplotlib.use("pdf")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    matplotlib.rcParams["pdf.fonttype"] = 42
    font = {"family": "DejaVu Sans Mono"}
    with PdfPages(path) as pdf:
        for p in range(pages):
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(0.5, 0.96, "Preprint. Under review.", ha="center", fontsize=8, **font)
            fig.text(0.5, 0.03, str(p + 1), ha="center", fontsize=9, **font)
            y = 0.9
            if p == 0:
                fig.text(0.5, 0.9, "Splitting Long Trajectories", ha="center", fontsize=16, weight="bold", **font)
                y = 0.85
            for x, lines, head in ((0.08, LEFT, f"{2 * p + 1} Introduction {p}"),
                                   (0.53, RIGHT, f"{2 * p + 2} Method {p}")):  # fmt: skip
                fig.text(x, y, head, fontsize=11, weight="bold", **font)
                for i, line in enumerate(justified(" ".join([lines] * 2))):
                    fig.text(x, y - 0.025 - 0.016 * i, line, fontsize=9, **font)
            pdf.savefig(fig)
            plt.close(fig)
    return path


def test_generated_two_column_pdf(tmp_path: Path) -> None:
    result = pdf_to_markdown(two_column_pdf(tmp_path / "paper.pdf"))
    md = result.markdown
    assert result.pages == 3
    assert md.startswith("# Splitting Long Trajectories\n")
    assert "## 1 Introduction 0" in md and "## 2 Method 0" in md and "## 6 Method 2" in md
    # reading order: a page's left column (with its heading) comes before its right column, pages in order
    order = [md.index(h) for h in ("## 1 Introduction 0", "## 2 Method 0", "## 3 Introduction 1", "## 4 Method 1")]
    assert order == sorted(order)
    assert "difficult when the paper" in md and "diffi-" not in md
    assert "Preprint" not in md  # the running header
    assert not [line for line in md.splitlines() if re.fullmatch(r"\s*\d+\s*", line)]  # page numbers
    # a paragraph is re-flowed into one line
    assert "keep working for hours on a single task, and the context window fills up" in md
    assert "train on each once. We split every trajectory" in md


def test_shipped_arxiv_page_against_expected_markdown() -> None:
    pdf = shared_path("papers", "pdf", "2305.03393v1-pg9.pdf")
    expected = shared_path("papers", "pdf", "2305.03393v1-pg9.expected.md").read_text(encoding="utf-8")
    result = pdf_to_markdown(pdf)
    recall = measure_recall(result.markdown, expected)
    # measured 0.970 / 0.897 / 1.0 (docs/pdf_conversion.md); floors leave a margin for PDFium updates
    assert recall.token_recall is not None and recall.token_recall >= 0.93
    assert recall.bigram_recall is not None and recall.bigram_recall >= 0.85
    assert recall.heading_recall == 1.0
    assert "### 5.1 Hyper Parameter Optimization" in result.markdown
    assert "Optimized Table Tokenization for Table Structure Recognition" not in result.markdown  # running header
    assert "Effects of reducing" in result.markdown  # "Ef-" + "fects" joined
    assert measure_recall(baseline_text(pdf), expected).heading_recall == 0.0


def test_shipped_two_column_paper() -> None:
    result = pdf_to_markdown(shared_path("papers", "pdf", "2023.eacl-main.121.pdf"))
    md = result.markdown
    assert result.pages == 20 and result.words > 10_000
    assert md.startswith("# LONGEVAL: Guidelines for Human Evaluation of Faithfulness in Long-form Summarization")
    for heading in (
        "## Abstract",
        "## 1 Introduction",
        "## References",
        "### 3.1 RQ1:",
        "### B.1 FINE-grained",
        "## 2 Survey of human evaluation practices",
        "### 3.3 RQ3: Is it useful to align summary units",
    ):
        assert f"\n{heading}" in md, heading
    # hyphenation joined, and a sentence followed across the column break (past the page's footnotes)
    assert "best practice for accurately judging" in md
    assert "considered the gold standard for evaluating model-generated summaries (Kryscinski" in md
    assert "https://github.com/martiansideofthemoon/longeval-summarization" in md
    page_numbers = {str(n) for n in range(1650, 1670)}  # the proceedings' page numbers, at each page's foot
    assert not [line for line in md.splitlines() if line.strip() in page_numbers]
    assert "\x02" not in md and "\ufffe" not in md


def _encrypted_pdf() -> bytes:
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
            f"<< /Filter /Standard /V 1 /R 2 /O <{'11' * 32}> /U <{'22' * 32}> /P -4 >>"]  # fmt: skip
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    trailer = f"<< /Size {len(objs) + 1} /Root 1 0 R /Encrypt 4 0 R /ID [<{'33' * 16}> <{'33' * 16}>] >>"
    return out + f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode()


def test_broken_encrypted_and_empty_pdfs_name_the_file(tmp_path: Path) -> None:
    cases = {
        "missing.pdf": (None, "file not found"),
        "text.pdf": (b"this is not a pdf\n", "not a PDF, or the PDF is damaged"),
        "locked.pdf": (_encrypted_pdf(), "encrypted"),
    }
    blank = tmp_path / "blank.pdf"
    doc = pdfium.PdfDocument.new()
    doc.new_page(300, 400)
    doc.save(str(blank))
    for name, (data, problem) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(PdfConversionError, match=re.escape(problem)) as err:
            pdf_to_markdown(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(PdfConversionError, match="no extractable text") as err:
        pdf_to_markdown(blank)
    assert str(blank) in str(err.value)
