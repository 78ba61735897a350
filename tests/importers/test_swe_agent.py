"""SWE-agent imports, checked against counts derived directly from the source files."""

import json

import pytest

from klong.exceptions import ImportFormatError, StopReason
from klong.importers import import_trajectory_file
from tests.shared import shared_path


def _files():
    folder = shared_path("trajectories", "swe-agent")
    files = sorted(folder.glob("*.traj"))
    assert len(files) == 22
    return files


def _expected(raw: dict) -> dict:
    """Counts from the raw file: every step of `trajectory` is one assistant turn (history when there are no steps);
    function-calling files make exactly one tool call per turn; steps missing from `history` add their assistant
    message plus an observation (dropped only for a final text-format step whose observation is empty)."""
    history = raw["history"]
    steps = raw.get("trajectory") or []
    hist_assistant = [m for m in history if m["role"] == "assistant"]
    function_calling = any(m.get("tool_calls") for m in history)
    hist_actions = [m.get("action", "").strip() for m in hist_assistant]
    missing = []
    remaining = list(hist_actions)
    for j, s in enumerate(steps):
        if s["action"].strip() in remaining:
            remaining.remove(s["action"].strip())
        else:
            missing.append(j)
    extra = 0
    for j in missing:
        last_and_empty = j == len(steps) - 1 and not steps[j]["observation"]
        extra += 2 if (function_calling or not last_and_empty) else 1
    turns = len(steps) if steps else len(hist_assistant)
    return {
        "messages": len(history) + extra,
        "assistant": turns,
        "tool_calls": turns if function_calling else 0,
        "function_calling": function_calling,
    }


@pytest.mark.parametrize("index", range(22))
def test_every_swe_agent_file_imports_with_every_turn(index):
    path = _files()[index]
    raw = json.loads(path.read_text())
    exp = _expected(raw)
    traj = import_trajectory_file(path, "swe-agent")

    assert len(traj.messages) == exp["messages"]
    assert traj.assistant_turns() == exp["assistant"]
    assert traj.tool_call_count() == exp["tool_calls"]
    # every step's action appears once, in order
    steps = raw.get("trajectory") or []
    if steps:
        actions = [(m.meta or {}).get("action", "").strip() for m in traj.messages if m.role == "assistant"]
        assert actions == [s["action"].strip() for s in steps]
    # the prefix (system prompt, demonstrations, task) is kept verbatim
    first_assistant = next(i for i, m in enumerate(raw["history"]) if m["role"] == "assistant")
    assert [m.content for m in traj.messages[:first_assistant]] == [
        m["content"] for m in raw["history"][:first_assistant]
    ]
    # in function-calling files every call is answered by the next message
    if exp["function_calling"]:
        for i, m in enumerate(traj.messages):
            if m.tool_calls:
                nxt = traj.messages[i + 1]
                assert nxt.role == "tool" and nxt.tool_call_id == m.tool_calls[0].id
    exit_status = (raw.get("info") or {}).get("exit_status")
    assert traj.stop_reason == (StopReason.END_TASK if exit_status == "submitted" else StopReason.UNKNOWN)


def test_step_missing_from_history_is_rebuilt():
    path = shared_path("trajectories", "swe-agent", "ctf_BabyEncryption.traj")
    raw = json.loads(path.read_text())
    traj = import_trajectory_file(path, "swe-agent")
    rebuilt = [m for m in traj.messages if (m.meta or {}).get("rebuilt_from")]
    assert len(rebuilt) == 1
    assert rebuilt[0].content == raw["trajectory"][8]["response"]
    i = traj.messages.index(rebuilt[0])
    assert traj.messages[i + 1].content == raw["trajectory"][8]["observation"]


def test_final_submit_of_function_calling_run_becomes_a_tool_call():
    path = next(shared_path("trajectories", "swe-agent").glob("gpt4__swe-agent-test-repo__*"))
    traj = import_trajectory_file(path, "swe-agent")
    last_call = traj.messages[-2]
    assert last_call.tool_calls[0].function.name == "submit"
    assert last_call.tool_calls[0].function.arguments == "{}"
    assert traj.messages[-1].role == "tool" and "diff --git" in traj.messages[-1].content


def test_malformed_swe_agent_file(tmp_path):
    bad = tmp_path / "x.traj"
    bad.write_text(json.dumps({"history": [{"role": "system", "content": "s"}, {"role": "alien", "content": "?"}]}))
    with pytest.raises(ImportFormatError, match=r"x.traj: history\[1\]: unknown role 'alien'"):
        import_trajectory_file(bad, "swe-agent")
    bad.write_text(json.dumps({"foo": 1}))
    with pytest.raises(ImportFormatError, match="not a SWE-agent trajectory"):
        import_trajectory_file(bad, "swe-agent")
