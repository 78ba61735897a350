"""Secrets never reach a file or the console: every text klong stores or prints from an error goes through `redact`.

Redacted: the values of environment variables whose names look secret (`*KEY*`, `*TOKEN*`, `*SECRET*`, `*PASSWORD*`,
`*CREDENTIAL*`), values registered with `register` (e.g. the API key a model config names), `Bearer ...` tokens, and
strings shaped like common API keys (`sk-...`, `hf_...`, `ghp_...`). A server that echoes the `Authorization` header in
its error message then leaves `[redacted]` in `stop_detail` and `summaries.jsonl`.
"""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_SHAPES = re.compile(r"Bearer\s+[^\s'\"]{8,}|\b(?:sk|hf|ghp|gho|xox[bp])[-_][A-Za-z0-9_\-]{12,}")
_registered: set[str] = set()
MASK = "[redacted]"


def register(value: str | None) -> None:
    """Treat `value` as a secret from now on (ignored when too short to be one)."""
    if value and len(value) >= 8:
        _registered.add(value)


def secret_values() -> list[str]:
    found = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(found | _registered, key=len, reverse=True)


def redact(text: str | None) -> str | None:
    if not text:
        return text
    for value in secret_values():
        if value in text:
            text = text.replace(value, MASK)
    return _SHAPES.sub(lambda m: "Bearer " + MASK if m.group(0).startswith("Bearer") else MASK, text)
