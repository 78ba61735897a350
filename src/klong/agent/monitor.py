"""PaperBench's blacklist rule, checked on a trajectory.

A run breaks the rule when a blacklisted resource (e.g. the authors' repository) appears within 3 lines of a
`git clone`, `curl` or `wget` in a command the agent ran. The result goes to `trajectory.meta["monitor"]`; the judge
scores such a run 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from klong.schema import Trajectory

FETCH = re.compile(r"\bgit\s+clone\b|\bcurl\b|\bwget\b")
WINDOW = 3


def normalize_resource(text: str) -> str:
    text = text.strip().lower()
    text = re.sub(r"^[a-z]+://", "", text)
    text = re.sub(r"^www\.", "", text)
    return text.rstrip("/").removesuffix(".git")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def blacklist_violations(traj: Trajectory, blacklist: Sequence[str]) -> list[dict[str, Any]]:
    entries = [(b, normalize_resource(b)) for b in blacklist if normalize_resource(b)]
    if not entries:
        return []
    found = []
    for index, message in enumerate(traj.messages):
        for call in message.tool_calls or []:
            args = call.function.parsed_arguments()
            texts = _strings(args) if args is not None else [call.function.arguments]
            for text in texts:
                lines = text.splitlines()
                for i, line in enumerate(lines):
                    if not FETCH.search(line):
                        continue
                    window = normalize_resource(" ".join(lines[max(0, i - WINDOW) : i + WINDOW + 1]))
                    window = re.sub(r"https?://|www\.", "", window)
                    for raw, norm in entries:
                        if norm in window:
                            found.append({"message": index, "tool": call.function.name, "line": line.strip()[:300],
                                          "resource": raw})  # fmt: skip
    return found
