"""Generation and endpoint settings shared by the model backends."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from klong.chat.parsing import ToolFormat


class VLLMLaunch(BaseModel):
    """How klong starts a vLLM server for a `vllm:MODEL_DIR` spec (`klong.models.vllm_server`)."""

    model_config = ConfigDict(extra="forbid")

    python: str | None = None
    """The Python of the environment with vLLM; default `$KLONG_VLLM_PYTHON`, else `.venv-vllm/bin/python` of the
    working directory where it exists, else this Python."""
    args: list[str] = []
    """More `vllm serve` flags, e.g. `["--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85"]`."""
    env: dict[str, str] = {}
    """More environment variables for the server (e.g. `CUDA_VISIBLE_DEVICES: "1"`, `VLLM_CPU_KVCACHE_SPACE: "4"`)."""
    max_model_len: int | None = None
    """`--max-model-len`; default: the model's own."""
    dtype: str = "auto"
    seed: int = 0
    startup_timeout: float = 900.0
    """Seconds to wait for the server's health check (loading and compiling can take minutes)."""
    enable_lora: bool = False
    """Start with `--enable-lora` (RL with LoRA adapters synced as runtime adapters)."""
    max_lora_rank: int = 64


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
    vllm: VLLMLaunch = VLLMLaunch()
    """`vllm`: how a server klong starts is launched (with `base_url` klong attaches to a running one instead)."""
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
