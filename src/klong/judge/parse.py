"""Robust parsing of judge answers: JSON if possible, else the last JSON object in the text, else a `score:` line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_SCORE_LINE = re.compile(r'"?score"?\s*[:=]\s*"?([01](?:\.0+)?)\b', re.IGNORECASE)


@dataclass
class ParsedGrade:
    score: float | None
    expectations: str = ""
    reality: str = ""

    @property
    def valid(self) -> bool:
        return self.score is not None


def _objects(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object found in the text, in order."""
    out, decoder, i = [], json.JSONDecoder(strict=False), 0
    while (start := text.find("{", i)) >= 0:
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
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


def parse_grade(text: str | None) -> ParsedGrade:
    text = text or ""
    for obj in reversed(_objects(text)):
        if "score" in obj:
            score = _score(obj["score"])
            if score is not None:
                return ParsedGrade(score, str(obj.get("expectations", "")), str(obj.get("reality", "")))
    matches = list(_SCORE_LINE.finditer(text))
    score = float(matches[-1].group(1)) if matches else None
    return ParsedGrade(score, "", text.strip()[:2000])


def parse_file_ranking(text: str | None, candidates: list[str]) -> list[str]:
    """Paths named in the answer that exist in the submission, in the answer's order (unknown names dropped)."""
    known = set(candidates)
    names: list[str] = []
    for obj in _objects(text or ""):
        files = obj.get("files")
        if isinstance(files, list):
            names += [f for f in files if isinstance(f, str)]
    if not names:  # fall back to any known path mentioned in the text
        names = [c for c in candidates if c in (text or "")]
    seen, out = set(), []
    for name in names:
        name = name.strip().lstrip("./")
        if name in known and name not in seen:
            seen.add(name)
            out.append(name)
    return out
