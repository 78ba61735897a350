"""PDF to markdown with `pypdfium2` (the factory's default converter: permissive licence, no model weights).

PDFium gives characters with their boxes and fonts but no layout analysis, so this module adds a small one:

1. **Lines**: characters (with their effective font size, boldness and box) are grouped into lines, following PDFium's
   own line breaks and also breaking where the text jumps left or leaves a wide gap (two columns on one baseline).
   Rotated characters (the arXiv stamp in the margin, rotated table labels) are dropped.
2. **Running headers, footers and page numbers** are dropped: lines in the top/bottom bands of a page that are only a
   page number, that begin or end with a number and stand apart from the body, or that repeat (digits ignored) on
   several pages.
3. **Reading order**: each page's gutter is found from where the lines are; a two-column page is cut into horizontal
   bands at the lines that span both columns, and each band is read left column then right column. Small-print lines
   at the foot of a column (footnotes) move to the end of the page, so a paragraph that continues in the next column
   is joined across them.
4. **Blocks**: lines become paragraphs (breaks at vertical gaps, size changes, indented first lines, short last lines),
   re-flowed into one line each with hyphenated line breaks joined (`diffi-`/`cult` -> `difficult`).
5. **Headings**: a short block set larger than the body text, or in bold, or numbered like `3.2 Method` / `A.1` /
   `IV.` (in bold, capitals or a larger size), becomes a heading: the largest one at the top of page 1 is the title
   (`#`), numbered headings take their depth (`1` -> `##`, `3.2` -> `###`), other headings `##` (larger type) or `###`
   (bold at body size); a bold run-in lead (`Baselines for Object Detection.` starting a paragraph) becomes `####`.

The reference list is kept as a section like any other. Tables come out as their text (one paragraph per row group),
formulas as the characters PDFium reports. `docs/pdf_conversion.md` records the measured recall and the limitations.
"""

from __future__ import annotations

import ctypes
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from klong.exceptions import InputFileError

HYPHEN_MARKS = "\x02\ufffe\u00ad"
"""What PDFium reports for a hyphen that breaks a word at a line end (plus the soft hyphen)."""
_LIGATURES = {
    "\ufb00": "ff",
    "\ufb01": "fi",
    "\ufb02": "fl",
    "\ufb03": "ffi",
    "\ufb04": "ffl",
    "\ufb05": "st",
    "\ufb06": "st",
}
_BOLD_NAME = re.compile(r"bold|black|heavy|semibold|demi|medi|cmbx|sfbx|cmb\d|-bd|,b$", re.I)
_NUMBERED = re.compile(r"^(?P<num>\d{1,2}(?:\.\d{1,2})*|[A-H](?:\.\d{1,2})*|[IVX]{1,4})\.?\s+(?P<rest>[A-Z(].*)$")
_KNOWN_HEADINGS = {"abstract", "references", "bibliography", "acknowledgements", "acknowledgments", "appendix",
                   "introduction", "conclusion", "conclusions", "related work", "keywords", "contents"}  # fmt: skip
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?[-–—]?\s*(?:\d{1,4}|[ivxlc]{1,6})\s*[-–—]?$", re.I)
_EDGE_NUMBER = re.compile(r"(?:^\d{1,4}\s)|(?:\s\d{1,4}$)")


class PdfConversionError(InputFileError):
    """A PDF could not be read (not a PDF, damaged, encrypted) or holds no extractable text."""


@dataclass
class Line:
    """One line of text on a page; coordinates in PDF points, origin bottom-left (y grows upwards)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    size: float
    bold: float
    """Share of the line's characters set in a bold font."""
    bold_lead: int = 0
    """How many leading characters are bold (a run-in heading)."""
    page: int = 0
    col: int = -1
    """0 left column, 1 right column, -1 spanning or single-column."""


@dataclass
class PdfMarkdown:
    """The result of a conversion: the markdown, the page count, and the headings found (without `#`)."""

    markdown: str
    pages: int
    headings: list[str] = field(default_factory=list)

    @property
    def words(self) -> int:
        return len(self.markdown.split())


def open_pdf(path: str | Path) -> pdfium.PdfDocument:
    """Open a PDF, turning PDFium's failures into `PdfConversionError` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise PdfConversionError(path, "file not found")
    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        problem = {
            pdfium_c.FPDF_ERR_PASSWORD: "the PDF is encrypted (a password is required)",
            pdfium_c.FPDF_ERR_SECURITY: "the PDF uses an unsupported security handler",
            pdfium_c.FPDF_ERR_FORMAT: "not a PDF, or the PDF is damaged",
            pdfium_c.FPDF_ERR_FILE: "the file could not be opened",
        }.get(e.err_code, f"PDFium could not load it ({e})")
        raise PdfConversionError(path, problem) from None


def baseline_text(path: str | Path) -> str:
    """Plain PDFium text, page after page (`get_text_range()`, no layout handling): the benchmark's baseline."""
    doc = open_pdf(path)
    try:
        return "\n\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


def pdf_to_markdown(path: str | Path) -> PdfMarkdown:
    """Convert the PDF at `path` to markdown (see the module docstring for what is done).

    Raises `PdfConversionError` when the file is not a readable PDF, is encrypted, or has no text layer at all (a
    scanned PDF: this converter does no OCR).
    """
    path = Path(path)
    doc = open_pdf(path)
    try:
        pages = [_page_lines(doc[i], i) for i in range(len(doc))]
        heights = [doc.get_page_size(i)[1] for i in range(len(doc))]
        n_pages = len(doc)
    except pdfium.PdfiumError as e:
        raise PdfConversionError(path, f"PDFium failed while reading the text ({e})") from None
    finally:
        doc.close()
    if not any(pages):
        raise PdfConversionError(path, f"no extractable text in {n_pages} page(s) (a scanned or empty PDF?)")
    pages = _drop_headers_footers(pages, heights)
    body = _body_size(pages)
    ordered: list[Line] = []
    for lines, h in zip(pages, heights, strict=True):
        ordered += _reading_order(lines, body, h)
    return _to_markdown(ordered, body, n_pages)


def _page_lines(page: pdfium.PdfPage, page_no: int) -> list[Line]:
    tp = page.get_textpage()
    n = tp.count_chars()
    lines: list[Line] = []
    chars: list[tuple[str, float, float, float, float, float, bool]] = []
    name_buf = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    box = [ctypes.c_double() for _ in range(4)]
    matrix = pdfium_c.FS_MATRIX()

    def flush() -> None:
        if any(not c[0].isspace() for c in chars):
            lines.append(_make_line(chars, page_no))
        chars.clear()

    for i in range(n):
        ch = chr(pdfium_c.FPDFText_GetUnicode(tp, i))
        if ch in "\r\n":
            flush()
            continue
        ch = _LIGATURES.get(ch, ch)
        if ch.isspace():
            if chars:
                chars.append((" ", *chars[-1][1:]))
            continue
        if abs(math.sin(pdfium_c.FPDFText_GetCharAngle(tp, i))) > 0.05:
            continue
        pdfium_c.FPDFText_GetCharBox(tp, i, *box)
        left, right, bottom, top = (b.value for b in box)
        pdfium_c.FPDFText_GetMatrix(tp, i, matrix)
        size = pdfium_c.FPDFText_GetFontSize(tp, i) * math.sqrt(abs(matrix.a * matrix.d - matrix.b * matrix.c))
        pdfium_c.FPDFText_GetFontInfo(tp, i, name_buf, len(name_buf), ctypes.byref(flags))
        bold = bool(_BOLD_NAME.search(name_buf.value.decode("utf-8", "replace"))) or (
            pdfium_c.FPDFText_GetFontWeight(tp, i) >= 600
        )
        if chars:
            last = next((c for c in reversed(chars) if not c[0].isspace()), chars[-1])
            s = max(size, 1.0)
            if (
                left < last[3] - 2 * s
                or left - last[3] > 3 * s
                or bottom > last[4] + 0.3 * s
                or top < last[2] - 0.3 * s
            ):
                flush()
        chars.append((ch, left, bottom, right, top, size, bold))
    flush()
    return lines


def _make_line(chars: list[tuple[str, float, float, float, float, float, bool]], page_no: int) -> Line:
    ink = [c for c in chars if not c[0].isspace()]
    size = statistics.median(c[5] for c in ink)
    lead = 0
    for c in chars:
        if not (c[6] or c[0].isspace()):
            break
        lead += 1
    return Line(
        text="".join(c[0] for c in chars).strip(),
        x0=min(c[1] for c in ink),
        y0=min(c[2] for c in ink),
        x1=max(c[3] for c in ink),
        y1=max(c[4] for c in ink),
        size=round(size * 2) / 2,
        bold=sum(c[6] for c in ink) / len(ink),
        bold_lead=lead,
        page=page_no,
    )


def _norm_edge(text: str) -> str:
    return re.sub(r"\d+", "#", text.lower()).strip()


def _drop_headers_footers(pages: list[list[Line]], heights: list[float]) -> list[list[Line]]:
    repeated: Counter[str] = Counter()
    for lines, h in zip(pages, heights, strict=True):
        repeated.update({_norm_edge(ln.text) for ln in lines if ln.y0 > 0.85 * h or ln.y1 < 0.12 * h})
    need = max(2, 0.3 * len(pages))
    out = []
    for lines, h in zip(pages, heights, strict=True):
        band = [ln for ln in lines if ln.y0 > 0.85 * h or ln.y1 < 0.12 * h]
        numbers = [ln for ln in band if _PAGE_NUMBER.match(ln.text)]
        drop = {id(ln) for ln in numbers}
        for ln in band:
            beside_number = any(n.y0 <= (ln.y0 + ln.y1) / 2 <= n.y1 for n in numbers)
            running = (len(pages) > 2 and repeated[_norm_edge(ln.text)] >= need and not _heading_like(ln.text)
                       and _outer_rows(ln, lines))  # fmt: skip
            if running or (_stands_apart(ln, lines) and (beside_number or _EDGE_NUMBER.search(ln.text))):
                drop.add(id(ln))
        out.append([ln for ln in lines if id(ln) not in drop])
    return out


def _outer_rows(ln: Line, lines: list[Line]) -> bool:
    """True when the line is in the page's two outermost rows (top or bottom)."""
    above = {round(x.y0) for x in lines if x.y0 > ln.y1}
    below = {round(x.y1) for x in lines if x.y1 < ln.y0}
    return len(above) <= 1 or len(below) <= 1


def _stands_apart(ln: Line, lines: list[Line]) -> bool:
    """True when no line is above (or below) this one and a clear gap separates it from the rest of the page."""
    above = [x.y0 for x in lines if x.y0 > ln.y1]
    below = [x.y1 for x in lines if x.y1 < ln.y0]
    gap = 1.5 * ln.size
    if not above:
        return not below or ln.y0 - max(below) > gap
    if not below:
        return min(above) - ln.y1 > gap
    return False


def _body_size(pages: list[list[Line]]) -> float:
    sizes: Counter[float] = Counter()
    for lines in pages:
        for ln in lines:
            sizes[ln.size] += len(ln.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def _reading_order(lines: list[Line], body: float, height: float) -> list[Line]:
    """Order a page's lines for reading: bands split at spanning lines, left column then right in each band;
    footnotes (small print below a column's last body line, in the page's lower third) go last."""
    if not lines:
        return []
    gutter = _find_gutter(lines, min(ln.x0 for ln in lines), max(ln.x1 for ln in lines))
    for ln in lines:
        ln.col = -1 if gutter is None else 0 if ln.x1 <= gutter else 1 if ln.x0 >= gutter else -1
    lines = _merge_rows(lines)
    out: list[Line] = []
    band: list[Line] = []
    for ln in lines:
        if ln.col == -1:
            out += sorted(band, key=lambda x: x.col)  # stable: each column stays top to bottom
            band = []
            out.append(ln)
        else:
            band.append(ln)
    out += sorted(band, key=lambda x: x.col)
    lowest_body = {c: min((x.y0 for x in lines if x.col == c and x.size >= 0.92 * body), default=height)
                   for c in (-1, 0, 1)}  # fmt: skip
    notes = [x for x in out if x.size < 0.92 * body and x.y1 < 0.33 * height and x.y1 <= lowest_body[x.col] + 1]
    ids = {id(x) for x in notes}
    return [x for x in out if id(x) not in ids] + notes


def _merge_rows(lines: list[Line]) -> list[Line]:
    """Top-to-bottom lines, with pieces of one row of a column (table cells, split labels) merged left to right."""
    rows: list[list[Line]] = []
    for ln in sorted(lines, key=lambda ln: -ln.y1):
        row = next((r for r in reversed(rows[-4:]) if r[0].col == ln.col and _same_row(r[0], ln)), None)
        if row is None:
            rows.append([ln])
        else:
            row.append(ln)
    out = []
    for row in rows:
        row.sort(key=lambda x: x.x0)
        first = row[0]
        if len(row) > 1:
            first = Line(text=" ".join(x.text for x in row), x0=first.x0, y0=min(x.y0 for x in row),
                         x1=max(x.x1 for x in row), y1=max(x.y1 for x in row), size=max(x.size for x in row),
                         bold=sum(x.bold * len(x.text) for x in row) / sum(len(x.text) for x in row),
                         bold_lead=first.bold_lead if first.bold < 1 else len(first.text), page=first.page,
                         col=first.col)  # fmt: skip
        out.append(first)
    return out


def _same_row(a: Line, b: Line) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return overlap > 0.5 * min(a.y1 - a.y0, b.y1 - b.y0)


def _find_gutter(lines: list[Line], left: float, right: float) -> float | None:
    """The x of a gutter between two columns, or None for a single-column page."""
    width = right - left
    if width <= 0 or len(lines) < 8:
        return None
    xs = [left + width * (0.35 + 0.3 * i / 120) for i in range(121)]
    cross = [sum(1 for ln in lines if ln.x0 < x - 2 and x + 2 < ln.x1) for x in xs]
    low = min(cross)
    best = statistics.median(x for x, c in zip(xs, cross, strict=True) if c == low)  # the middle of the gutter
    n_left = sum(1 for ln in lines if ln.x1 <= best and ln.x1 - ln.x0 > 0.25 * width)
    n_right = sum(1 for ln in lines if ln.x0 >= best and ln.x1 - ln.x0 > 0.25 * width)
    if n_left >= 4 and n_right >= 4 and low <= 0.25 * len(lines):
        return best
    return None


def _to_markdown(lines: list[Line], body: float, n_pages: int) -> PdfMarkdown:
    blocks = _blocks(lines, body)
    title_done = False
    parts: list[str] = []
    headings: list[str] = []
    title_size = max((b[0].size for b in blocks if b[0].page == 0), default=body)
    for block in blocks:
        text = _reflow(block)
        level = _heading_level(block, text, body)
        if level and not title_done and block[0].page == 0 and block[0].size == title_size and title_size > body * 1.15:
            level, title_done = 1, True
        if level:
            headings.append(text)
            parts.append("#" * level + " " + text)
            continue
        lead = _run_in_heading(block)
        if lead and text.startswith(lead):
            headings.append(lead.rstrip(".:"))
            parts.append("#### " + lead.rstrip(".:"))
            text = text[len(lead) :].lstrip()
        if text:
            parts.append("\\" + text if text.startswith(("#", ">", "- ", "* ", "+ ")) else text)
    return PdfMarkdown(markdown="\n\n".join(parts) + "\n", pages=n_pages, headings=headings)


def _blocks(lines: list[Line], body: float) -> list[list[Line]]:
    """Group ordered lines into paragraphs (see the module docstring for where breaks fall)."""
    blocks: list[list[Line]] = []
    cols: dict[tuple[int, int], tuple[float, float]] = {}
    for ln in lines:
        lo, hi = cols.get((ln.page, ln.col), (ln.x0, ln.x1))
        cols[(ln.page, ln.col)] = (min(lo, ln.x0), max(hi, ln.x1))
    in_refs = False
    for ln in lines:
        if not blocks:
            blocks.append([ln])
            continue
        prev = blocks[-1][-1]
        if in_refs and prev.page == ln.page and prev.col == ln.col and prev.size == ln.size:
            # reference lists use hanging indents: an entry starts back at the column's left edge
            lo = cols[(ln.page, ln.col)][0]
            new = prev.y0 - ln.y1 > 0.75 * ln.size or (ln.x0 < lo + 0.5 * ln.size and prev.x0 > lo + 0.5 * ln.size)
        else:
            new = _breaks(blocks[-1], ln, body, cols)
        if new:
            if len(blocks[-1]) <= 2:
                title = " ".join(x.text for x in blocks[-1]).strip().lower().lstrip("0123456789. ")
                in_refs = title in ("references", "bibliography") or (
                    in_refs and not (_heading_like(ln.text) or ln.bold >= 0.9 or ln.size > 1.1 * body)
                )
            blocks.append([ln])
        else:
            blocks[-1].append(ln)
    return blocks


def _breaks(block: list[Line], ln: Line, body: float, cols: dict[tuple[int, int], tuple[float, float]]) -> bool:
    prev = block[-1]
    s = max(ln.size, 1.0)
    display = prev.bold >= 0.9 or prev.size > 1.1 * body  # headings and titles: centred, no paragraph indents
    if abs(prev.size - ln.size) > 0.1 * s:
        return True
    if prev.bold >= 0.9 and ln.text[:1].islower() and prev.text[-1:] not in ".:?!" and prev.size <= body:
        return False  # a bold lead sentence running on into regular text
    if display and ln.bold < 0.9 and not ln.bold_lead and prev.size <= body:
        return True
    if (prev.bold >= 0.9) != (ln.bold >= 0.9) and not (prev.bold >= 0.9 and ln.bold_lead):
        return True
    unfinished = prev.text[-1:] in HYPHEN_MARKS + "-," or ln.text[:1].islower()
    if _heading_like(prev.text) and not unfinished:
        return True
    if prev.page != ln.page or prev.col != ln.col or prev.y0 < ln.y1 - s:
        return not unfinished  # a new column or page: continue only a visibly unfinished sentence
    lo, hi = cols[(ln.page, ln.col)]
    if prev.y0 - ln.y1 > 0.75 * s:
        return True
    if display or (prev.text.endswith("/") and "://" in prev.text):  # headings; a URL broken after a slash
        return False
    right = max(x.x1 for x in block) if len(block) > 1 else hi
    return prev.x1 < right - 2.5 * s or (ln.x0 - prev.x0 > 0.8 * s and ln.x0 - lo > 0.8 * s)


def _heading_like(text: str) -> bool:
    return bool(_NUMBERED.match(text)) and len(text.split()) <= 10 and not text.endswith(".")


def _heading_level(block: list[Line], text: str, body: float) -> int:
    """0 for a paragraph, else the markdown heading level of the block."""
    words = text.split()
    if (
        not words
        or len(words) > 20
        or len(block) > 3
        or text.endswith((".", ",", ";"))
        or not re.search(r"[A-Za-z]{2}", text)
    ):
        return 0
    size_ratio = block[0].size / body
    bold = all(ln.bold >= 0.9 for ln in block)
    m = _NUMBERED.match(text)
    if m and (bold or size_ratio >= 1.1 or m["rest"].isupper()) and sum(ch.isdigit() for ch in m["rest"]) <= 4:
        num = m["num"]
        return min(2 + num.count("."), 6) if num[0].isdigit() or "." in num or len(num) == 1 else 2
    if len(words) > 14:
        return 0
    if text.lower().rstrip(":") in _KNOWN_HEADINGS and (bold or size_ratio >= 1.1 or text.isupper()):
        return 2
    if size_ratio >= 1.15:
        return 2
    if bold and len(words) <= 10 and size_ratio >= 0.95 and not re.search(r"[.?!]\s+[A-Z]", text):
        return 3
    return 0


def _run_in_heading(block: list[Line]) -> str | None:
    """A bold lead phrase ending in `.`/`:`/`?` that starts a paragraph of regular text (LaTeX's `\\paragraph`)."""
    texts = []
    for ln in block:
        if ln.bold >= 0.9:
            texts.append(ln.text)
            continue
        if ln.bold_lead >= 2:
            texts.append(ln.text[: ln.bold_lead])
        break
    else:
        return None
    lead = _reflow_texts(texts)
    if lead.endswith((".", ":", "?")) and 1 <= len(lead.split()) <= 14 and not re.match(r"(?i)(table|fig)", lead):
        return lead
    return None


def _reflow(block: list[Line]) -> str:
    """Join a block's lines into one, joining words hyphenated across a line break."""
    return _reflow_texts([ln.text for ln in block])


def _reflow_texts(texts: list[str]) -> str:
    out = ""
    for text in texts:
        if not out:
            out = text
        elif out[-1] in HYPHEN_MARKS or (out[-1] == "-" and out[-2:-1].isalpha() and text[:1].islower()):
            out = out[:-1] + text
        elif out.endswith("/") and "://" in out.rsplit(" ", 1)[-1]:
            out += text  # a URL broken after a slash
        else:
            out += " " + text
    return re.sub(f"[{HYPHEN_MARKS}]", "-", re.sub(r"\s+", " ", out)).strip()
