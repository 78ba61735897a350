"""PaperBench's own code, read from a clone of openai/frontier-evals, to check klong's exports with it.

PaperBench cannot be installed here (it needs chz, nanoeval, alcatraz, blobfile, structlog, ...), but the functions
that read run dirs and submission folders are plain Python. `PaperBenchCode.load` executes chosen top-level
definitions of one of its files (a class, a function, a constant, or `Class.method` for one method) as they are
written there, with the file's imports bound to what is installed, to parts of PaperBench loaded before, to the given
`extra` names, or else to an inert stand-in (loggers, recorders: never what a check depends on). `blobfile` is
replaced by `local_blobfile`, which does what it does on local paths.

Where the clone is: `$KLONG_FRONTIER_EVALS` (a clone, or a bare git dir as the `fetch` tool leaves it), else
`../frontier-evals` beside the repository. Tests that need it skip when it is absent.
"""

from __future__ import annotations

import ast
import glob as _glob
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFIX = "project/paperbench/"


class Inert:
    """Stands in for a library PaperBench imports that is not installed (structlog's logger, nanoeval's recorder):
    any attribute or call gives another stand-in; used as a decorator it returns what it decorates."""

    def __getattr__(self, name: str) -> Inert:
        return Inert()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and (isinstance(args[0], type) or callable(args[0])):
            return args[0]
        return Inert()


def local_blobfile() -> types.ModuleType:
    """The part of `blobfile` PaperBench uses, on local paths (blobfile's own behaviour for local paths)."""
    bf = types.ModuleType("blobfile")
    bf.join = os.path.join
    bf.exists = os.path.exists
    bf.isdir = os.path.isdir
    bf.listdir = os.listdir
    bf.dirname = os.path.dirname
    bf.glob = lambda pattern: sorted(_glob.glob(pattern, recursive=True))
    bf.makedirs = lambda path: os.makedirs(path, exist_ok=True)
    bf.BlobFile = open
    bf.read_bytes = lambda path: Path(path).read_bytes()
    bf.write_bytes = lambda path, data: Path(path).write_bytes(data)
    return bf


def _root() -> Path | None:
    candidates = [os.environ.get("KLONG_FRONTIER_EVALS"), str(REPO.parent / "frontier-evals")]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    return None


class PaperBenchCode:
    def __init__(self, root: Path):
        self.root = root
        self.bare = not (root / "project").is_dir()
        self.modules: dict[str, types.ModuleType] = {}

    def source(self, rel: str) -> str:
        """The text of `project/paperbench/<rel>` at the clone's HEAD."""
        if not self.bare:
            return (self.root / PREFIX / rel).read_text()
        return subprocess.run(["git", "--git-dir", str(self.root), "show", f"HEAD:{PREFIX}{rel}"], check=True,
                              capture_output=True, text=True).stdout  # fmt: skip

    def commit(self) -> str:
        git = ["git", "--git-dir", str(self.root)] if self.bare else ["git", "-C", str(self.root)]
        return subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    def _resolve(self, module: str, name: str | None) -> Any:
        if module in self.modules:
            return getattr(self.modules[module], name, Inert()) if name else self.modules[module]
        try:
            mod = importlib.import_module(module)
            return getattr(mod, name) if name else mod
        except (ImportError, AttributeError):
            return Inert()

    def load(self, rel: str, names: list[str], *, module: str | None = None, extra: dict[str, Any] | None = None):
        """Execute the named definitions of `project/paperbench/<rel>` in a fresh module (registered under `module`,
        for later files' imports) and return it. `Class.method` defines that method alone, under its own name."""
        src = self.source(rel)
        tree = ast.parse(src)
        mod = types.ModuleType(f"_paperbench_code.{module or rel}")
        sys.modules[mod.__name__] = mod  # dataclasses and pydantic look a class's module up there
        mod.__dict__.update({"blobfile": local_blobfile(), "logger": Inert(), **(extra or {})})  # module-level logger
        future = any(isinstance(s, ast.ImportFrom) and s.module == "__future__" for s in tree.body)
        wanted = set(names)
        chosen: list[ast.stmt] = []
        for stmt in tree.body:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    bound = a.asname or a.name.split(".")[0]
                    if bound not in mod.__dict__:
                        mod.__dict__[bound] = (local_blobfile() if a.name == "blobfile"
                                               else self._resolve(a.name if a.asname else bound, None))  # fmt: skip
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module != "__future__":
                for a in stmt.names:
                    bound = a.asname or a.name
                    if bound not in mod.__dict__:
                        mod.__dict__[bound] = self._resolve(stmt.module, a.name)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and stmt.name in wanted:
                chosen.append(stmt)
                wanted.discard(stmt.name)
            elif isinstance(stmt, ast.Assign | ast.AnnAssign):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                hit = {t.id for t in targets if isinstance(t, ast.Name)} & wanted
                if hit:
                    chosen.append(stmt)
                    wanted -= hit
            elif isinstance(stmt, ast.ClassDef):
                for item in stmt.body:
                    dotted = f"{stmt.name}.{getattr(item, 'name', '')}"
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and dotted in wanted:
                        item.decorator_list = []
                        chosen.append(item)
                        wanted.discard(dotted)
        if wanted:
            raise AssertionError(f"{PREFIX}{rel} no longer defines {sorted(wanted)}: PaperBench's code changed")
        flags = __import__("__future__").annotations.compiler_flag if future else 0
        code = compile(ast.Module(body=chosen, type_ignores=[]), f"{PREFIX}{rel}", "exec", flags=flags,
                       dont_inherit=True)  # fmt: skip
        exec(code, mod.__dict__)
        if module:
            self.modules[module] = mod
        return mod


@pytest.fixture(scope="session")
def paperbench_code() -> PaperBenchCode:
    root = _root()
    if root is None:
        pytest.skip("PaperBench's code not found: set KLONG_FRONTIER_EVALS to a clone of openai/frontier-evals")
    return PaperBenchCode(root)
