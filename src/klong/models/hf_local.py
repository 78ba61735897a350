"""`hf:PATH`: a local Hugging Face causal LM, in process.

Token in, token out (`klong.models.tokens`): the prompt is klong's rendering of the view, the same ids the splitter
trains on; its length and fingerprint are reported in the reply's `meta["prompt"]`.
Sampling goes through `klong.models.sampler.Sampler`: an explicit configuration (temperature, top-p, nothing else; the
checkpoint's `generation_config.json`, e.g. a repetition penalty, is not applied), and the recorded logprobs are those
of the distribution each token was drawn from (`Message.sampling` says so). Generation stops at the template's
end-of-turn tokens; the text is parsed into content, reasoning and tool calls (`klong.chat.parsing`). Weights are loaded once per path and shared by concurrent episodes;
generation runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from klong.exceptions import ContextLengthError, InputFileError
from klong.models.call_seed import call_seed
from klong.models.config import ModelConfig
from klong.models.sampler import Sampler
from klong.models.tokens import Renderers, reply_message, stop_token_ids
from klong.schema import Message

_LOADED: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_LOAD_LOCK = threading.Lock()


def load_hf(path: str | Path, device: str | None = None, dtype: str = "auto"):
    """(model, tokenizer) for a local folder, cached per (path, device, dtype)."""
    import torch
    from transformers import AutoModelForCausalLM

    from klong.models.tokenizer import hub_id_hint, load_tokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    key = (str(Path(path).resolve()), device, dtype)
    with _LOAD_LOCK:
        if key not in _LOADED:
            if not Path(path).is_dir():
                raise InputFileError(path, f"model folder not found{hub_id_hint(path)}")
            tokenizer = load_tokenizer(path)
            torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype, local_files_only=True)
            model.to(device).eval()
            _LOADED[key] = (model, tokenizer)
        return _LOADED[key]


class HFModel:
    def __init__(self, path: str | Path, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self.path = str(path)
        self.name = f"hf:{path}"
        self.model, self.tokenizer = load_hf(path, self.config.device, self.config.dtype)
        self._lock = threading.Lock()
        self._renderers = Renderers(self.tokenizer)
        self.calls = 0
        self._checked = False
        self.policy_version: int | None = None
        """Set by an RL trainer: the number of updates the weights have had, recorded with every reply."""

    @classmethod
    def from_loaded(cls, model, tokenizer, config: ModelConfig | None = None, name: str = "hf:policy") -> HFModel:
        """Wrap a model already in memory (the policy being trained in process)."""
        self = cls.__new__(cls)
        self.config = config or ModelConfig()
        self.path = name
        self.name = name
        self.model, self.tokenizer = model, tokenizer
        self._lock = threading.Lock()
        self._renderers = Renderers(tokenizer)
        self.calls = 0
        self._checked = False
        self.policy_version = None
        return self

    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        return await asyncio.to_thread(self._generate, list(messages), list(tools) if tools else None)

    def _generate(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> Message:
        import torch

        c = self.config
        renderer = self._renderers.get(messages, tools)
        prompt = renderer.render_prompt(messages).input_ids
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and len(prompt) + c.max_tokens > limit:
            raise ContextLengthError(f"{self.name}: {len(prompt)} prompt + {c.max_tokens} new tokens exceed {limit}")
        stop_ids = stop_token_ids(renderer)
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([prompt], device=device)
        sampler = Sampler(c.temperature, c.top_p)
        with self._lock, torch.no_grad():
            seed = call_seed(c.seed, self.calls)  # per episode and turn: independent of the order of calls
            if seed is not None:
                torch.manual_seed(seed)
            was_training = self.model.training
            self.model.eval()
            try:
                new_ids = sampler.generate(self.model, input_ids, max_new_tokens=c.max_tokens, stop_ids=stop_ids,
                                           check=not self._checked)  # fmt: skip
            finally:
                self.model.train(was_training)
            self._checked = True
            self.calls += 1
        meta = {"policy_version": self.policy_version} if self.policy_version is not None else None
        return reply_message(renderer, prompt, new_ids, sampler.logprobs[: len(new_ids)], stop_ids, sampler.record,
                             c.tool_format, meta)  # fmt: skip
