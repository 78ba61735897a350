"""Helpers shared by the importers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from klong.exceptions import ImportFormatError
from klong.io import format_validation_error
from klong.schema import Message


def require_mapping(obj: Any, where: str, path: Path) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ImportFormatError(path, f"{where}: expected a JSON object, found {type(obj).__name__}")
    return obj


def require_list(obj: Any, where: str, path: Path) -> list[Any]:
    if not isinstance(obj, list):
        raise ImportFormatError(path, f"{where}: expected a JSON list, found {type(obj).__name__}")
    return obj


def make_message(fields: dict[str, Any], where: str, path: Path) -> Message:
    """Build a `Message`, turning a validation failure into an error naming the file and the message's position."""
    try:
        return Message.model_validate(fields)
    except ValidationError as e:
        raise ImportFormatError(path, f"{where}: {format_validation_error(e)}") from None


def text_of(content: Any) -> str:
    """The text of a source message's content (a string, None, or a list of OpenAI content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return Message(role="user", content=content).content or ""
