import json

import pytest

from klong.exceptions import ImportFormatError, StopReason
from klong.importers import import_trajectory_file
from tests.shared import shared_path


@pytest.mark.parametrize("name", ["github_issue.traj.json", "local.traj.json"])
def test_mini_swe_agent_files(name):
    path = shared_path("trajectories", "mini-swe-agent", name)
    raw = json.loads(path.read_text())
    traj = import_trajectory_file(path, "mini-swe-agent")
    assert [m.role for m in traj.messages] == [m["role"] for m in raw]
    assert [m.content for m in traj.messages] == [m["content"] for m in raw]
    assert traj.assistant_turns() == sum(m["role"] == "assistant" for m in raw)
    assert traj.tool_call_count() == 0
    for m in traj.messages:
        if m.role == "assistant":
            assert m.meta["action"] in m.content


def test_new_format_with_info(tmp_path):
    path = tmp_path / "run.traj.json"
    path.write_text(
        json.dumps(
            {
                "info": {
                    "exit_status": "Submitted",
                    "submission": "diff",
                    "config": {"model": {"model_name": "gpt-x"}},
                },
                "messages": [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": "u"},
                    {"role": "assistant", "content": "t\n```bash\nls -la\n```"},
                    {"role": "user", "content": "<output>ok</output>"},
                ],
                "trajectory_format": "mini-swe-agent-1",
            }
        )
    )
    traj = import_trajectory_file(path, "mini-swe-agent")
    assert traj.id == "run"
    assert traj.model == "gpt-x"
    assert traj.stop_reason is StopReason.END_TASK
    assert traj.messages[2].meta == {"action": "ls -la"}


def test_bad_message(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"role": "system", "content": "s"}, "oops"]))
    with pytest.raises(ImportFormatError, match=r"bad.json: messages\[1\]: expected a JSON object"):
        import_trajectory_file(path, "mini-swe-agent")
