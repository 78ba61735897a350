import asyncio

import pytest

from klong.exceptions import InputFileError
from klong.models import load_model
from klong.models.scripted import ScriptedModel, ScriptedTurn, ScriptExhaustedError
from klong.protocols import Model
from klong.schema import Message


def _run(model, messages=()):
    return asyncio.run(model.generate(list(messages)))


def test_script_file_in_order(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "turns:\n"
        "  - content: reading\n"
        "    tool_calls: [{name: read_paper, arguments: {page: 1}}]\n"
        "  - content: broken call\n"
        "    tool_calls: [{name: bash, arguments: '{\"cmd\": '}]\n"
        "  - content: bye\n"
    )
    model = load_model(f"scripted:{path}")
    assert isinstance(model, Model)
    a, b, c = _run(model), _run(model), _run(model)
    assert a.tool_calls[0].id == "call_0_0" and a.tool_calls[0].function.parsed_arguments() == {"page": 1}
    assert a.finish_reason == "tool_calls"
    assert b.tool_calls[0].function.arguments == '{"cmd": ' and b.tool_calls[0].function.parsed_arguments() is None
    assert c.content == "bye" and c.tool_calls is None and c.finish_reason == "stop"
    with pytest.raises(ScriptExhaustedError, match="script has 3 turns"):
        _run(model)
    assert model.calls == 3


def test_repeat_last_and_callable():
    seen = []

    def policy(messages):
        seen.append(len(messages))
        return ScriptedTurn(content=f"saw {len(messages)}")

    model = ScriptedModel([ScriptedTurn(content="first"), policy], on_exhausted="repeat_last")
    assert _run(model, [Message(role="user", content="x")]).content == "first"
    assert _run(model, [Message(role="user", content="x")] * 3).content == "saw 3"
    assert _run(model, [Message(role="user", content="x")] * 5).content == "saw 5"
    assert seen == [3, 5]


def test_bad_script_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text('{"turns": [{"contnt": "typo"}]}')
    with pytest.raises(InputFileError, match=r"s.json: not a valid script: turns.0.contnt"):
        load_model(f"scripted:{path}")
