"""The leak gate: nothing from the official code may reach `rubric.json` or `addendum.md` except plain facts.

Looked for, case-insensitively, in the rubric's requirements and in the addendum:
- the repository: its URL in any form (`https://github.com/o/r`, `github.com/o/r.git`, `git@github.com:o/r`, raw and
  codeload URLs) and its `owner/name` path;
- file names of the code (`train_gatenorm.py`, or its stem when distinctive) that the paper itself never mentions;
- distinctive identifiers defined in the code (function, class and constant names with an underscore, camel case or a
  digit, at least 6 characters) that the paper never mentions.

"Mentions" ignores case, spaces and punctuation: `ResNet-20` makes `resnet20` public, "gated residual block" makes
`GatedResidualBlock` public.

Generic names (`train.py`, `utils`, `config`, `main`, `model`) are never flagged; a name the paper states is public.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from klong.factory.draft.code_summary import code_files

GENERIC_STEMS = {"readme", "license", "setup", "main", "train", "test", "tests", "eval", "evaluate", "utils", "util",
                 "config", "configs", "model", "models", "data", "dataset", "datasets", "run", "requirements", "init",
                 "__init__", "common", "helpers", "run_all", "reproduce", "makefile", "dockerfile", "environment",
                 "index", "app", "args", "options", "default", "defaults", "base", "loss", "losses", "metrics",
                 "layers", "network", "networks", "plot", "plots", "logger", "logging", "scripts", "train_eval"}  # fmt: skip
_DEF = re.compile(r"^\s*(?:async\s+def|def|class)\s+([A-Za-z_]\w*)|^([A-Z][A-Z0-9_]{5,})\s*=", re.MULTILINE)
_GITHUB = re.compile(
    r"(?:raw\.githubusercontent\.com|github\.com|gitlab\.com|bitbucket\.org)[/:]([\w.-]+)/([\w.-]+)", re.IGNORECASE
)


class Leak(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    """`rubric.json` or `addendum.md`."""
    kind: str
    """`repository`, `file name` or `identifier`."""
    token: str
    where: str
    """The rubric node (outline number and id) or the addendum line holding it."""

    def __str__(self) -> str:
        return f"leak: {self.kind} {self.token!r} of the official code appears in {self.file} ({self.where})"


def repo_paths(urls: Iterable[str]) -> list[str]:
    """`owner/name` of each repository URL (lowercase, without `.git`)."""
    out = []
    for url in urls:
        m = _GITHUB.search(url)
        if m:
            out.append(f"{m.group(1)}/{m.group(2).removesuffix('.git')}".lower())
    return sorted(set(out))


def _distinctive(name: str) -> bool:
    if len(name) < 6 or name.lower() in GENERIC_STEMS or name.startswith("__"):
        return False
    return "_" in name.strip("_") or bool(re.search(r"[a-z][A-Z]", name)) or any(ch.isdigit() for ch in name)


def _squeeze(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def code_tokens(code_dir: str | Path | None, paper: str, max_bytes: int = 400_000) -> dict[str, set[str]]:
    """Distinctive file names and identifiers of the code that the paper never mentions."""
    files: set[str] = set()
    idents: set[str] = set()
    if code_dir is None or not Path(code_dir).is_dir():
        return {"file name": files, "identifier": idents}
    squeezed = _squeeze(paper)

    def public(name: str) -> bool:  # the paper states it (ResNet-20 ~ resnet20, "gated residual block")
        return _squeeze(name) in squeezed

    for rel in code_files(code_dir):
        stem = rel.stem
        if stem.lower() not in GENERIC_STEMS and not public(stem):
            files.add(rel.name)
            if _distinctive(stem):
                files.add(stem)
        if rel.suffix in (".py", ".jl", ".js", ".ts", ".rs", ".go", ".java", ".cpp", ".cc", ".c", ".h"):
            try:
                text = (Path(code_dir) / rel).read_text(encoding="utf-8", errors="replace")[:max_bytes]
            except OSError:
                continue
            for m in _DEF.finditer(text):
                name = m.group(1) or m.group(2)
                if _distinctive(name) and not public(name):
                    idents.add(name)
    return {"file name": files, "identifier": idents}


def _texts(rubric: dict[str, Any] | None, addendum: str) -> list[tuple[str, str, str]]:
    out = []

    def go(node: dict[str, Any], number: str) -> None:
        out.append(
            ("rubric.json", f"node {number or 'root'} ({str(node.get('id', ''))[:8]})", node.get("requirements", ""))
        )
        for i, c in enumerate(node.get("sub_tasks") or [], 1):
            go(c, f"{number}.{i}" if number else str(i))

    if rubric:
        go(rubric, "")
    for i, line in enumerate(addendum.splitlines(), 1):
        out.append(("addendum.md", f"line {i}", line))
    return out


def find_leaks(rubric: dict[str, Any] | None, addendum: str, *, repo_urls: Iterable[str] = (),
               code_dir: str | Path | None = None, paper: str = "") -> list[Leak]:  # fmt: skip
    """Every leak of the official code into the rubric or the addendum (empty when clean)."""
    repos = repo_paths(repo_urls)
    tokens = code_tokens(code_dir, paper)
    patterns: list[tuple[str, str, re.Pattern[str]]] = []
    for path in repos:
        patterns.append(("repository", path, re.compile(re.escape(path) + r"(?![\w-])", re.IGNORECASE)))
    for kind in ("file name", "identifier"):
        for tok in sorted(tokens[kind]):
            patterns.append((kind, tok, re.compile(rf"(?<![\w-]){re.escape(tok)}(?![\w-])", re.IGNORECASE)))
    leaks = []
    for file, where, text in _texts(rubric, addendum):
        for m in _GITHUB.finditer(text):  # any URL form of the repository
            path = f"{m.group(1)}/{m.group(2).removesuffix('.git')}".lower()
            if path in repos:
                leaks.append(Leak(file=file, kind="repository", token=m.group(0), where=where))
        seen = {lk.token.lower() for lk in leaks if lk.where == where and lk.file == file}
        for kind, tok, pat in patterns:
            if pat.search(text) and not any(tok.lower() in s for s in seen):
                leaks.append(Leak(file=file, kind=kind, token=tok, where=where))
    return leaks
