"""Token counting for the judge's budgets, with the judge's own tokenizer where klong knows it.

PaperBench measures its budgets (paper, reproduce.log, file contents) in tokens of the judge model's tiktoken
encoding, against the model's context window. klong does the same when it can:

- `tiktoken`: when the package is installed and the model's encoding loads (OpenAI model names; others fall back to
  `o200k_base`, as PaperBench does). tiktoken fetches encodings from the network on first use: offline, without a
  cached encoding (`TIKTOKEN_CACHE_DIR`), it cannot load, and the next counter is used;
- `hf`: a local Hugging Face tokenizer folder (`JudgeConfig.tokenizer`, or the `hf:PATH` judge's own folder);
- `estimate`: characters / `JudgeConfig.chars_per_token` (3.5 by default: English prose runs at about 4 characters
  per token in OpenAI's encodings, code nearer 3), rounded up: a documented estimate, never exact.

`JudgeConfig.token_counter` forces one (`auto` picks in the order above). Truncation keeps the first tokens, as
PaperBench's does.
"""

from __future__ import annotations

import math
from typing import Protocol

from klong.exceptions import ConfigError

CONTEXT_WINDOWS = {
    "gpt-4.1": 1_047_576, "gpt-4.1-mini": 1_047_576, "gpt-4.1-nano": 1_047_576,
    "gpt-4o": 128_000, "gpt-4o-mini": 128_000, "gpt-4-turbo": 128_000, "o1-mini": 128_000, "o1-preview": 128_000,
    "o1": 200_000, "o3": 200_000, "o3-mini": 200_000, "o4-mini": 200_000,
    "gpt-5": 400_000, "gpt-5-mini": 400_000, "gpt-5-nano": 400_000,
}  # fmt: skip
"""Context windows (tokens) of OpenAI models, by name (dated snapshots match their family's prefix)."""
DEFAULT_CONTEXT = 128_000
"""Context window assumed for a model klong does not know (set `JudgeConfig.context_tokens` for yours)."""


def context_window(model_name: str) -> int | None:
    """The known context window of an OpenAI model name (`gpt-4o-2024-08-06` -> gpt-4o's), else None."""
    name = model_name.rsplit("/", 1)[-1]
    for known in sorted(CONTEXT_WINDOWS, key=len, reverse=True):
        if name == known or name.startswith(known + "-"):
            return CONTEXT_WINDOWS[known]
    return None


class TokenCounter(Protocol):
    name: str
    """`tiktoken:ENCODING`, `hf:PATH` or `estimate:CHARS_PER_TOKEN` (recorded in grade files)."""

    def count(self, text: str) -> int: ...

    def head(self, text: str, tokens: int) -> str:
        """The first `tokens` tokens of the text (all of it when it is shorter; empty for tokens <= 0)."""
        ...


class EstimateCounter:
    def __init__(self, chars_per_token: float = 3.5):
        if not chars_per_token > 0:
            raise ConfigError(f"judge chars_per_token must be > 0, not {chars_per_token}")
        self.chars_per_token = chars_per_token
        self.name = f"estimate:{chars_per_token:g}"

    def count(self, text: str) -> int:
        return math.ceil(len(text) / self.chars_per_token)

    def head(self, text: str, tokens: int) -> str:
        return text[: max(0, int(tokens * self.chars_per_token))]


class _EncodeDecodeCounter:
    name = ""

    def _encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def _decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def count(self, text: str) -> int:
        return len(self._encode(text))

    def head(self, text: str, tokens: int) -> str:
        if tokens <= 0:
            return ""
        ids = self._encode(text)
        return text if len(ids) <= tokens else self._decode(ids[:tokens])


class TiktokenCounter(_EncodeDecodeCounter):
    def __init__(self, model_name: str):
        import tiktoken

        try:
            encoding = tiktoken.encoding_name_for_model(model_name)
        except KeyError:
            encoding = "o200k_base"
        self.encoding = tiktoken.get_encoding(encoding)  # raises when it cannot be fetched (offline, not cached)
        self.name = f"tiktoken:{encoding}"

    def _encode(self, text: str) -> list[int]:
        return self.encoding.encode(text, disallowed_special=())

    def _decode(self, ids: list[int]) -> str:
        return self.encoding.decode(ids)


class HFCounter(_EncodeDecodeCounter):
    def __init__(self, path: str):
        from transformers import AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as e:
            raise ConfigError(f"judge tokenizer {path}: cannot load a tokenizer from it ({e})") from None
        self.name = f"hf:{path}"

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def make_counter(kind: str, model_name: str, tokenizer: str | None, chars_per_token: float) -> TokenCounter:
    """The judge's token counter (see the module doc). `kind`: auto, tiktoken, hf or estimate."""
    if kind not in ("auto", "tiktoken", "hf", "estimate"):
        raise ConfigError(f"judge token_counter must be auto, tiktoken, hf or estimate, not {kind!r}")
    if kind == "hf" or (kind == "auto" and tokenizer):
        if not tokenizer:
            raise ConfigError("judge token_counter hf needs a tokenizer folder (judge config `tokenizer`)")
        return HFCounter(tokenizer)
    if kind in ("auto", "tiktoken"):
        try:
            return TiktokenCounter(model_name)
        except Exception as e:  # not installed, or the encoding cannot be fetched offline
            if kind == "tiktoken":
                raise ConfigError(f"judge token_counter tiktoken: unavailable here ({type(e).__name__}: {e})") from None
    return EstimateCounter(chars_per_token)
