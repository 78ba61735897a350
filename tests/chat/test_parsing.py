import json

from klong.chat.parsing import detect_format, parse_reply


def test_hermes_calls_and_reasoning():
    text = ('<think>\nplan it\n</think>\n\nLet me look.\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n'
            '</tool_call>\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>')  # fmt: skip
    r = parse_reply(text)
    assert r.reasoning == "plan it" and r.content == "Let me look."
    assert [(c.name, json.loads(c.arguments)) for c in r.calls] == [
        ("bash", {"command": "ls"}),
        ("read_file", {"path": "a.py"}),
    ]


def test_hermes_robustness():
    # control characters inside strings, a code fence, an unclosed final block
    r = parse_reply('<tool_call>```json\n{"name": "bash", "arguments": {"command": "echo a\tb"}}\n```</tool_call>'
                    '<tool_call>{"name": "write_file", "arguments": {"path": "x", "content": "line1\nline2"}}')  # fmt: skip
    assert [c.name for c in r.calls] == ["bash", "write_file"] and json.loads(r.calls[1].arguments)[
        "content"
    ] == "line1\nline2"
    bad = parse_reply('<tool_call>{"name": "bash", "arguments": {"command": }</tool_call>')
    assert bad.calls[0].name == "bash" and not bad.errors  # the tool reports the broken arguments to the model
    worse = parse_reply("<tool_call>{nonsense</tool_call>")
    assert not worse.calls and "could not read a tool call" in worse.errors[0]


def test_llama3_json():
    r = parse_reply('{"name": "bash", "parameters": {"command": "pwd"}}')
    assert r.content == "" and r.calls[0].name == "bash" and json.loads(r.calls[0].arguments) == {"command": "pwd"}
    r = parse_reply('<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"x": 1}}')
    assert [c.name for c in r.calls] == ["a", "b"]
    assert parse_reply("Just text {not a call}").calls == []


def test_glm45_xml():
    text = ("I will run it.\n<tool_call>bash\n<arg_key>command</arg_key>\n<arg_value>ls -la</arg_value>\n"
            "<arg_key>timeout</arg_key>\n<arg_value>30</arg_value>\n</tool_call>")  # fmt: skip
    assert detect_format(text) == "glm45"
    r = parse_reply(text)
    assert r.content == "I will run it." and json.loads(r.calls[0].arguments) == {"command": "ls -la", "timeout": 30}


def test_roundtrip_through_templates(qwen_tokenizer):
    """What the Qwen2.5 template renders for a tool call parses back to the same call."""
    from klong.chat.render import ChatRenderer
    from klong.schema import Message, ToolCall, ToolFunction

    msg = Message(role="assistant", content="Checking.",
                  tool_calls=[ToolCall(id="c", function=ToolFunction(name="bash", arguments={"command": "ls"}))])  # fmt: skip
    gen = ChatRenderer(qwen_tokenizer).turn_piece([msg]).gen.text.removesuffix("<|im_end|>")
    r = parse_reply(gen, "hermes")
    assert (
        r.content == "Checking." and r.calls[0].name == "bash" and json.loads(r.calls[0].arguments) == {"command": "ls"}
    )
