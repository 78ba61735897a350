"""Reading and writing klong's files: atomic writes, and reads that fail with the file's name and the problem.

A write never leaves a half-written file behind: the bytes go to a temporary file in the same directory, are flushed to
disk, and the temporary file is renamed over the target (an atomic operation on POSIX file systems). A reader therefore
sees either the old file or the new one, even if the writer is killed with SIGKILL in the middle.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from klong.exceptions import InputFileError

M = TypeVar("M", bound=BaseModel)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


_tmp_names = itertools.count()


def _open_temporary(path: Path) -> tuple[int, str]:
    """A new file beside `path`, named by process, thread and a counter (cheaper than `mkstemp`'s random names, which
    matter at two saves per turn for hundreds of episodes); a name left by a killed process is skipped."""
    for _ in range(3):
        tmp = f"{path.parent}/.{path.name}.{os.getpid()}.{threading.get_ident()}.{next(_tmp_names)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, _FILE_MODE)  # mkstemp creates 0600; give the file the usual permissions
    return fd, tmp


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write `data` to `path` atomically (temporary file + rename), creating parent directories."""
    path = Path(path)
    try:
        fd, tmp = _open_temporary(path)
    except FileNotFoundError:  # the folder does not exist yet (checked only then: one syscall less per save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temporary(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = None, fsync: bool = True) -> None:
    """Serialise `obj` as JSON and write it atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n", fsync=fsync)


def write_model(path: str | Path, record: BaseModel, *, indent: int | None = None, fsync: bool = True) -> None:
    """Write a pydantic record as JSON, atomically. Fields left at None are omitted to keep files small."""
    atomic_write_text(path, record.model_dump_json(indent=indent, exclude_none=True) + "\n", fsync=fsync)


def read_text(path: str | Path) -> str:
    """Read a UTF-8 text file; a missing or undecodable file raises `InputFileError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(path, "file not found") from None
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, expected a file") from None
    except OSError as e:
        raise InputFileError(path, f"cannot be read ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(path, f"is not UTF-8 text (bad byte at offset {e.start})") from None


def parse_json(text: str, path: str | Path) -> Any:
    """Parse JSON text read from `path`, turning any error into an `InputFileError` that says where and what."""
    if not text.strip():
        raise InputFileError(path, "file is empty, expected JSON")
    try:
        return json.loads(text)
    except RecursionError:
        raise InputFileError(path, "nested too deeply to read (lists or objects thousands of levels deep)") from None
    except json.JSONDecodeError as e:
        problem = f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}"
        if _ends_inside_value(text):
            problem += " (the file ends inside an open string, list or object: it looks truncated)"
        raise InputFileError(path, problem) from None


def _ends_inside_value(text: str) -> bool:
    """True when the text ends with an unclosed string, list or object, i.e. it is probably a cut-off document."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_string or depth > 0


def read_json(path: str | Path) -> Any:
    """Read and parse a JSON file; errors name the file, the line and column, and say when it looks truncated."""
    return parse_json(read_text(path), path)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield `(line_number, object)` for each non-blank line of a JSON Lines file; a bad line names the file and line."""
    text = read_text(path)
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield i, json.loads(line)
        except json.JSONDecodeError as e:
            last = i == len(lines) or all(not rest.strip() for rest in lines[i:])
            hint = " (the last line looks truncated)" if last and not text.endswith("\n") else ""
            raise InputFileError(path, f"line {i}: invalid JSON at column {e.colno}: {e.msg}{hint}") from None


def append_jsonl(path: str | Path, obj: Any) -> None:
    """Append one JSON object as a line. Each line is written with a single `write` call on an O_APPEND file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_yaml(path: str | Path) -> Any:
    """Read a YAML file; syntax errors name the file, line and column."""
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InputFileError(path, f"invalid YAML{where}: {problem}") from None


def format_validation_error(err: ValidationError, *, limit: int = 5) -> str:
    """A compact, one-line summary of a pydantic error: `field.path: message` for the first few problems."""
    parts = []
    for e in err.errors()[:limit]:
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    more = len(err.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def validate_record(cls: type[M], data: Any, path: str | Path, *, what: str | None = None) -> M:
    """Validate parsed data as record `cls`; a mismatch raises `InputFileError` naming the file and the fields."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        kind = what or cls.__name__
        raise InputFileError(path, f"not a valid {kind}: {format_validation_error(e)}") from None


def read_record(cls: type[M], path: str | Path, *, what: str | None = None) -> M:
    """Read a JSON file and validate it as record `cls`."""
    return validate_record(cls, read_json(path), path, what=what)
