"""Text recall of a converted markdown against an expected markdown (how much of the paper survived conversion).

Both texts are normalised the same way before counting:

- markdown syntax is removed: heading marks, emphasis (`*`, `_`, backticks), table pipes and `| - |` separator rows,
  image lines and HTML comments (`<!-- image -->`), link syntax (`[text](url)` keeps the text and the URL);
- Unicode is NFKC-normalised (ligatures, full-width forms), case is folded, hyphens and whitespace are neutral;
- the text is split into tokens: runs of letters and digits (`\\w+` without the underscore).

Measures (all in [0, 1]; `None` where the expected side has nothing to count):

- `token_recall`: multiset recall of expected tokens: sum over tokens of min(expected count, converted count) / number
  of expected tokens. Order-insensitive: it measures what text is present, not where.
- `token_precision`: the same intersection / number of converted tokens (extra text: headers, stamps, table noise).
- `bigram_recall`: multiset recall of adjacent token pairs: a word pair survives only if the two words are still
  next to each other, so it drops when columns interleave, lines are shuffled or words are split/glued.
- `heading_recall`: share of the expected headings (`#` lines) found as headings in the converted markdown, compared
  after the same normalisation, with numbering ignored (`5.1 Hyper Parameter Optimization` == `Hyper Parameter
  Optimization`) and a fuzzy match (difflib ratio >= 0.85) to allow one glued or split word.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from itertools import pairwise

from pydantic import BaseModel

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)|^Image:.*$", re.M)
_LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-+:?\s*\|)+\s*:?-*:?\s*$", re.M)
_TOKEN = re.compile(r"[^\W_]+")
_NUMBERING = re.compile(r"^(?:\d+(?:\.\d+)*|[A-H](?:\.\d+)*|[IVX]+)\.?\s+")


class Recall(BaseModel):
    """Recall of one converted markdown against its expected markdown (see the module docstring)."""

    expected_tokens: int
    converted_tokens: int
    token_recall: float | None
    token_precision: float | None
    bigram_recall: float | None
    expected_headings: int
    heading_recall: float | None
    missing_headings: list[str] = []


def strip_markdown(text: str) -> str:
    """The plain text of a markdown document (the normalisation described in the module docstring)."""
    text = _COMMENT.sub(" ", text)
    text = _IMAGE.sub(" ", text)
    text = _LINK.sub(r"\1 \2", text)
    text = _TABLE_RULE.sub(" ", text)
    text = re.sub(r"^\s{0,3}#{1,6}\s+", "", text, flags=re.M)
    text = re.sub(r"[*_`|>\\]", " ", text)
    return unicodedata.normalize("NFKC", text)


def tokens(text: str) -> list[str]:
    """Lower-cased letter/digit runs of the markdown's plain text."""
    return _TOKEN.findall(strip_markdown(text).casefold())


def headings(markdown: str) -> list[str]:
    """The normalised text of every ATX heading (`#`...`######`), numbering removed."""
    out = []
    for m in re.finditer(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$", markdown, re.M):
        norm = " ".join(tokens(_NUMBERING.sub("", m.group(1).strip())))
        if norm:
            out.append(norm)
    return out


def _multiset_recall(expected: Counter, got: Counter) -> float | None:
    total = sum(expected.values())
    if not total:
        return None
    return sum(min(n, got[t]) for t, n in expected.items()) / total


def measure_recall(converted: str, expected: str) -> Recall:
    """Recall of the `converted` markdown against the `expected` one (both given as text)."""
    exp_tok, got_tok = tokens(expected), tokens(converted)
    exp_c, got_c = Counter(exp_tok), Counter(got_tok)
    overlap = sum(min(n, got_c[t]) for t, n in exp_c.items())
    exp_h, got_h = headings(expected), headings(converted)
    missing = [
        h for h in exp_h if not any(h == g or difflib.SequenceMatcher(None, h, g).ratio() >= 0.85 for g in got_h)
    ]
    return Recall(
        expected_tokens=len(exp_tok),
        converted_tokens=len(got_tok),
        token_recall=overlap / len(exp_tok) if exp_tok else None,
        token_precision=overlap / len(got_tok) if got_tok else None,
        bigram_recall=_multiset_recall(Counter(pairwise(exp_tok)), Counter(pairwise(got_tok))),
        expected_headings=len(exp_h),
        heading_recall=(len(exp_h) - len(missing)) / len(exp_h) if exp_h else None,
        missing_headings=missing,
    )
