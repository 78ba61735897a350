"""Per-leaf judge cache: a re-grade of an unchanged submission makes no model calls.

The key covers everything a leaf grade depends on: judge name, prompt version, judge budgets, the leaf's path (ids are
not unique), category and requirements, the ancestors' requirements, and content hashes of the paper, addendum and
the whole submission. One small JSON file per entry, written atomically (safe across concurrent graders).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from klong.io import atomic_write_json, read_json
from klong.judge.base import LeafContext, LeafGrade
from klong.judge.prompts import PROMPT_VERSION


def default_cache_dir() -> Path:
    base = os.environ.get("KLONG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "klong")
    return Path(base) / "judge"


class JudgeCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(judge_name: str, settings: str, ctx: LeafContext) -> str:
        parts = [PROMPT_VERSION, judge_name, settings, ctx.path, ctx.node.task_category or "", ctx.node.requirements,
                 *ctx.ancestors, hashlib.sha256(ctx.task.paper.encode()).hexdigest(),
                 hashlib.sha256(ctx.task.addendum.encode()).hexdigest(), ctx.submission.digest]  # fmt: skip
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> LeafGrade | None:
        path = self._path(key)
        if not path.exists():
            self.misses += 1
            return None
        data = read_json(path)
        self.hits += 1
        return LeafGrade(data["score"], data["valid"], data["explanation"], data["usage"], data.get("metadata", {}))

    def put(self, key: str, grade: LeafGrade) -> None:
        atomic_write_json(self._path(key), {"score": grade.score, "valid": grade.valid, "explanation": grade.explanation,
                                            "usage": grade.usage, "metadata": grade.metadata}, fsync=False)  # fmt: skip
