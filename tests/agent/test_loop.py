"""Episodes end to end with the scripted model, real local/bwrap sandboxes and a virtual clock."""

import asyncio
import json
import shutil

import pytest

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.exceptions import SandboxError, StopReason
from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn
from klong.rollout.runner import read_summaries, run_rollouts
from klong.schema import read_trajectory
from tests.tasks import make_task

SANDBOXES = [
    "local",
    pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="no bwrap")),
    pytest.param("docker", marks=pytest.mark.docker),
]


def T(content, *calls):
    return ScriptedTurn(content=content, tool_calls=[ScriptedCall(name=n, arguments=a) for n, a in calls])


def reading(pages: int) -> list[ScriptedTurn]:
    return [T(f"Reading page {p}.", ("read_paper", {"page": p})) for p in range(1, pages + 1)]


def run(task, turns, out, *, sandbox="local", model=None, **config):
    cfg = AgentConfig(**{"clock": "virtual", "time_limit": 7200, "page_chars": 2000, **config})
    summaries = asyncio.run(run_rollouts([task], model_factory=model or (lambda: ScriptedModel(turns)), sandbox=sandbox,
                                         config=cfg, out_dir=out))  # fmt: skip
    return read_trajectory(out / "trajectories" / f"{task.id}__a0.json"), summaries


def answered_in_order(traj):
    for i, m in enumerate(traj.messages):
        ids = [c.id for c in m.tool_calls or []]
        if ids:
            answers = [x.tool_call_id for x in traj.messages[i + 1 : i + 1 + len(ids)]]
            assert answers == ids


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_scripted_model_drives_every_tool(tmp_path, sandbox):
    task = make_task(tmp_path)
    turns = reading(3) + [
        T("Set up.", ("write_file", {"path": "submission/solve.py", "content": "print(40 + 2)\n"}),
          ("bash", {"command": "cd submission && python3 solve.py > result.txt && cat result.txt"})),
        T("Check.", ("read_file", {"path": "submission/result.txt"}), ("search_files", {"pattern": "42", "path": "submission"})),
        T("Fix.", ("edit_file", {"path": "submission/solve.py", "old_text": "40 + 2", "new_text": "6 * 7"}),
          ("python", {"code": "print(open('submission/solve.py').read())"})),
        T("Peek.", ("bash", {"command": f"cat {task.path}/rubric.json || echo no-rubric"})),
        T("Done.", ("end_task", {"summary": "result.txt holds 42"})),
    ]  # fmt: skip
    traj, summaries = run(task, turns, tmp_path / "run", sandbox=sandbox)
    assert traj.stop_reason is StopReason.END_TASK and traj.assistant_turns() == len(turns)
    answered_in_order(traj)
    results = {m.tool_call_id: m.content for m in traj.messages if m.role == "tool"}
    assert "42" in results["call_3_1"] and "6 * 7" in results["call_5_1"] and "result.txt:1: 42" in results["call_4_1"]
    ws = tmp_path / "run" / "workspaces" / "toy__a0"
    assert (ws / "submission" / "result.txt").read_text() == "42\n" and not (ws / "paper" / "rubric.json").exists()
    if sandbox != "local":  # the task dir (with the rubric) is out of the agent's reach
        assert "no-rubric" in results["call_6_0"] and "Result Analysis" not in results["call_6_0"]
    assert summaries[0].stop_reason == "end_task" and read_summaries(tmp_path / "run")[0].submission_files == 2
    # virtual time: 8 turns x 30 s + 3 pages x 30 s + 3 bash/python calls x 60 s + 5 other tools x 10 s
    assert traj.virtual_time == 8 * 30 + 3 * 30 + 3 * 60 + 5 * 10
    times = [m.virtual_time for m in traj.messages[2:]]
    assert times == sorted(times)


def test_timeout_is_a_normal_end(tmp_path):
    task = make_task(tmp_path, paragraphs=2)
    turns = reading(1) + [T("Work.", ("bash", {"command": "echo step >> submission/log.txt"}))]
    model = lambda: ScriptedModel(turns, on_exhausted="repeat_last")  # noqa: E731
    traj, _ = run(task, turns, tmp_path / "run", model=model, time_limit=1000, time_notices=[0.5, 0.9])
    assert traj.stop_reason is StopReason.TIMEOUT and traj.virtual_time >= 1000
    answered_in_order(traj)
    notices = [m.content for m in traj.messages if m.role == "tool" and "[time]" in (m.content or "")]
    assert len(notices) == 2 and "left of 16m 40s" in notices[0]
    assert (tmp_path / "run" / "workspaces" / "toy__a0" / "submission" / "log.txt").exists()


def test_scaffold_rules(tmp_path):
    task = make_task(tmp_path, paragraphs=2)
    turns = reading(1) + [
        T("Stop now?", ("end_task", {"summary": "early"})),
        T("Thinking without a tool."),
        T("Now.", ("end_task", {"summary": "done"})),
    ]
    traj, _ = run(task, turns, tmp_path / "run", min_end_turns=4)
    assert traj.stop_reason is StopReason.END_TASK
    texts = [m.content for m in traj.messages if m.role in ("tool", "user")]
    assert any("end_task refused" in t for t in texts) and any("contained no tool call" in t for t in texts)
    capped, _ = run(task, turns, tmp_path / "capped", max_turns=2, min_end_turns=10)
    assert capped.stop_reason is StopReason.MAX_TURNS and capped.assistant_turns() == 2


def test_model_failure_ends_the_episode_without_telling_the_model(tmp_path):
    task = make_task(tmp_path, paragraphs=2)
    traj, _ = run(task, reading(1), tmp_path / "run")
    assert traj.stop_reason is StopReason.MODEL_ERROR and "script has 1 turns" in traj.stop_detail
    assert all("script" not in (m.content or "") for m in traj.messages if m.role != "system")


def test_sandbox_failure_ends_the_episode(tmp_path):
    from klong.agent.loop import Episode
    from klong.sandbox.base import SandboxConfig
    from klong.sandbox.local import LocalSandbox

    class DeadSandbox(LocalSandbox):
        async def run(self, argv, *, timeout, stdin=None):
            raise SandboxError("container died")

    task = make_task(tmp_path, paragraphs=2)
    model = ScriptedModel(reading(1) + [T("x", ("bash", {"command": "ls"}))])
    episode = Episode(task, model, DeadSandbox(tmp_path / "ws", SandboxConfig()), AgentConfig(clock="virtual"),
                      tmp_path / "t.json", run_id="t")  # fmt: skip
    traj = asyncio.run(episode.run())
    assert traj.stop_reason is StopReason.SANDBOX_ERROR and traj.stop_detail == "container died"
    assert "container died" not in json.dumps([m.content for m in traj.messages])


def test_blacklist_violation_is_recorded(tmp_path):
    task = make_task(tmp_path, paragraphs=2)
    turns = reading(1) + [
        T("Get code.", ("bash", {"command": "cd /tmp\ngit clone https://github.com/authors/toy.git || true"})),
        T("Done.", ("end_task", {})),
    ]
    traj, summaries = run(task, turns, tmp_path / "run")
    violations = traj.meta["monitor"]["blacklist_violations"]
    assert len(violations) == 1 and violations[0]["resource"] == "https://github.com/authors/toy"
    assert summaries[0].blacklist_violations == 1


def test_views_follow_the_context_policy(tmp_path, qwen_tokenizer):
    """The model gets the policy's view at every call: it fits, it keeps the paper reading, epochs restart."""
    from klong.agent.loop import Episode
    from klong.chat.render import ChatRenderer
    from klong.sandbox import make_sandbox

    task = make_task(tmp_path, paragraphs=6)
    turns = reading(2) + [T(f"Step {i}.", ("bash", {"command": f"seq 1 {150 + i}"})) for i in range(25)]
    turns.append(T("Done.", ("end_task", {})))
    seen = []

    class Recording(ScriptedModel):
        async def generate(self, messages, tools=None):
            seen.append(list(messages))
            return await super().generate(messages, tools)

    cfg = AgentConfig(clock="virtual", page_chars=1600, time_limit=10**6,
                      context=ContextConfig(max_context_tokens=5000, overlap_tokens=800, pin_marker="[end of paper]"))  # fmt: skip
    box = make_sandbox("local", tmp_path / "ws")
    episode = Episode(task, Recording(turns), box, cfg, tmp_path / "t.json", run_id="t", tokenizer=qwen_tokenizer)
    traj = asyncio.run(episode.run())
    assert traj.stop_reason is StopReason.END_TASK
    renderer = ChatRenderer(qwen_tokenizer, traj.tools, traj.messages[0])
    reading_msgs = traj.messages[: 2 + 4]  # system, task, 2 x (read_paper call + page)
    epochs = {(m.meta or {}).get("context", {}).get("epoch") for m in traj.messages if m.role == "assistant"}
    assert len(epochs) > 2
    for view in seen:
        assert len(renderer.render_prompt(view)) <= 5000
        if len(view) >= len(reading_msgs):
            assert view[: len(reading_msgs)] == reading_msgs


def test_a_resumed_episode_keeps_the_context_settings_it_started_with(tmp_path, qwen_tokenizer):
    """An episode saved mid-run and resumed under another configuration goes on with the views it began with: the
    recorded settings, so that its split windows are still what the model was given (checked call by call)."""
    from klong.agent.loop import Episode
    from klong.data.split import split_trajectory
    from klong.sandbox import make_sandbox
    from klong.schema import write_trajectory

    task = make_task(tmp_path, paragraphs=2)
    turns = [T(f"Step {i}.", ("bash", {"command": f"seq 1 {40 + i}"})) for i in range(16)] + [
        T("Done.", ("end_task", {}))
    ]
    started = AgentConfig(clock="virtual", mandatory_reading=False, max_turns=6,
                          context=ContextConfig(max_context_tokens=2200, overlap_tokens=300))  # fmt: skip
    path = tmp_path / "t.json"
    first = asyncio.run(Episode(task, ScriptedModel(turns), make_sandbox("local", tmp_path / "ws"), started, path,
                                run_id="t", tokenizer=qwen_tokenizer).run())  # fmt: skip
    first.stop_reason = None  # as if killed after turn 6
    write_trajectory(path, first)
    later = AgentConfig(clock="virtual", mandatory_reading=False, context=ContextConfig(max_context_tokens=30000))
    traj = asyncio.run(Episode(task, ScriptedModel(turns), make_sandbox("local", tmp_path / "ws"), later, path,
                               run_id="t", tokenizer=qwen_tokenizer).run(resume=True))  # fmt: skip
    assert traj.stop_reason is StopReason.END_TASK and traj.meta["context"]["max_context_tokens"] == 2200
    assert len({m.meta["context"]["epoch"] for m in traj.messages if m.role == "assistant"}) >= 2
    assert split_trajectory(traj, qwen_tokenizer).checked_calls == traj.assistant_turns()
