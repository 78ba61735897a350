"""Per-leaf judge cache: a re-grade of an unchanged submission by the same judge makes no model calls.

The key covers everything a leaf grade depends on: the judge's identity (`LeafJudge.identity()`: judge type, model,
endpoint `base_url`, sampling settings such as temperature and max_tokens, the judge config and token budgets, the
prompt version), the rubric variant (code-only), the leaf's path (ids are not unique), category and requirements, the
rubric nodes shown before it, content hashes of the paper, the addendum and the judge addendum, and the submission's
digest (every file's path and bytes, and which files the reproduction touched). One small JSON file per entry, written
atomically (safe across concurrent graders). Only valid grades are stored.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from klong.io import atomic_write_json, read_json
from klong.judge.base import LeafContext, LeafGrade, judge_addendum
from klong.judge.prompts import PROMPT_VERSION

KEY_VERSION = 2


def default_cache_dir() -> Path:
    base = os.environ.get("KLONG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "klong")
    return Path(base) / "judge"


@functools.lru_cache(maxsize=64)  # the paper's hash at every leaf: computed once per text
def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class JudgeCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(identity: dict[str, Any], ctx: LeafContext) -> str:
        parts = {
            "v": KEY_VERSION, "prompt_version": PROMPT_VERSION, "judge": identity, "code_only": ctx.code_only,
            "task": ctx.task.id, "path": ctx.path, "category": ctx.node.task_category, "requirements": ctx.node.requirements,
            "check": ctx.node.check.model_dump() if ctx.node.check is not None else None, "ancestors": ctx.ancestors,
            "paper": _sha(ctx.task.paper), "addendum": _sha(ctx.task.addendum), "judge_addendum": _sha(judge_addendum(ctx.task)),
            "submission": ctx.submission.digest,
        }  # fmt: skip
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> LeafGrade | None:
        path = self._path(key)
        try:
            data = read_json(path) if path.exists() else None
            grade = None if data is None else LeafGrade(float(data["score"]), bool(data["valid"]), str(data["explanation"]),
                                                        dict(data["usage"]), int(data.get("calls", 0)),
                                                        dict(data.get("metadata") or {}))  # fmt: skip
        except Exception:  # a foreign or damaged entry is a miss, and is overwritten
            grade = None
        if grade is None:
            self.misses += 1
            return None
        self.hits += 1
        return grade

    def put(self, key: str, grade: LeafGrade) -> None:
        atomic_write_json(self._path(key), {"score": grade.score, "valid": grade.valid, "explanation": grade.explanation,
                                            "usage": grade.usage, "calls": grade.calls, "metadata": grade.metadata},
                          fsync=False)  # fmt: skip
