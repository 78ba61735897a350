"""Factory configuration: one YAML file with a section per stage (`collect:`, `draft:` ...), plus dotted overrides.

Each stage module defines its own pydantic config; `stage_config(CollectConfig, "collect", sources)` reads the
`collect` section of the merged sources (`-c factory.yaml -c collect.venues=[ICLR.cc/2024/Conference]`) and validates it.
The resolved section is written next to the stage's output (`collect/config.yaml`) so a run can be inspected later.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from klong.config import merge_sources, write_config
from klong.exceptions import ConfigError
from klong.io import format_validation_error

M = TypeVar("M", bound=BaseModel)


def stage_config(cls: type[M], stage: str, sources: Sequence[str] = ()) -> M:
    """The `stage` section of the merged config sources, validated as `cls` (defaults when the section is absent)."""
    data = merge_sources(sources)
    section = data.get(stage) or {}
    if not isinstance(section, dict):
        raise ConfigError(f"factory config ({', '.join(sources)}): section {stage!r} must be a mapping")
    try:
        return cls.model_validate(section)
    except ValidationError as e:
        raise ConfigError(
            f"invalid factory config for {stage!r} ({', '.join(sources) or 'defaults'}): {format_validation_error(e)}"
        ) from None


def save_stage_config(stage_dir: str | Path, config: BaseModel) -> None:
    write_config(Path(stage_dir) / "config.yaml", config)
