"""Configuration: pydantic models filled from YAML files and dotted overrides.

`load_config(Model, ["base.yaml", "train.lr=1e-5", "stages.0.timeout=4h"])` merges the sources left to right: a
source that names an existing `.yaml`/`.yml` file is read and deep-merged; `a.b=value` sets one field (the value is
parsed as YAML, so numbers, booleans and lists work; list items by index). The result is validated, and errors name
the field and the source.

Durations: a field typed `Duration` accepts seconds (`5400`) or text (`90s`, `30m`, `2h`, `1h30m`, `12h`) wherever it
appears, and holds seconds.

Run dirs: `write_config` writes the resolved config a run started with; `set_aside` moves an earlier run's files under
`replaced/<k>/` (the `--redo` of every command that can find earlier work in its output).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from klong.exceptions import ConfigError
from klong.io import atomic_write_text, format_validation_error, read_yaml

M = TypeVar("M", bound=BaseModel)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h|hr|d)?\s*$", re.IGNORECASE)
_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}


def parse_duration(value: str | float | int) -> float:
    """Seconds from `90`, `90s`, `30m`, `2h`, `1.5h`, `500ms`, or a compound `1h30m`."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"cannot read {value!r} as a duration (examples: 90, 45s, 30m, 2h, 1h30m)")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"a duration cannot be negative ({value})")
        return float(value)
    text = str(value).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|hr|h|d)?", text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text.replace(" ", ""):
        raise ConfigError(f"cannot read {value!r} as a duration (examples: 90, 45s, 30m, 2h, 1h30m)")
    return sum(float(n) * _UNITS[u or None] for n, u in parts)


def _duration_field(value: Any) -> float:
    try:
        return parse_duration(value)
    except ConfigError as e:
        raise ValueError(str(e)) from None  # pydantic reports it with the field's name


Duration = Annotated[float, BeforeValidator(_duration_field)]
"""A config field holding seconds, given as a number or as text (`90s`, `30m`, `2h`, `1h30m`)."""


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(f"override {source!r}: {'.'.join(keys[:i])} has no item {key}")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
            continue
        if last:
            node[key] = value
        else:
            node = node.setdefault(key, {})
            if not isinstance(node, dict | list):
                raise ConfigError(f"override {source!r}: {'.'.join(keys[: i + 1])} is not a mapping")


def merge_sources(sources: Sequence[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(base or {})
    for source in sources:
        if "=" in source and not Path(source).exists():
            key, _, raw = source.partition("=")
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError:
                value = raw
            _set_dotted(data, key.strip(), value, source)
            continue
        path = Path(source)
        loaded = read_yaml(path)
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file must be a YAML mapping")
        data = deep_merge(data, loaded)
    return data


def load_config(cls: type[M], sources: Sequence[str] = (), base: dict[str, Any] | None = None) -> M:
    data = merge_sources(sources, base)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(
            f"invalid configuration ({', '.join(sources) or 'defaults'}): {format_validation_error(e)}"
        ) from None


def write_config(path: str | Path, config: BaseModel) -> None:
    """Write the resolved configuration as YAML (the run dir's `config.yaml`)."""
    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


def set_aside(out: str | Path, names: Iterable[str] | None = None) -> Path | None:
    """Move an earlier run's files out of the way (kept, never deleted): the entries `names` of `out` (default: all of
    them) go to `out/replaced/<k>/`, k the first free number. Returns that folder, or None when there was nothing to
    move. This is what `--redo` does in every command that can find earlier work in its output."""
    out = Path(out)
    if not out.is_dir():
        return None
    wanted = [out / n for n in names] if names is not None else [p for p in out.iterdir() if p.name != "replaced"]
    present = sorted(p for p in wanted if p.exists() or p.is_symlink())
    if not present:
        return None
    k = 0
    while (out / "replaced" / str(k)).exists():
        k += 1
    dest = out / "replaced" / str(k)
    dest.mkdir(parents=True)
    for p in present:
        os.replace(p, dest / p.name)
    return dest
