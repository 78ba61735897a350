"""`openai:NAME`: any OpenAI-compatible chat endpoint through the official `openai` SDK.

Transient failures (429, 5xx, timeouts, dropped connections) are retried with exponential backoff by the SDK itself
(`max_retries`); when retries run out, `ModelError` ends the episode. A refusal because the prompt is too long becomes
`ContextLengthError`, on which the runtime starts a new context epoch. Native tool calls are used; a server that
returns tool calls as text (no tool parser configured) is parsed with `klong.chat.parsing`. With `logprobs`, the
sampled token ids and logprobs are recorded (vLLM's `return_tokens_as_token_ids`), so RL trains on what was sampled;
`logprobs_mode` says whether the server's logprobs are raw or processed, and is recorded in `Message.sampling`.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any

from klong import redact
from klong.chat.parsing import parse_reply
from klong.exceptions import ContextLengthError, ModelError
from klong.models.call_seed import call_seed
from klong.models.config import ModelConfig
from klong.schema import Message, Sampling, ToolCall, ToolFunction, Usage

_CONTEXT_PHRASES = ("context length", "context_length", "maximum context", "too many tokens", "prompt is too long",
                    "input is too long", "reduce the length")  # fmt: skip


def is_context_length_error(status: int | None, body: Any, message: str) -> bool:
    text = (message + " " + str(body)).lower()
    code = body.get("code") if isinstance(body, dict) else None
    return status == 400 and (code == "context_length_exceeded" or any(p in text for p in _CONTEXT_PHRASES))


class OpenAIModel:
    def __init__(self, model_name: str, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self.model_name = model_name
        self.name = f"openai:{model_name}"
        self.client = self._client()

    def _client(self):
        import openai

        api_key = os.environ.get(self.config.api_key_env)
        redact.register(api_key)  # an endpoint that echoes it in an error message must not get it into a file
        return openai.AsyncOpenAI(
            base_url=self.config.base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=api_key or "EMPTY",
            max_retries=self.config.max_retries,
            timeout=self.config.request_timeout,
        )

    async def close(self) -> None:
        """Close the HTTP client (its connections belong to the running event loop); a later call opens a new one."""
        await self.client.close()
        self.client = self._client()

    async def generate(
        self, messages: Sequence[Message], tools: Sequence[dict[str, Any]] | None = None, *, json_mode: bool = False
    ) -> Message:
        import openai

        c = self.config
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "messages": [m.to_openai() for m in messages],
            "temperature": c.temperature,
            "top_p": c.top_p,
            "max_tokens": c.max_tokens,
        }
        if (seed := call_seed(c.seed)) is not None:  # per episode and turn inside an episode, else the seed as set
            kwargs["seed"] = seed
        if tools:
            kwargs["tools"] = list(tools)
        if json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        if c.logprobs:
            kwargs["logprobs"] = True
            kwargs["extra_body"] = {"return_tokens_as_token_ids": True}
        problem = ""
        for attempt in range(c.max_retries + 1):
            if attempt:
                await asyncio.sleep(min(8.0, 0.25 * 2**attempt))
            try:
                response = await self.client.chat.completions.create(**kwargs)
            except openai.APIStatusError as e:
                body = e.body if isinstance(e.body, dict) else {}
                body = body.get("error", body) if isinstance(body, dict) else body
                if is_context_length_error(e.status_code, body, str(e)):
                    raise ContextLengthError(f"{self.name}: {e.message}") from e
                raise ModelError(f"{self.name}: HTTP {e.status_code} after retries: {e.message}") from e
            except openai.APIResponseValidationError as e:
                problem = f"a response the SDK could not read ({e})"
                continue
            except openai.APIError as e:
                raise ModelError(f"{self.name}: {type(e).__name__} after retries: {e}") from e
            except ValueError as e:  # a 200 whose body is not JSON (cut off): transient, like a dropped connection
                problem = f"a response that is not JSON ({e})"
                continue
            # A malformed 200 (no choices, a choice without a message, a tool call without a name) is retried like
            # any transient failure; after the retries it is an infrastructure failure, never shown to the model.
            if not getattr(response, "choices", None):
                problem = "no choices"
                continue
            try:
                return self._to_message(response)
            except (AttributeError, TypeError, ValueError) as e:
                problem = f"a malformed choice ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        raise ModelError(f"{self.name}: the server returned {problem} in {c.max_retries + 1} attempts")

    def _to_message(self, response) -> Message:
        choice = response.choices[0]
        msg = choice.message
        extra = getattr(msg, "model_extra", None) or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        content = msg.content
        calls = [ToolCall(id=tc.id or f"call_{uuid.uuid4().hex[:12]}",
                          function=ToolFunction(name=tc.function.name, arguments=tc.function.arguments or "{}"))
                 for tc in msg.tool_calls or []]  # fmt: skip
        if not calls and content and ("<tool_call>" in content or content.lstrip().startswith("{")):
            parsed = parse_reply(content, self.config.tool_format)
            if parsed.calls:
                content = parsed.content
                reasoning = reasoning or parsed.reasoning
                calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:12]}", function=ToolFunction(name=p.name, arguments=p.arguments))
                         for p in parsed.calls]  # fmt: skip
        token_ids, logprobs = _sampled(choice)
        sampling = None
        if logprobs is not None:
            c = self.config
            sampling = Sampling(temperature=c.temperature, top_p=c.top_p, logprobs=c.logprobs_mode)
        usage = None
        if response.usage is not None:
            details = getattr(response.usage, "prompt_tokens_details", None)
            usage = Usage(prompt_tokens=response.usage.prompt_tokens or 0,
                          completion_tokens=response.usage.completion_tokens or 0,
                          cached_tokens=getattr(details, "cached_tokens", None) if details else None)  # fmt: skip
        return Message(role="assistant", content=content, reasoning_content=reasoning, tool_calls=calls or None,
                       usage=usage, finish_reason=choice.finish_reason, token_ids=token_ids, logprobs=logprobs,
                       sampling=sampling)  # fmt: skip


def _sampled(choice) -> tuple[list[int] | None, list[float] | None]:
    """Token ids and logprobs from `choice.logprobs` when the server sent ids (`token_id:N` tokens, as vLLM does)."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None, None
    ids, lps = [], []
    for item in content:
        token = item.token or ""
        if not token.startswith("token_id:"):
            return None, None
        ids.append(int(token.split(":", 1)[1]))
        lps.append(float(item.logprob))
    return ids, lps
