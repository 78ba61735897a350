"""Load a Hugging Face tokenizer from a local folder, optionally with a chat template from a `.jinja` file."""

from __future__ import annotations

from pathlib import Path

from klong.exceptions import InputFileError
from klong.io import read_text


def load_tokenizer(path: str | Path, chat_template: str | Path | None = None):
    """`AutoTokenizer.from_pretrained(path, local_files_only=True)`; never downloads.

    `chat_template` may be a path to a `.jinja` file or the template text itself; it replaces the tokenizer's own.
    """
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise InputFileError(path, "tokenizer folder not found")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"cannot load a tokenizer from this folder: {e}") from None
    if chat_template is not None:
        # Template text always contains Jinja braces; anything else is taken as the path of a template file.
        is_text = isinstance(chat_template, str) and "{" in chat_template
        tokenizer.chat_template = chat_template if is_text else read_text(chat_template)
    if not getattr(tokenizer, "chat_template", None):
        raise InputFileError(path, "the tokenizer has no chat template; pass one (a .jinja file)")
    return tokenizer
