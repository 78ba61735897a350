"""`hf:PATH`: a local Hugging Face causal LM, in process.

The prompt is `ChatRenderer.render_prompt` of the view: the same token sequence the splitter later trains on (earlier
turns keep the ids they were sampled as); its length and fingerprint are reported in the reply's `meta["prompt"]`.
Sampling goes through `klong.models.sampler.Sampler`: an explicit configuration (temperature, top-p, nothing else; the
checkpoint's `generation_config.json`, e.g. a repetition penalty, is not applied), and the recorded logprobs are those
of the distribution each token was drawn from (`Message.sampling` says so). Generation stops at the template's
end-of-turn tokens; the text is parsed into content, reasoning and tool calls (`klong.chat.parsing`). Weights are loaded once per path and shared by concurrent episodes;
generation runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from klong.chat.parsing import parse_reply
from klong.chat.render import ChatRenderer, prompt_digest
from klong.exceptions import ContextLengthError, InputFileError
from klong.models.config import ModelConfig
from klong.models.sampler import Sampler
from klong.schema import Message, ToolCall, ToolFunction, Usage

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
        self._renderers: dict[Any, ChatRenderer] = {}
        self.calls = 0
        self._checked = False

    @classmethod
    def from_loaded(cls, model, tokenizer, config: ModelConfig | None = None, name: str = "hf:policy") -> HFModel:
        """Wrap a model already in memory (the policy being trained in process)."""
        self = cls.__new__(cls)
        self.config = config or ModelConfig()
        self.path = name
        self.name = name
        self.model, self.tokenizer = model, tokenizer
        self._lock = threading.Lock()
        self._renderers = {}
        self.calls = 0
        self._checked = False
        return self

    def renderer(self, tools: Sequence[dict[str, Any]] | None, system: Message | None) -> ChatRenderer:
        key = (repr(tools), system.content if system is not None else None)
        if key not in self._renderers:
            self._renderers[key] = ChatRenderer(self.tokenizer, tools, system)
        return self._renderers[key]

    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        return await asyncio.to_thread(self._generate, list(messages), list(tools) if tools else None)

    def _generate(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> Message:
        import torch

        c = self.config
        system = messages[0] if messages and messages[0].role == "system" else None
        renderer = self.renderer(tools, system)
        prompt = renderer.render_prompt(messages).input_ids
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and len(prompt) + c.max_tokens > limit:
            raise ContextLengthError(f"{self.name}: {len(prompt)} prompt + {c.max_tokens} new tokens exceed {limit}")
        stop_ids = sorted(
            {i for s in renderer.end_of_turn for i in self.tokenizer.encode(s, add_special_tokens=False)[:1]}
        )
        device = next(self.model.parameters()).device
        input_ids = torch.tensor([prompt], device=device)
        sampler = Sampler(c.temperature, c.top_p)
        with self._lock, torch.no_grad():
            if c.seed is not None:
                torch.manual_seed(c.seed + self.calls)
            was_training = self.model.training
            self.model.eval()
            try:
                new_ids = sampler.generate(self.model, input_ids, max_new_tokens=c.max_tokens, stop_ids=stop_ids,
                                           check=not self._checked)  # fmt: skip
            finally:
                self.model.train(was_training)
            self._checked = True
            self.calls += 1
        logprobs = sampler.logprobs[: len(new_ids)]
        finished = bool(new_ids) and new_ids[-1] in stop_ids
        text = self.tokenizer.decode(new_ids[:-1] if finished else new_ids, skip_special_tokens=False)
        parsed = parse_reply(text, c.tool_format)
        calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", function=ToolFunction(name=p.name, arguments=p.arguments))
                 for p in parsed.calls]  # fmt: skip
        meta: dict[str, Any] = {"prompt": {"tokens": len(prompt), "sha": prompt_digest(prompt)}}
        if parsed.errors:
            meta["parse_errors"] = parsed.errors
        return Message(role="assistant", content=parsed.content, reasoning_content=parsed.reasoning,
                       tool_calls=calls or None, token_ids=new_ids, logprobs=logprobs, sampling=sampler.record,
                       usage=Usage(prompt_tokens=len(prompt), completion_tokens=len(new_ids)),
                       finish_reason=("tool_calls" if calls else "stop") if finished else "length", meta=meta)  # fmt: skip
