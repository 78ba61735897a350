"""Robust parsing of judge answers and file rankings.

A grade answer is read, in order, as: the last JSON object with a `score` (keys in any case); PaperBench's three
parts (`# Expectations`, `# Reality`, `# Score`) with the score on its own line or as `Score: N`; any `score: N`
line. The explanation is never empty when the answer is not: the JSON's text fields (`expectations`, `reality`,
`explanation`, ...), else the answer's Reality and Score parts, else the whole answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from klong.judge.submission import relative_path

_SCORE_LINE = re.compile(r'"?\bscore"?\s*[:=]\s*\**\s*"?([01](?:\.0+)?)(?![\d.])', re.IGNORECASE)
_SCORE_WORDS = re.compile(r"\bscore\s*(?:of|is)\s*\**([01](?:\.0+)?)(?![\d.])", re.IGNORECASE)
_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*|\*\*)?\s*(expectations|reality|score)\b\s*(?:\*\*)?\s*:?", re.IGNORECASE | re.M
)
_BARE = re.compile(r"^\W*([01](?:\.0+)?)\W*$", re.MULTILINE)
_TEXT_KEYS = ("expectations", "reality", "explanation", "reasoning", "reason", "justification", "rationale")
_LIST_MARK = re.compile(r"^\s*(?:[-*+•]\s+|\d+[.)]\s+|[│├└─ ]+)")


@dataclass
class ParsedGrade:
    score: float | None
    explanation: str = ""
    how: str = ""
    """Which rule read the score: `json`, `sections`, `line`, or '' when none did."""

    @property
    def valid(self) -> bool:
        return self.score is not None


def _objects(text: str) -> list[tuple[int, int, dict[str, Any]]]:
    """Every top-level JSON object in the text, with its span, in order."""
    out, decoder, i = [], json.JSONDecoder(strict=False), 0
    while (start := text.find("{", i)) >= 0:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict):
            out.append((start, end, obj))
        i = end
    return out


def _score(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and value in (0, 1):
        return float(value)
    if isinstance(value, str) and value.strip() in ("0", "1", "0.0", "1.0"):
        return float(value.strip())
    return None


def _from_json(text: str) -> ParsedGrade | None:
    for start, end, obj in reversed(_objects(text)):
        lower = {str(k).lower(): v for k, v in obj.items()}
        if "score" not in lower or (score := _score(lower["score"])) is None:
            continue
        if lower.get("valid_score") is False:
            return ParsedGrade(None, str(lower.get("explanation") or ""), "json")
        parts = [f"{k.capitalize()}: {v if isinstance(v, str) else json.dumps(v)}".strip()
                 for k in _TEXT_KEYS if (v := lower.get(k)) not in (None, "", [], {})]  # fmt: skip
        if not parts:  # reasoning written around the object
            parts = [p for p in (text[:start].strip(), text[end:].strip()) if p]
        return ParsedGrade(score, "\n".join(parts), "json")
    return None


def _from_sections(text: str) -> ParsedGrade | None:
    headings = list(_HEADING.finditer(text))
    score_heads = [h for h in headings if h.group(1).lower() == "score"]
    if not score_heads:
        return None
    section = text[score_heads[-1].end() :]
    values = _SCORE_LINE.findall(score_heads[-1].group(0) + section) or _BARE.findall(section)
    values = values or _SCORE_WORDS.findall(section)
    if not values:
        return None
    reality = next((h for h in headings if h.group(1).lower() == "reality"), None)
    explanation = text[reality.start() :] if reality is not None else text
    return ParsedGrade(float(values[-1]), explanation.strip(), "sections")


def parse_grade(text: str | None) -> ParsedGrade:
    text = (text or "").strip()
    parsed = _from_json(text) or _from_sections(text)
    if parsed is not None:
        if not parsed.explanation:
            parsed.explanation = text
        return parsed
    matches = _SCORE_LINE.findall(text) or _SCORE_WORDS.findall(text)
    return ParsedGrade(float(matches[-1]) if matches else None, text, "line" if matches else "")


def parse_file_ranking(text: str | None, candidates: list[str]) -> list[str]:
    """Paths named in the answer that are candidates, in the answer's order (unknown names dropped). The answer may
    be PaperBench's one path per line (bullets, numbers and tree drawing tolerated), or JSON (`{"files": [...]}` or
    a list); when it names no candidate, any candidate mentioned in the text counts, in listing order."""
    text = text or ""
    known = set(candidates)
    names: list[str] = []
    for _, _, obj in _objects(text):
        files = obj.get("files")
        if isinstance(files, list):
            names += [f for f in files if isinstance(f, str)]
    if not names and text.lstrip().startswith("["):
        try:
            listed = json.loads(text)
        except ValueError:
            listed = []
        names = [f for f in listed if isinstance(f, str)] if isinstance(listed, list) else []
    if not names:
        names = [_LIST_MARK.sub("", line, count=1) for line in text.splitlines()]
    seen, out = set(), []
    for name in names:
        name = relative_path(name)
        if name in known and name not in seen:
            seen.add(name)
            out.append(name)
    if not out:
        out = [c for c in candidates if c in text]
    return out
