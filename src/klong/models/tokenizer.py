"""Load a Hugging Face tokenizer from a local folder, optionally with a chat template from a `.jinja` file."""

from __future__ import annotations

import re
from pathlib import Path

from klong.exceptions import InputFileError
from klong.io import read_text


def load_tokenizer(path: str | Path, chat_template: str | Path | None = None):
    """`AutoTokenizer.from_pretrained(path, local_files_only=True)`; never downloads.

    The folder's `tokenizer.json` is the source of truth. transformers >= 5 picks the tokenizer class from the model
    type of a `config.json` beside it and, for some types (`qwen2` among them), rebuilds the pre-tokenizer and
    normalizer of that class instead of the file's: a tokenizer trained with its own pre-tokenization, saved into a
    model folder, would then split text differently from the tokenizer the training data was made with. When the
    loaded pipeline differs from the file's, the file is loaded as it is (`PreTrainedTokenizerFast`).

    `chat_template` may be a path to a `.jinja` file or the template text itself; it replaces the tokenizer's own.
    """
    from transformers import AutoTokenizer

    hint = hub_id_hint(path, tokenizer_only=True)
    path = Path(path)
    if not path.is_dir():
        raise InputFileError(path, "tokenizer folder not found" + hint)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if not _matches_file(tokenizer, path / "tokenizer.json"):
            from transformers import PreTrainedTokenizerFast

            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputFileError(path, f"cannot load a tokenizer from this folder: {e}") from None
    if chat_template is not None:
        # Template text always contains Jinja braces; anything else is taken as the path of a template file.
        is_text = isinstance(chat_template, str) and "{" in chat_template
        tokenizer.chat_template = chat_template if is_text else read_text(chat_template)
    if not getattr(tokenizer, "chat_template", None):
        raise InputFileError(path, "the tokenizer has no chat template; pass one (a .jinja file)")
    return tokenizer


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def hub_id_hint(path: str | Path, *, tokenizer_only: bool = False) -> str:
    """For a missing path shaped like a Hugging Face Hub id (`Qwen/Qwen2.5-7B-Instruct`): the sentence that says klong
    reads local folders and how to get one (appended to the error); else ""."""
    text = str(path)
    if not _HUB_ID.match(text) or Path(text).exists() or Path(text.split("/")[0]).exists():
        return ""  # not shaped like `org/name`, or a local path (its first folder exists) with a typo further on
    local = f"models/{text.split('/')[1]}"
    only = " --include '*.json' '*.txt' '*.model' '*.jinja'" if tokenizer_only else ""
    return (f"; {text!r} looks like a Hugging Face Hub id, but klong reads local folders only (it never downloads): "
            f"download it first, e.g. `hf download {text} --local-dir {local}{only}` (older huggingface_hub: "
            f"`huggingface-cli download`), then pass {local}")  # fmt: skip


_PIPELINE = ("normalizer", "pre_tokenizer", "decoder")


def _matches_file(tokenizer, file: Path) -> bool:
    """Whether the loaded fast tokenizer normalises and pre-tokenises as `tokenizer.json` says (True without a file
    or without a fast backend: nothing to compare)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not file.is_file():
        return True
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True  # unreadable here: let the loader's own error (if any) speak
    loaded = json.loads(backend.to_str())
    return all(loaded.get(k) == saved.get(k) for k in _PIPELINE)
