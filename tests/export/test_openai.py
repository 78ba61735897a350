"""`klong export openai`: each line checked against the openai package's own types, sent by the openai SDK to a
server unchanged, and imported back by `klong trajectory import --from openai` with every message intact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageFunctionToolCallParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionToolMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.chat_completion_message_function_tool_call_param import Function
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import TypeAdapter
from typer.testing import CliRunner

from klong.cli import app
from klong.models.fake_openai import FakeOpenAIServer
from klong.schema import Message, ToolCall, ToolFunction, Trajectory, read_trajectory, write_trajectory

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]
BY_ROLE = {"system": ChatCompletionSystemMessageParam, "user": ChatCompletionUserMessageParam,
           "assistant": ChatCompletionAssistantMessageParam, "tool": ChatCompletionToolMessageParam}  # fmt: skip


def consume(value):
    """pydantic validates `Iterable` fields of the TypedDicts lazily: walk everything so that all of it is checked."""
    if isinstance(value, Iterator):  # pydantic's ValidatorIterator
        return [consume(v) for v in value]
    if isinstance(value, dict):
        return {k: consume(v) for k, v in value.items()}
    if isinstance(value, list):
        return [consume(v) for v in value]
    return value


def only_typed_keys(obj: dict, typed) -> None:
    """No key the TypedDict does not declare (pydantic ignores unknown keys of a TypedDict; OpenAI may refuse them)."""
    assert set(obj) <= set(typed.__annotations__), (typed.__name__, set(obj) - set(typed.__annotations__))


def check_line(line: dict) -> None:
    assert set(line) <= {"messages", "tools", "parallel_tool_calls"}
    consume(TypeAdapter(list[ChatCompletionMessageParam]).validate_python(line["messages"]))
    consume(TypeAdapter(CompletionCreateParamsNonStreaming).validate_python({**line, "model": "m"}))
    for m in line["messages"]:
        only_typed_keys(m, BY_ROLE[m["role"]])
        for call in m.get("tool_calls", []):
            only_typed_keys(call, ChatCompletionMessageFunctionToolCallParam)
            only_typed_keys(call["function"], Function)
            consume(TypeAdapter(ChatCompletionMessageFunctionToolCallParam).validate_python(call))
    if "tools" in line:
        consume(TypeAdapter(list[ChatCompletionFunctionToolParam]).validate_python(line["tools"]))
        assert isinstance(line["parallel_tool_calls"], bool)


def test_lines_are_openai_chat_data_and_import_back(export_run, tmp_path):
    imported = tmp_path / "imported"  # SWE-agent runs (no tool schemas; one in the text format) next to klong's own
    result = runner.invoke(app, ["trajectory", "import", *map(str, sorted((REPO / "examples/data/trajectories").glob("*.traj"))),
                                 "--from", "swe-agent", "--out", str(imported)])  # fmt: skip
    assert result.exit_code == 0, result.output
    sources = sorted((export_run.run_dir / "trajectories").glob("*.json")) + sorted(imported.glob("*.json"))
    out = tmp_path / "chat.jsonl"
    result = runner.invoke(app, ["export", "openai", str(export_run.run_dir / "trajectories"), str(imported),
                                 "--out", str(out), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert summary["lines"] == len(lines) == len(sources) == 6
    for source, line in zip(sources, lines, strict=True):
        check_line(line)
        traj = read_trajectory(source)
        if traj.tools:
            assert line["parallel_tool_calls"] is True  # klong's run made two calls in one turn
            assert [t["function"]["name"] for t in line["tools"]] == [t["function"]["name"] for t in traj.tools]
        else:
            assert "tools" not in line and "parallel_tool_calls" not in line

        # klong's own importer takes the line back: the same messages and tools
        one = tmp_path / "lines" / f"{traj.id}.json"
        one.parent.mkdir(exist_ok=True)
        one.write_text(json.dumps(line))
        back_dir = tmp_path / "back"
        result = runner.invoke(app, ["trajectory", "import", str(one), "--from", "openai", "--out", str(back_dir)])
        assert result.exit_code == 0, result.output
        back = read_trajectory(back_dir / f"{traj.id}.json")

        def plain(m: Message) -> dict:
            d = m.to_openai()
            d.pop("name", None)  # a tool result's name is not part of OpenAI's tool message
            d.pop("reasoning_content", None)
            return d

        assert [plain(m) for m in back.messages] == [plain(m) for m in traj.messages]
        assert back.tools == (line.get("tools") or None)


def test_the_sdk_sends_a_line_as_it_is(export_run, tmp_path):
    out = tmp_path / "chat.jsonl"
    source = export_run.run_dir / "trajectories" / "toy__a0.json"
    assert runner.invoke(app, ["export", "openai", str(source), "--out", str(out)]).exit_code == 0
    line = json.loads(out.read_text())
    with FakeOpenAIServer([{"content": "ok"}]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        client.chat.completions.create(model="m", **line)
    (body,) = server.requests
    assert body == {**line, "model": "m"}


def test_bad_trajectories_are_one_line_errors_and_nothing_is_written(tmp_path):
    call = ToolCall(id="c1", function=ToolFunction(name="bash", arguments='{"command": "ls"}'))
    cases = {
        "unanswered": [Message(role="user", content="go"), Message(role="assistant", tool_calls=[call]),
                       Message(role="assistant", content="done")],
        "orphan": [Message(role="user", content="go"), Message(role="tool", tool_call_id="c9", content="x")],
        "empty": [],
    }  # fmt: skip
    good = tmp_path / "good.json"
    write_trajectory(
        good, Trajectory(messages=[Message(role="user", content="hi"), Message(role="assistant", content="yo")])
    )
    for name, messages in cases.items():
        bad = tmp_path / f"{name}.json"
        write_trajectory(bad, Trajectory(messages=messages))
        out = tmp_path / f"{name}.jsonl"
        result = runner.invoke(app, ["export", "openai", str(good), str(bad), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and f"{name}.json" in result.output, result.output
        assert not out.exists()
    result = runner.invoke(app, ["export", "openai", str(good), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--out" in result.output and len(result.output.strip().splitlines()) == 1
