import json

import pytest

from klong.exceptions import ImportFormatError
from klong.importers import import_trajectory_file


def _conversation():
    return [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "list files"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "ls"}'}},
                {"id": "b", "type": "function", "function": {"name": "bash", "arguments": '{"cmd": "pwd"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "a", "content": "x y"},
        {"role": "tool", "tool_call_id": "b", "content": "/w"},
        {"role": "assistant", "content": "done"},
    ]


def test_list_of_messages(tmp_path):
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(_conversation()))
    traj = import_trajectory_file(path, "openai")
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert traj.messages[0].meta == {"original_role": "developer"}
    assert traj.messages[1].content == "list files"
    assert traj.tool_call_count() == 2
    assert traj.messages[2].tool_calls[1].function.parsed_arguments() == {"cmd": "pwd"}


def test_request_body_with_tools(tmp_path):
    path = tmp_path / "body.json"
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}}}]
    path.write_text(json.dumps({"model": "m", "messages": _conversation(), "tools": tools, "temperature": 0.2}))
    traj = import_trajectory_file(path, "openai")
    assert traj.tools == tools
    assert traj.model == "m"
    assert traj.meta["temperature"] == 0.2


def test_orphan_tool_message(tmp_path):
    path = tmp_path / "orphan.json"
    path.write_text(
        json.dumps([{"role": "user", "content": "u"}, {"role": "tool", "tool_call_id": "zz", "content": "r"}])
    )
    with pytest.raises(
        ImportFormatError, match=r"orphan.json: messages\[1\]: tool message answers unknown tool_call_id 'zz'"
    ):
        import_trajectory_file(path, "openai")


def test_object_without_messages(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"choices": []}))
    with pytest.raises(ImportFormatError, match="expected a list of chat messages"):
        import_trajectory_file(path, "openai")
