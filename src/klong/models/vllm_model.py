"""`vllm:MODEL_DIR`: the policy served by vLLM, token in and token out.

The prompt is klong's rendering of the view (`klong.models.tokens`), sent as token ids to `/v1/completions`; the reply
is the sampled ids as vLLM returns them (`return_token_ids`) with their logprobs, parsed into content and tool calls by
klong's parsers. A server klong starts (`klong.models.vllm_server`) returns processed logprobs, those of the
distribution sampled from; with `base_url`, klong attaches to a running server and records `logprobs_mode` as given.
Each reply records the server's policy version (the number of weight updates it had taken when it sampled).

The server is started on first use (a model checked at start-up costs nothing) and shared by every episode of the
process. Transient HTTP failures are retried by the openai SDK; a server that died, or keeps failing, ends the episode
with `StopReason.ENGINE_ERROR` (infrastructure: `--resume` runs it on once a server is back).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from klong.exceptions import ContextLengthError, EngineError, InputFileError, ModelError
from klong.models.call_seed import call_seed
from klong.models.config import ModelConfig
from klong.models.openai_compat import is_context_length_error
from klong.models.tokens import Renderers, reply_message, stop_token_ids
from klong.models.vllm_server import VLLMServer, shared_server
from klong.schema import Message, Sampling


@functools.lru_cache(maxsize=8)
def _tokenizer(model_dir: str):
    """One tokenizer per model folder for the process: every episode makes its own model object."""
    from klong.models.tokenizer import load_tokenizer

    return load_tokenizer(model_dir)


class VLLMModel:
    def __init__(self, model_dir: str | Path, config: ModelConfig | None = None, *, server: VLLMServer | None = None):
        from klong.models.tokenizer import hub_id_hint

        self.config = config or ModelConfig()
        self.model_dir = Path(model_dir)
        self.name = f"vllm:{model_dir}"
        if not (self.model_dir / "config.json").is_file():
            raise InputFileError(model_dir, f"not a model folder (no config.json) for vllm:{hub_id_hint(model_dir)}")
        self.tokenizer = _tokenizer(str(self.model_dir.resolve()))
        self._renderers = Renderers(self.tokenizer)
        self._server = server
        self._server_lock = threading.Lock()
        self._client = None
        self._client_url: str | None = None
        self._limit: tuple[int | None] | None = None
        """The server's context length, once asked (None inside: it does not say)."""
        self.calls = 0

    @property
    def endpoint(self) -> str | None:
        """The server attached to (`base_url`), for records such as the judge's identity; None for klong's own
        server, whose port changes from run to run (the model folder names it)."""
        return self.config.base_url

    # -- the server ------------------------------------------------------------------------------------------------
    def _running(self) -> VLLMServer | None:
        """The server this model samples from, None before the first call. One that died is an engine failure: the
        episode stops, and its resume (a new model object) gets a server started again; never one with other weights
        in the middle of an episode."""
        server = self._server
        if server is not None and (died := server.died()) is not None:
            raise EngineError(f"{self.name}: {died}")
        return server

    def server(self) -> VLLMServer:
        """The server this model samples from: the given one, the one at `base_url`, or klong's own (started now)."""
        with self._server_lock:
            if self._running() is None:
                if self.config.base_url:
                    self._server = VLLMServer.attach(self.config.base_url)
                else:
                    self._server = shared_server(self.model_dir, self.config.vllm)
            return self._server

    def _openai(self, server: VLLMServer):
        import openai

        if self._client is None or self._client_url != server.url:
            self._client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="EMPTY",
                                              max_retries=self.config.max_retries,
                                              timeout=self.config.request_timeout)  # fmt: skip
            self._client_url = server.url
        return self._client

    async def close(self) -> None:
        """Close the HTTP client (its connections belong to the running event loop); a later call opens a new one."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    # -- one turn --------------------------------------------------------------------------------------------------
    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        import openai

        c = self.config
        server = self._running() or await asyncio.to_thread(self.server)  # a thread only to attach or start one
        if self._limit is None:
            self._limit = (await asyncio.to_thread(server.max_model_len),)
        limit = self._limit[0]
        renderer = self._renderers.get(messages, tools)
        prompt = renderer.render_prompt(list(messages)).input_ids
        if limit is not None and len(prompt) + c.max_tokens > limit:
            raise ContextLengthError(f"{self.name}: {len(prompt)} prompt + {c.max_tokens} new tokens exceed {limit}")
        stop_ids = stop_token_ids(renderer)
        body: dict[str, Any] = {"return_token_ids": True, "stop_token_ids": stop_ids, "skip_special_tokens": False,
                                "spaces_between_special_tokens": False}  # fmt: skip
        version = server.version
        try:
            response = await self._openai(server).completions.create(
                model=server.request_model, prompt=prompt, max_tokens=c.max_tokens, temperature=c.temperature,
                top_p=c.top_p, logprobs=0, seed=call_seed(c.seed, self.calls), extra_body=body,
            )  # fmt: skip
        except openai.APIStatusError as e:
            if is_context_length_error(e.status_code, e.body, str(e)):
                raise ContextLengthError(f"{self.name}: {e.message}") from e
            raise ModelError(f"{self.name}: HTTP {e.status_code} after retries: {e.message}") from e
        except openai.APIError as e:
            died = server.died()
            raise EngineError(f"{self.name}: {died or f'{type(e).__name__} after retries: {e}'}") from e
        self.calls += 1
        new_ids, logprobs = _sampled(response)
        if c.temperature > 0:
            sampling = Sampling(temperature=c.temperature, top_p=c.top_p,
                                logprobs="processed" if server.processed_logprobs else c.logprobs_mode)  # fmt: skip
        else:  # greedy: the logprobs are the model's own distribution
            sampling = Sampling(temperature=0.0, top_p=1.0, logprobs="raw")
        return reply_message(renderer, prompt, new_ids, logprobs, stop_ids, sampling, c.tool_format,
                             {"policy_version": version})  # fmt: skip


def _sampled(response) -> tuple[list[int], list[float]]:
    """The sampled ids and their logprobs from a completions response with `return_token_ids` and `logprobs=0`."""
    try:
        choice = response.choices[0]
        extra = choice.model_extra or {}
        ids = [int(i) for i in extra["token_ids"]]
        logprobs = [float(x) for x in choice.logprobs.token_logprobs]
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        raise ModelError(f"vLLM returned no token ids or logprobs ({type(e).__name__}: {e}); klong needs a vLLM "
                         "with `return_token_ids` (0.10.2 or later)") from e  # fmt: skip
    if len(ids) != len(logprobs):
        raise ModelError(f"vLLM returned {len(ids)} token ids but {len(logprobs)} logprobs")
    return ids, logprobs
