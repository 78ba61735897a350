"""The text-recall measure used to report the PDF converter's quality."""

from __future__ import annotations

import pytest

from klong.factory.recall import headings, measure_recall, strip_markdown, tokens

EXPECTED = """# The Title

## 5.1 Hyper Parameter Optimization

We have chosen the **PubTabNet** data set, see [the code](https://example.org/x).

<!-- image -->

| # layers | TEDs |
| - | - |
| 6 | 0.965 |
"""


def test_normalisation_strips_markdown_syntax() -> None:
    text = strip_markdown(EXPECTED)
    assert "#" not in text.replace("# layers", "") and "**" not in text and "<!--" not in text and "| -" not in text
    assert tokens("Ef\ufb01cient **Models**: `x_y` | 0.965") == ["efficient", "models", "x", "y", "0", "965"]
    assert headings(EXPECTED) == ["the title", "hyper parameter optimization"]


def test_identical_text_has_full_recall() -> None:
    r = measure_recall(EXPECTED, EXPECTED)
    assert (r.token_recall, r.token_precision, r.bigram_recall, r.heading_recall) == (1.0, 1.0, 1.0, 1.0)
    assert r.missing_headings == []


def test_order_matters_for_bigrams_only() -> None:
    expected = "alpha beta gamma delta epsilon zeta"
    shuffled = "delta epsilon zeta alpha beta gamma"
    r = measure_recall(shuffled, expected)
    assert r.token_recall == 1.0 and r.token_precision == 1.0
    assert r.bigram_recall == pytest.approx(4 / 5)


def test_missing_text_and_headings() -> None:
    converted = "The Title\n\n### Hyper Parameter Optimisation\n\nWe have chosen the PubTabNet data set."
    r = measure_recall(converted, EXPECTED)
    assert r.token_recall == pytest.approx(11 / 26) and r.token_precision == pytest.approx(11 / 12)
    # the title is present as text but not as a heading; the numbering and one changed letter are forgiven
    assert r.heading_recall == 0.5 and r.missing_headings == ["the title"]
    # counts are a multiset: repeating a word does not buy recall for the missing ones
    assert measure_recall("the the the the", "the cat").token_recall == 0.5


def test_empty_sides() -> None:
    r = measure_recall("", "")
    assert r.token_recall is None and r.heading_recall is None and r.token_precision is None
    assert measure_recall("", "some words").token_recall == 0.0
