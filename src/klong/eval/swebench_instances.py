"""SWE-bench instances: rows of SWE-bench's datasets (SWE-bench, Lite, Verified) read from a file or a folder.

A row has `instance_id`, `repo` (`owner/name`), `base_commit` (a full commit id), `problem_statement`, and usually
`hints_text`, `FAIL_TO_PASS` and `PASS_TO_PASS` (JSON-string lists, as the datasets store them, or lists), `patch`,
`test_patch`, `version`, `environment_setup_commit`, `created_at`; other fields are kept as they are. klong reads one
more, optional: `test_cmd`, the test command of `--local-eval`. Sources: `.jsonl`, `.json` (a list), `.parquet`
(pandas), or a `datasets` folder (`save_to_disk`; of a DatasetDict, the split `split`). A bad row is one error naming
the file, the row and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from klong.eval.swebench_repo import SHA
from klong.exceptions import ConfigError, InputFileError
from klong.io import iter_jsonl, read_json

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
REPO = re.compile(r"^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$")


class Instance(BaseModel):
    """A SWE-bench row (other fields are kept as they are)."""

    model_config = ConfigDict(extra="allow")

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    hints_text: str = ""
    FAIL_TO_PASS: list[str] = Field(default_factory=list)
    PASS_TO_PASS: list[str] = Field(default_factory=list)
    test_patch: str = ""
    test_cmd: str | None = None
    """Not a SWE-bench field: the test command of `--local-eval` for this instance (else `--test-cmd`)."""

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _json_list(cls, v: Any) -> Any:
        try:
            return json.loads(v) if isinstance(v, str) else v
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON list of test ids ({e.msg} at column {e.colno})") from None

    @field_validator("hints_text", "test_patch", mode="before")
    @classmethod
    def _none_empty(cls, v: Any) -> Any:
        return "" if v is None else v

    @field_validator("instance_id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not ID.match(v):
            raise ValueError("letters, digits, `.`, `_` and `-` only")
        return v

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not REPO.match(v):
            raise ValueError("expected `owner/name`")
        return v

    @field_validator("base_commit")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not SHA.match(v):
            raise ValueError("expected a full 40-character commit id")
        return v


def _rows(path: Path, split: str) -> list[tuple[str, Any]]:
    """(where, row) of every row of an instances file or dataset folder."""
    if path.is_dir():
        import datasets

        try:
            data = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError) as e:
            raise InputFileError(path, f"not a `datasets` folder (save_to_disk): {e}") from None
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise InputFileError(path, f"no split {split!r} (splits: {', '.join(data)}); choose one with --split")
            data = data[split]
        return [(f"row {i}", row) for i, row in enumerate(data.to_list(), start=1)]
    if path.suffix == ".jsonl":
        return [(f"line {n}", row) for n, row in iter_jsonl(path)]
    if path.suffix == ".json":
        rows = read_json(path)
        if not isinstance(rows, list):
            raise InputFileError(path, "expected a JSON list of instances")
        return [(f"row {i}", row) for i, row in enumerate(rows, start=1)]
    if path.suffix == ".parquet":
        import pandas

        if not path.is_file():
            raise InputFileError(path, "file not found")
        try:
            rows = json.loads(pandas.read_parquet(path).to_json(orient="records"))
        except (OSError, ValueError) as e:
            raise InputFileError(path, f"cannot be read as Parquet: {e}") from None
        return [(f"row {i}", row) for i, row in enumerate(rows, start=1)]
    if not path.exists():
        raise InputFileError(path, "not found")
    raise InputFileError(path, "expected a .jsonl, .json or .parquet file, or a `datasets` folder")


def load_instances(path: str | Path, *, split: str = "test", ids: list[str] | None = None) -> list[Instance]:
    """The instances of a file or dataset folder (those named by `ids`, in the file's order). A bad row is an
    `InputFileError` naming the file, the row and the field."""
    path = Path(path)
    instances = []
    for where, row in _rows(path, split):
        name = f" ({row.get('instance_id')})" if isinstance(row, dict) and row.get("instance_id") else ""
        if not isinstance(row, dict):
            raise InputFileError(path, f"{where}: expected an object, found {type(row).__name__}")
        try:
            instances.append(Instance.model_validate(row))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(map(str, err["loc"]))
            what = f"missing field `{field}`" if err["type"] == "missing" else f"field `{field}`: {err['msg']}"
            raise InputFileError(path, f"{where}{name}: {what}") from None
    seen = [i.instance_id for i in instances]
    if dupes := sorted({i for i in seen if seen.count(i) > 1}):
        raise InputFileError(path, f"instance ids appear more than once: {', '.join(dupes)}")
    if ids:
        if unknown := [i for i in ids if i not in seen]:
            raise ConfigError(f"--ids: not in {path}: {', '.join(unknown)}")
        instances = [i for i in instances if i.instance_id in set(ids)]
    return instances
