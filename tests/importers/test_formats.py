"""A file of another format than the one asked for is refused, saying which format it looks like (never converted
with turns or fields lost)."""

import json

import pytest

from klong.exceptions import ImportFormatError
from klong.importers import import_trajectory_file, sniff_format
from tests.shared import shared_path

SWE = ("trajectories", "swe-agent", "ctf_eps.traj")
MINI = ("trajectories", "mini-swe-agent", "local.traj.json")

TOOL_CALLS = [{"role": "user", "content": "hi"},
              {"role": "assistant", "content": None,
               "tool_calls": [{"id": "c", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
              {"role": "tool", "tool_call_id": "c", "content": "a"}]  # fmt: skip
MINI_V1 = {"info": {"exit_status": "Submitted"}, "trajectory_format": "mini-swe-agent-1",
           "messages": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "```bash\nls\n```"}]}  # fmt: skip


def test_sniffing():
    assert sniff_format(json.loads(shared_path(*SWE).read_text()))[0] == "swe-agent"
    assert sniff_format(json.loads(shared_path(*MINI).read_text())) is None  # plain text messages: either format
    assert sniff_format(TOOL_CALLS)[0] == "openai"
    assert sniff_format({"messages": TOOL_CALLS, "tools": []})[0] == "openai"
    assert sniff_format(MINI_V1)[0] == "mini-swe-agent"
    assert sniff_format({"schema_version": 1, "id": "x", "messages": []})[0] == "klong"


@pytest.mark.parametrize(
    ("data", "asked", "looks_like"),
    [
        (MINI_V1, "openai", "mini-swe-agent"),  # the openai importer would keep it, losing the exit status mapping
        (TOOL_CALLS, "mini-swe-agent", "openai"),  # mini-swe-agent has no tool calls: they would be lost
        ({"messages": TOOL_CALLS, "tools": [{"type": "function"}]}, "mini-swe-agent", "openai"),
    ],
)
def test_a_file_of_another_format_is_refused(tmp_path, data, asked, looks_like):
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    with pytest.raises(
        ImportFormatError, match=rf"x.json: does not have the {asked} format: .* {looks_like} trajectory"
    ):
        import_trajectory_file(path, asked)
    assert import_trajectory_file(path, looks_like).messages


def test_swe_agent_file_as_other_formats(tmp_path):
    for asked in ("openai", "mini-swe-agent"):
        with pytest.raises(ImportFormatError, match=r"looks like a swe-agent trajectory .*--from swe-agent"):
            import_trajectory_file(shared_path(*SWE), asked)


def test_a_klong_trajectory_needs_no_import(tmp_path):
    traj = import_trajectory_file(shared_path(*MINI), "mini-swe-agent")
    path = tmp_path / "k.json"
    path.write_text(traj.model_dump_json())
    with pytest.raises(ImportFormatError, match="klong trajectory already"):
        import_trajectory_file(path, "openai")


def test_hint_on_a_shape_no_importer_reads(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": "x"}}]}))
    with pytest.raises(ImportFormatError, match=r"expected a list .* openai chat-completion response"):
        import_trajectory_file(path, "openai")
