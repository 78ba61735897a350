"""Sampling from a transformers causal LM with every logits processor accounted for in the recorded logprobs.

`model.generate` fills any setting its caller leaves unset from the checkpoint's `generation_config.json` (Qwen2.5-
Instruct ships `repetition_penalty: 1.05`, `top_k: 20`, ...), so sampling would silently differ from the distribution a
trainer recomputes. Here the processors are klong's own and nothing else: the checkpoint's generation config is replaced
by a neutral one for the call, generate's own warpers are switched off (temperature 1, top-k 0, top-p 1), and klong
passes temperature and top-p as processors, followed by a recorder that keeps the log-probability of each sampled token
under the final, processed distribution, i.e. exactly the distribution it was drawn from. On its first use a sampler
can check that generate added no processor of its own (`check=True`: the scores reaching klong's first processor equal
the model's raw logits).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from klong.exceptions import ModelError
from klong.schema import Sampling


class _Capture(LogitsProcessor):
    """First of klong's processors: keeps the scores of the first step as generate hands them over."""

    def __init__(self) -> None:
        self.first: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.first is None:
            self.first = scores[0].detach().float().clone()
        return scores


class _Recorder(LogitsProcessor):
    """Last processor: the log-softmax of each step's final scores, looked up at the token sampled from them (known
    at the next step, or at the end)."""

    def __init__(self) -> None:
        self.logprobs: list[float] = []
        self._last: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._last is not None:
            self.logprobs.append(float(self._last[input_ids[0, -1]]))
        self._last = torch.log_softmax(scores[0].float(), dim=-1)
        return scores

    def finish(self, token: int) -> None:
        if self._last is not None:
            self.logprobs.append(float(self._last[token]))
            self._last = None


class Sampler:
    """One generation (batch of one) at `temperature` (0: greedy) and `top_p`; afterwards `logprobs` holds one entry
    per generated token and `record` says what they mean."""

    def __init__(self, temperature: float, top_p: float = 1.0):
        self.temperature = temperature
        self.top_p = top_p
        self.logprobs: list[float] = []

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    @property
    def record(self) -> Sampling:
        if not self.do_sample:  # greedy: the logprobs are the model's own distribution
            return Sampling(temperature=0.0, top_p=1.0, logprobs="raw")
        return Sampling(temperature=self.temperature, top_p=self.top_p, logprobs="processed")

    def processors(self) -> list[LogitsProcessor]:
        out: list[LogitsProcessor] = []
        if self.do_sample and self.temperature != 1.0:
            out.append(TemperatureLogitsWarper(self.temperature))
        if self.do_sample and self.top_p < 1.0:
            out.append(TopPLogitsWarper(self.top_p))
        return out

    def generate(self, model, input_ids: torch.Tensor, *, max_new_tokens: int, stop_ids: list[int],
                 check: bool = False) -> list[int]:  # fmt: skip
        """The new token ids, cut after the first stop id."""
        capture, recorder = _Capture(), _Recorder()
        eos = stop_ids or None
        # generate's own warpers off (klong passes its processors); top_k only matters, and is only valid, when sampling
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=self.do_sample, temperature=1.0, top_p=1.0,
                                  repetition_penalty=1.0, eos_token_id=eos, use_cache=True,
                                  pad_token_id=stop_ids[0] if stop_ids else 0,
                                  **({"top_k": 0} if self.do_sample else {}))  # fmt: skip
        saved = model.generation_config
        model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=config.pad_token_id,
                                                   bos_token_id=getattr(saved, "bos_token_id", None))  # fmt: skip
        try:
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                generation_config=config,
                logits_processor=LogitsProcessorList([capture, *self.processors(), recorder]),
            )
        finally:
            model.generation_config = saved
        new_ids = out[0, input_ids.shape[1] :].tolist()
        if stop_ids and any(i in stop_ids for i in new_ids):
            new_ids = new_ids[: next(k for k, i in enumerate(new_ids) if i in stop_ids) + 1]
        if new_ids and len(recorder.logprobs) < len(new_ids):  # the last token had no later step to record it
            recorder.finish(new_ids[-1])
        self.logprobs = recorder.logprobs[: len(new_ids)]
        if check:
            self._check(model, input_ids, capture.first)
        return new_ids

    @staticmethod
    def _check(model, input_ids: torch.Tensor, first: torch.Tensor | None) -> None:
        """Raise if generate changed the logits before klong's processors saw them (a processor klong did not ask
        for, whose effect the recorded logprobs would include but a trainer would not reproduce)."""
        if first is None:
            return
        raw = model(input_ids=input_ids, use_cache=False).logits[0, -1].float()
        finite = torch.isfinite(first)
        if not bool(finite.all()) or not torch.allclose(first, raw, rtol=1e-4, atol=1e-4):
            extra: Any = float((first[finite] - raw[finite]).abs().max()) if bool(finite.any()) else "inf"
            raise ModelError(
                "transformers' generate applied a logits processor klong did not configure (scores differ from the "
                f"raw logits by {extra}); the recorded logprobs would not be the trainer's. Please report this."
            )
