"""The `openai` backend against a deterministic OpenAI-compatible server on 127.0.0.1."""

import asyncio
import json
import time

import pytest

from klong.agent.config import AgentConfig
from klong.exceptions import ContextLengthError, ModelError, StopReason
from klong.models import load_model
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.rollout.runner import run_rollouts
from klong.schema import Message, read_trajectory
from tests.tasks import make_task

USER = [Message(role="user", content="hi")]


def model_for(server, **kw):
    return load_model("openai:fake-model", ModelConfig(base_url=server.base_url, **{"max_retries": 3, **kw}))


def generate(model, messages=USER, tools=None):
    return asyncio.run(model.generate(messages, tools))


def test_native_tool_calls_usage_and_sampled_ids():
    reply = {"content": "Let me look.", "reasoning_content": "hmm",
             "tool_calls": [{"name": "bash", "arguments": {"command": "ls"}}],
             "token_ids": [11, 12, 13], "logprobs": [-0.1, -0.2, -0.3], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}  # fmt: skip
    with FakeOpenAIServer([reply]) as server:
        msg = generate(model_for(server, logprobs=True), tools=[{"type": "function", "function": {"name": "bash"}}])
        body = server.requests[0]
    assert msg.content == "Let me look." and msg.reasoning_content == "hmm"
    assert msg.tool_calls[0].function.name == "bash" and msg.tool_calls[0].function.parsed_arguments() == {
        "command": "ls"
    }
    assert msg.token_ids == [11, 12, 13] and msg.logprobs == [-0.1, -0.2, -0.3]
    assert msg.usage.prompt_tokens == 7 and msg.usage.completion_tokens == 3 and msg.finish_reason == "tool_calls"
    assert body["logprobs"] is True and body["return_tokens_as_token_ids"] is True and body["tools"]


def test_transient_errors_are_retried():
    with FakeOpenAIServer([{"status": 500}, {"status": 429}, {"status": 503}, {"content": "ok"}]) as server:
        assert generate(model_for(server)).content == "ok"
        assert len(server.requests) == 4
    with FakeOpenAIServer([{"status": 500}] * 10) as server, pytest.raises(ModelError, match="HTTP 500 after retries"):
        generate(model_for(server, max_retries=2))
    assert len(server.requests) == 3


def test_slow_answers_time_out_and_are_retried():
    with FakeOpenAIServer([{"delay": 2.0, "content": "late"}, {"content": "on time"}]) as server:
        t0 = time.monotonic()
        assert generate(model_for(server, request_timeout=0.5)).content == "on time"
        assert time.monotonic() - t0 < 2.0
    with (
        FakeOpenAIServer([{"delay": 1.0, "content": "late"}] * 3) as server,
        pytest.raises(ModelError, match="Timeout"),
    ):
        generate(model_for(server, request_timeout=0.3, max_retries=1))


def test_context_length_error_is_typed():
    with FakeOpenAIServer([{"context_length_error": True}]) as server, pytest.raises(ContextLengthError):
        generate(model_for(server))
    assert len(server.requests) == 1  # not retried: the prompt must change


def test_text_tool_calls_are_parsed_when_the_server_has_no_tool_parser():
    text = 'Sure.\n<tool_call>\n{"name": "bash", "arguments": {"command": "pwd"}}\n</tool_call>'
    with FakeOpenAIServer([{"content": text}]) as server:
        msg = generate(model_for(server), tools=[{"type": "function", "function": {"name": "bash"}}])
    assert msg.content == "Sure." and msg.tool_calls[0].function.name == "bash"


def test_episode_over_http_survives_faults(tmp_path, monkeypatch):
    """500 and 429 answers, a malformed tool call, a context-length error and a slow answer: the episode goes on,
    the model sees only its own mistake, and the API key never reaches a file."""
    monkeypatch.setenv("KLONG_TEST_KEY", "sk-klong-secret-0123456789")
    task = make_task(tmp_path, paragraphs=2)
    call = lambda name, **args: {"name": name, "arguments": args}  # noqa: E731
    replies = [
        {"status": 500},
        {"content": "Reading.", "tool_calls": [call("read_paper", page=1)]},
        {"status": 429},
        {"content": "Oops.", "tool_calls": [{"name": "bash", "arguments": '{"command": "ls'}]},
        {"context_length_error": True},
        {"content": "Again.", "tool_calls": [call("bash", command="echo 42 > submission/result.txt")]},
        {"delay": 1.5, "content": "slow"},
        {"content": "Done.", "tool_calls": [call("end_task", summary="42")]},
    ]
    with FakeOpenAIServer(replies) as server:
        cfg = ModelConfig(base_url=server.base_url, api_key_env="KLONG_TEST_KEY", max_retries=3, request_timeout=0.8)
        out = tmp_path / "run"
        asyncio.run(run_rollouts([task], model_factory=lambda: load_model("openai:fake-model", cfg), sandbox="local",
                                 config=AgentConfig(clock="virtual", page_chars=100000), out_dir=out))  # fmt: skip
        headers = server.headers
        requests = server.requests
    traj = read_trajectory(out / "trajectories" / "toy__a0.json")
    assert traj.stop_reason is StopReason.END_TASK and traj.assistant_turns() == 4
    tool_texts = [m.content for m in traj.messages if m.role == "tool"]
    assert "not a JSON object" in tool_texts[1]
    assert (out / "workspaces" / "toy__a0" / "submission" / "result.txt").read_text() == "42\n"
    forced = [m for m in traj.messages if m.role == "assistant" and m.meta["context"].get("forced")]
    assert len(forced) == 1 and forced[0].content == "Again."
    # after the context-length error the same call was retried with a new epoch's view (notice included)
    retry = requests[5]["messages"]
    assert any("removed to fit the context window" in (m.get("content") or "") for m in retry)
    assert all(
        {k.lower(): v for k, v in h.items()}["authorization"] == "Bearer sk-klong-secret-0123456789" for h in headers
    )
    for f in out.rglob("*"):
        if f.is_file():
            assert "sk-klong-secret" not in f.read_text(errors="replace"), f
    assert json.loads((out / "summaries.jsonl").read_text())["stop_reason"] == "end_task"


def test_endpoint_down_ends_the_episode(tmp_path):
    task = make_task(tmp_path, paragraphs=2)
    with FakeOpenAIServer([{"status": 502}] * 10) as server:
        cfg = ModelConfig(base_url=server.base_url, max_retries=1)
        out = tmp_path / "run"
        asyncio.run(run_rollouts([task], model_factory=lambda: load_model("openai:m", cfg), sandbox="local",
                                 config=AgentConfig(clock="virtual"), out_dir=out))  # fmt: skip
    traj = read_trajectory(out / "trajectories" / "toy__a0.json")
    assert traj.stop_reason is StopReason.MODEL_ERROR and "502" in traj.stop_detail
    assert [m.role for m in traj.messages] == ["system", "user"]  # nothing was shown to the model


def test_repeated_context_length_errors_get_smaller_views_and_split_as_sent(tmp_path, qwen_tokenizer):
    """A server that refuses the view twice: each retry is a new, smaller epoch (never the view it just refused),
    only the accepted one counts (epoch numbering, recorded `forced` attempt), and the splitter replays it exactly."""
    from klong.chat.context import ContextConfig
    from klong.chat.render import ChatRenderer
    from klong.data.split import split_trajectory

    task = make_task(tmp_path, paragraphs=2)
    work = [{"content": f"Step {i}.", "tool_calls": [{"name": "bash", "arguments": {"command": f"seq 1 {60 + i}"}}]}
            for i in range(8)]  # fmt: skip
    replies = [*work, {"context_length_error": True}, {"context_length_error": True},
               {"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {"summary": "x"}}]}]  # fmt: skip
    agent = AgentConfig(clock="virtual", mandatory_reading=False,
                        context=ContextConfig(max_context_tokens=6000, overlap_tokens=1200))  # fmt: skip
    with FakeOpenAIServer(replies) as server:
        cfg = ModelConfig(base_url=server.base_url, max_retries=0, max_tokens=512)
        out = tmp_path / "run"
        asyncio.run(run_rollouts([task], model_factory=lambda: load_model("openai:m", cfg), sandbox="local",
                                 config=agent, out_dir=out, tokenizer=qwen_tokenizer))  # fmt: skip
        requests = server.requests
    traj = read_trajectory(out / "trajectories" / "toy__a0.json")
    assert traj.stop_reason is StopReason.END_TASK
    renderer = ChatRenderer(qwen_tokenizer, traj.tools, traj.messages[0])
    from klong.schema import Message

    sizes = [len(renderer.render_prompt([Message.model_validate(m) for m in r["messages"]])) for r in requests[8:]]
    assert sizes[0] > sizes[1] > sizes[2], sizes  # refused, refused (a new epoch), accepted (a smaller new epoch)
    last = [m for m in traj.messages if m.role == "assistant"][-1]
    assert last.meta["context"]["forced"] == 2 and last.meta["context"]["epoch"] == 1
    result = split_trajectory(traj, qwen_tokenizer)
    assert result.checked_calls == traj.assistant_turns()
