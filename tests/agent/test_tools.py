"""Every tool against a real local sandbox in a temporary folder."""

import asyncio
import json
import os

import pytest

from klong.agent.clock import VirtualClock
from klong.agent.config import PAPER_END_MARKER, AgentConfig
from klong.agent.tools import Toolbox, paginate
from klong.agent.workspace import Workspace
from klong.sandbox import SandboxConfig, make_sandbox
from klong.schema import ToolCall, ToolFunction
from tests.tasks import make_task


def _box(tmp_path, *, reading=False, **config):
    task = make_task(tmp_path)
    sandbox = make_sandbox("local", tmp_path / "ws", SandboxConfig(output_head_bytes=200, output_tail_bytes=100))
    ws = Workspace(sandbox.workspace, sandbox.root)
    ws.prepare(task)
    cfg = AgentConfig(mandatory_reading=reading, page_chars=1500, **config)
    return Toolbox(task, ws, sandbox, cfg, VirtualClock()), ws


def call(tools, name, **args):
    return asyncio.run(tools.execute(ToolCall(id="c", function=ToolFunction(name=name, arguments=args))))


def test_bash_python_and_caps(tmp_path):
    tools, ws = _box(tmp_path)
    out = call(tools, "bash", command="echo hi; ls paper")
    assert "hi" in out.text and "paper.md" in out.text and out.text.endswith("[exit code 0]")
    assert out.cost_key == "echo hi; ls paper"
    big = call(tools, "bash", command="seq 1 100000")
    assert "bytes of output cut" in big.text and "100000" in big.text and len(big.text) < 600
    slow = call(tools, "bash", command="sleep 5", timeout=0.5)
    assert "[killed: timed out" in slow.text
    py = call(tools, "python", code="import os\nprint(sum(range(10)), os.getcwd())")
    assert "45" in py.text and str(ws.host_root) in py.text


def test_file_tools(tmp_path):
    tools, ws = _box(tmp_path)
    assert "Wrote" in call(tools, "write_file", path="submission/run.py", content="a = 1\nb = 2\nc = 3\n").text
    assert (ws.submission_dir / "run.py").read_text() == "a = 1\nb = 2\nc = 3\n"
    read = call(tools, "read_file", path=f"{ws.agent_root}/submission/run.py", start_line=2, end_line=3)
    assert "     2| b = 2" in read.text and "     3| c = 3" in read.text and "a = 1" not in read.text
    assert "Replaced 1" in call(tools, "edit_file", path="submission/run.py", old_text="b = 2", new_text="b = 20").text
    assert "not found" in call(tools, "edit_file", path="submission/run.py", old_text="zzz", new_text="").text
    call(tools, "write_file", path="submission/dup.txt", content="x x x")
    assert "occurs 3 times" in call(tools, "edit_file", path="submission/dup.txt", old_text="x", new_text="y").text
    assert (
        "Replaced 3"
        in call(tools, "edit_file", path="submission/dup.txt", old_text="x", new_text="y", replace_all=True).text
    )
    hits = call(tools, "search_files", pattern=r"b = \d+", path="submission")
    assert "run.py:2: b = 20" in hits.text
    assert call(tools, "search_files", pattern="nothing-here", glob="*.py").text == "No matches."
    assert "invalid regular expression" in call(tools, "search_files", pattern="(").text


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/passwd", "submission/../../x", "link/secret"])
def test_paths_outside_the_workspace_are_refused(tmp_path, path):
    tools, ws = _box(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("s")
    os.symlink(tmp_path / "outside", ws.host_root / "link")
    for name, args in [("read_file", {"path": path}), ("write_file", {"path": path, "content": "x"}),
                       ("edit_file", {"path": path, "old_text": "s", "new_text": "t"})]:  # fmt: skip
        assert "path refused" in call(tools, name, **args).text
    assert (tmp_path / "outside" / "secret").read_text() == "s"


def test_read_paper_pages_and_mandatory_reading(tmp_path):
    tools, _ = _box(tmp_path, reading=True)
    n = len(tools.pages)
    assert n >= 3 and tools.pages == paginate(tools.pages and "".join(tools.pages), 1500)
    refused = call(tools, "bash", command="ls")
    assert "read the whole paper first" in refused.text and "page=1" in refused.text
    texts = [call(tools, "read_paper", page=p).text for p in range(1, n + 1)]
    assert texts[0].startswith(f"[page 1 of {n}]") and PAPER_END_MARKER in texts[-1]
    assert all(PAPER_END_MARKER not in t for t in texts[:-1])
    assert "Report the answer in result.txt." in "".join(texts)  # the addendum is part of the reading
    assert "[exit code 0]" in call(tools, "bash", command="true").text
    assert "has " in call(tools, "read_paper", page=n + 1).text


def test_end_task_refused_before_minimum(tmp_path):
    tools, _ = _box(tmp_path, min_end_time=600, min_end_turns=3)
    assert "end_task refused" in (r := call(tools, "end_task", summary="done")).text and not r.end_task
    tools.clock.charge(700)
    tools.turns = 3
    assert call(tools, "end_task", summary="done").end_task


def test_bad_calls_are_explained(tmp_path):
    tools, _ = _box(tmp_path)
    assert "unknown tool 'rm_rf'" in call(tools, "rm_rf").text
    broken = asyncio.run(tools.execute(ToolCall(id="c", function=ToolFunction(name="bash", arguments='{"command": '))))
    assert "not a JSON object" in broken.text and '"command"' in broken.text
    assert "invalid arguments for bash" in call(tools, "bash", cmd="ls").text


def test_schemas_are_openai_tools(tmp_path):
    tools, _ = _box(tmp_path)
    schemas = tools.schemas()
    assert [s["function"]["name"] for s in schemas] == ["bash", "python", "read_file", "write_file", "edit_file",
                                                         "search_files", "read_paper", "end_task"]  # fmt: skip
    bash = schemas[0]["function"]["parameters"]
    assert bash["required"] == ["command"] and bash["properties"]["timeout"]["type"] == "number"
    json.dumps(schemas)


def test_virtual_costs(tmp_path):
    from klong.agent.config import CommandCost

    tools, _ = _box(tmp_path, command_costs=[CommandCost(pattern=r"train\.py", seconds=3600)])
    assert tools.cost("bash", call(tools, "bash", command="echo python train.py")) == 3600
    assert tools.cost("bash", call(tools, "bash", command="ls")) == 60
    assert tools.cost("write_file", call(tools, "write_file", path="a", content="")) == 10


def test_a_hard_link_out_of_the_workspace_is_not_read(tmp_path):
    tools, ws = _box(tmp_path)
    os.link("/etc/passwd", ws.host_root / "passwd")
    for name, args in (
        ("read_file", {"path": "passwd"}),
        ("edit_file", {"path": "passwd", "old_text": "root", "new_text": "x"}),
    ):
        out = call(tools, name, **args)
        assert "hard links" in out.text and "root:" not in out.text
    assert "root:" not in call(tools, "search_files", pattern="root").text


def test_read_file_streams_and_reaches_every_character(tmp_path):
    """A 30 MB file of one line is read in parts without loading it (bounded memory), and every character of it can be
    reached by following the tool's own `start_char` hints; ordinary lines after it are read normally."""
    import re
    import tracemalloc

    tools, ws = _box(tmp_path, read_chars=4000)
    line = "".join(chr(ord("a") + (i % 26)) for i in range(30_000_000))
    (ws.host_root / "huge.txt").write_text(line + "\nnext line\n")
    tracemalloc.start()
    first = call(tools, "read_file", path="huge.txt")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000 and "(2 lines)" in first.text
    hint = re.search(r"start_line=1, start_char=(\d+)", first.text)
    assert hint and int(hint.group(1)) > 3000
    part = call(tools, "read_file", path="huge.txt", start_line=1, start_char=int(hint.group(1)))
    shown = part.text.split("\n")[1].split(": ", 1)[1]
    assert shown == line[int(hint.group(1)) - 1 :][: len(shown)] and len(shown) > 3000
    tail = call(tools, "read_file", path="huge.txt", start_line=1, start_char=29_999_990)
    assert line[-11:] in tail.text and "next line" in tail.text and "     2| next line" in tail.text
    assert "past its end" in call(tools, "read_file", path="huge.txt", start_line=5).text


def test_files_klong_writes_belong_to_the_agents_user(tmp_path):
    """Where the agent runs as another user (klong as root), what the file tools write is handed to that user."""
    if os.geteuid() != 0:
        pytest.skip("meaningful only when klong runs as root")
    task = make_task(tmp_path)
    ws = Workspace(tmp_path / "ws", "/workspace", owner=(65534, 65534))
    ws.prepare(task)
    sandbox = make_sandbox("local", tmp_path / "ws")
    tools = Toolbox(task, ws, sandbox, AgentConfig(mandatory_reading=False), VirtualClock())
    call(tools, "write_file", path="submission/deep/new/file.py", content="x = 1\n")
    for path in [
        ws.host_root,
        ws.paper_dir / "paper.md",
        ws.submission_dir / "deep",
        ws.submission_dir / "deep/new/file.py",
    ]:
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path
