import json

import pytest

from klong.exceptions import InputFileError, StopReason
from klong.schema import Message, ToolCall, ToolFunction, Trajectory, Usage, read_trajectory, write_trajectory


def _traj() -> Trajectory:
    return Trajectory(
        id="t1",
        task_id="task",
        model="scripted:x",
        sandbox="local",
        tools=[{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}],
        messages=[
            Message(role="system", content="sys", time=0.0),
            Message(role="user", content="do it", time=0.0),
            Message(
                role="assistant",
                content="ok",
                tool_calls=[ToolCall(id="c1", function=ToolFunction(name="bash", arguments={"cmd": "ls"}))],
                usage=Usage(prompt_tokens=10, completion_tokens=5),
                token_ids=[1, 2, 3],
                logprobs=[-0.1, -0.2, -0.3],
                time=1.5,
                virtual_time=60.0,
            ),
            Message(role="tool", content="a b", tool_call_id="c1", name="bash", time=1.7),
        ],
        stop_reason=StopReason.TIMEOUT,
        wall_time=2.0,
        virtual_time=3600.0,
    )


def test_roundtrip(tmp_path):
    traj = _traj()
    write_trajectory(tmp_path / "t.json", traj)
    back = read_trajectory(tmp_path / "t.json")
    assert back.model_dump(exclude={"updated_at"}) == traj.model_dump(exclude={"updated_at"})
    assert back.messages[2].tool_calls[0].function.arguments == '{"cmd": "ls"}'
    assert back.stop_reason is StopReason.TIMEOUT


def test_to_openai_strips_bookkeeping():
    msgs = _traj().openai_messages()
    assert msgs[2] == {
        "role": "assistant",
        "content": "ok",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}}],
    }
    assert msgs[3] == {"role": "tool", "content": "a b", "tool_call_id": "c1", "name": "bash"}


def test_content_parts_are_flattened():
    m = Message(
        role="user",
        content=[{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {}}, {"type": "text", "text": "b"}],
    )
    assert m.content == "ab"


def test_invalid_messages_rejected():
    with pytest.raises(ValueError, match="only assistant messages carry tool_calls"):
        Message(role="user", content="x", tool_calls=[ToolCall(id="a", function=ToolFunction(name="f"))])
    with pytest.raises(ValueError, match="logprobs has 1 entries but token_ids has 2"):
        Message(role="assistant", content="x", token_ids=[1, 2], logprobs=[0.0])


def test_malformed_tool_arguments_are_kept_raw():
    f = ToolFunction(name="bash", arguments='{"cmd": "ls"')
    assert f.parsed_arguments() is None
    assert ToolFunction(name="x", arguments="[1]").parsed_arguments() is None


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "messages": [{"role": "robot", "content": "hi"}]}))
    with pytest.raises(InputFileError) as err:
        read_trajectory(bad)
    assert "bad.json" in str(err.value) and "messages.0.role" in str(err.value)

    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"schema_version": 99, "id": "x", "messages": []}))
    with pytest.raises(InputFileError, match="newer than this klong supports"):
        read_trajectory(newer)

    good = tmp_path / "good.json"
    write_trajectory(good, _traj())
    text = good.read_text()
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    with pytest.raises(InputFileError, match="truncated"):
        read_trajectory(truncated)
    assert good.read_text() == text  # nothing already written is touched


def test_incremental_writer_matches_full_write(tmp_path):
    from klong.schema import TrajectoryWriter

    traj = _traj()
    writer = TrajectoryWriter(tmp_path / "inc.json")
    for i in range(5):
        traj.messages.append(Message(role="user", content=f"more {i}"))
        writer.save(traj)
        traj.messages[-1].content += " (notice)"  # the runtime may still touch the newest message
        writer.save(traj)
        write_trajectory(tmp_path / "full.json", traj)
        inc, full = read_trajectory(tmp_path / "inc.json"), read_trajectory(tmp_path / "full.json")
        assert inc.model_dump(exclude={"updated_at"}) == full.model_dump(exclude={"updated_at"})
    assert read_trajectory(tmp_path / "inc.json").messages[-1].content == "more 4 (notice)"
