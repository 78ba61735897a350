"""Generation and endpoint settings shared by the model backends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from klong.chat.parsing import ToolFormat


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 4096
    """Most tokens per model turn; the runtime keeps this much free in the context (`reserve_tokens`)."""
    seed: int | None = None
    tool_format: ToolFormat = "auto"
    """How tool calls written as text are parsed (`hf` always; `openai` when the server returns no native calls)."""
    base_url: str | None = None
    """OpenAI-compatible endpoint (vLLM, SGLang, a provider); default `$OPENAI_BASE_URL`, else OpenAI."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself is never written anywhere)."""
    max_retries: int = 6
    """Retries (with exponential backoff, by the openai SDK) on 429, 5xx, timeouts and dropped connections."""
    request_timeout: float = 600.0
    logprobs: bool = False
    """Ask an OpenAI-compatible server for sampled token ids and logprobs (vLLM: `return_tokens_as_token_ids`)."""
    logprobs_mode: Literal["raw", "processed"] = "raw"
    """What the server's logprobs are: `raw` (the model's distribution before temperature; vLLM's default) or
    `processed` (the distribution sampled from; vLLM `--logprobs-mode processed_logprobs`). Recorded with every turn
    (`Message.sampling`) so that RL computes the matching quantity. `hf` always records processed logprobs."""
    device: str | None = None
    """`hf`: torch device (default: cuda if available, else cpu)."""
    dtype: str = "auto"
    """`hf`: torch dtype (`auto`, `float32`, `bfloat16`)."""

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        problems = []
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], not {self.top_p}")
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be at least 1, not {self.max_tokens}")
        if self.max_retries < 0 or not self.request_timeout > 0:
            problems.append("max_retries must be >= 0 and request_timeout > 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self
