"""The runtime and the CLI as a careless user and a flaky endpoint meet them: every infrastructure failure is
retried, resumable and reported; every bad input is a one-line error that changes nothing already written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from klong.agent.config import AgentConfig
from klong.cli import app
from klong.models import load_model
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.rollout.runner import read_summaries, run_rollouts
from klong.schema import read_trajectory
from tests.shared import shared_path
from tests.tasks import make_task

runner = CliRunner()
END = {"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {"summary": "x"}}]}
READ = {"content": "Reading.", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]}


def _run_args(task_dir: Path, out: Path, server, *extra: str) -> list[str]:
    return ["run", str(task_dir), "--model", "openai:m", "--base-url", server.base_url if server else "", "--out", str(out),
            "--clock", "virtual", "-c", "page_chars=100000", *extra]  # fmt: skip


def test_malformed_answers_are_retried_then_an_infrastructure_stop_that_resume_continues(tmp_path):
    """A 200 with a cut-off JSON body, a choice without a message, a tool call without a name, no choices: each is
    retried like a dropped connection; when retries run out the episode stops (`model_error`), `klong run` exits 1
    naming it, the other episodes finish, and `--resume` continues it; `summaries.jsonl` keeps one line per run."""
    for name in ("a", "b", "c"):
        make_task(tmp_path / "tasks", task_id=name, paragraphs=1)
    bad = [{"raw": '{"id": "x", "choices": [{"index": 0, "mess'},
           {"body": {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "finish_reason": "stop"}]}},
           {"tool_calls": [{"name": None, "arguments": {}}]},
           {"body": {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []}}]  # fmt: skip
    state = {"healthy": False, "victim": None, "n": 0}

    def respond(body):
        assistants = [m for m in body["messages"] if m["role"] == "assistant"]
        if not assistants:
            return READ
        first_call = assistants[0]["tool_calls"][0]["id"]  # unique per episode (the server numbers its answers)
        if not state["healthy"] and state["victim"] in (None, first_call):
            state["victim"] = first_call
            state["n"] += 1
            return bad[state["n"] % 4]
        return END

    out = tmp_path / "run"
    args = [*_run_args(tmp_path / "tasks", out, None), "--concurrency", "3", "--max-retries", "3"]
    with FakeOpenAIServer(respond) as server:
        args[args.index("--base-url") + 1] = server.base_url
        first = runner.invoke(app, args)
        assert first.exit_code == 1 and "infrastructure failure" in first.output and "Traceback" not in first.output
        assert sorted(s.stop_reason for s in read_summaries(out)) == ["end_task", "end_task", "model_error"]
        assert state["n"] == 4  # each of the four malformed answers, one attempt each (3 retries)
        state["healthy"] = True
        again = runner.invoke(app, [*args, "--resume"])
        assert again.exit_code == 0, again.output
    summaries = read_summaries(out)
    assert sorted(s.stop_reason for s in summaries) == ["end_task"] * 3 and len(summaries) == 3
    resumed = [read_trajectory(p) for p in (out / "trajectories").glob("*.json")]
    assert sum(bool(t.meta.get("resumed_after")) for t in resumed) == 1


def test_context_length_errors_in_a_row_shrink_the_view(tmp_path, qwen_tokenizer):
    task = make_task(tmp_path, paragraphs=1)
    work = [{"content": f"Step {i}.", "tool_calls": [{"name": "bash", "arguments": {"command": f"seq {100 + i}"}}]}
            for i in range(6)]  # fmt: skip
    replies = [READ, *work, *[{"context_length_error": True}] * 5, END]
    with FakeOpenAIServer(replies) as server:
        cfg = ModelConfig(base_url=server.base_url, max_retries=0, max_tokens=256)
        asyncio.run(run_rollouts([task], model_factory=lambda: load_model("openai:m", cfg), sandbox="local",
                                 config=AgentConfig(clock="virtual", page_chars=100000), out_dir=tmp_path / "run",
                                 tokenizer=qwen_tokenizer))  # fmt: skip
    traj = read_trajectory(tmp_path / "run" / "trajectories" / "toy__a0.json")
    assert traj.stop_reason.value == "end_task"
    assert [m for m in traj.messages if m.role == "assistant"][-1].meta["context"]["forced"] == 5


def test_an_echoed_api_key_never_reaches_a_file_or_the_console(tmp_path, monkeypatch):
    key = "sk-klong-echoed-0123456789abcdef"
    monkeypatch.setenv("KLONG_TEST_API_KEY", key)
    make_task(tmp_path / "tasks", paragraphs=1)

    def respond(body):
        return {"status": 401, "message": f"Invalid credentials: Authorization: Bearer {key}"}

    out = tmp_path / "run"
    with FakeOpenAIServer(respond) as server:
        result = runner.invoke(
            app, [*_run_args(tmp_path / "tasks", out, server), "--api-key-env", "KLONG_TEST_API_KEY"]
        )
    assert result.exit_code == 1 and key not in result.output and "[redacted]" in result.output
    for f in out.rglob("*"):
        if f.is_file():
            assert key not in f.read_text(errors="replace"), f
    assert "[redacted]" in read_summaries(out)[0].stop_detail


def test_an_agent_that_only_gets_refusals_is_stopped(tmp_path):
    """`end_task` before reading the paper, again and again: refused each time, and after `max_refusals` turns in a
    row the episode ends with its own stop reason instead of looping until the time limit."""
    from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn

    task = make_task(tmp_path, paragraphs=3)
    turn = ScriptedTurn(content="Stop.", tool_calls=[ScriptedCall(name="end_task", arguments={})])
    asyncio.run(run_rollouts([task], model_factory=lambda: ScriptedModel([turn], on_exhausted="repeat_last"),
                             sandbox="local", config=AgentConfig(clock="virtual", max_refusals=5, page_chars=200),
                             out_dir=tmp_path / "run"))  # fmt: skip
    traj = read_trajectory(tmp_path / "run" / "trajectories" / "toy__a0.json")
    assert traj.stop_reason.value == "refused" and traj.assistant_turns() == 5


def test_an_accepted_end_task_is_saved_with_its_stop_reason(tmp_path):
    """Every save in which the accepted `end_task` result appears also holds `stop_reason: end_task`, so a kill just
    after it cannot make the resumed episode run another turn; later calls of the same reply are not run."""
    from klong.agent.loop import Episode
    from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn
    from klong.sandbox import make_sandbox

    task = make_task(tmp_path, paragraphs=1)
    turns = [ScriptedTurn(tool_calls=[ScriptedCall(name="read_paper", arguments={"page": 1})]),
             ScriptedTurn(tool_calls=[ScriptedCall(name="end_task", arguments={}),
                                      ScriptedCall(name="bash", arguments={"command": "touch submission/after"})])]  # fmt: skip
    seen = []

    def on_update(traj, event):
        ended = any(m.role == "tool" and (m.content or "").startswith("Task ended") for m in traj.messages)
        seen.append((ended, traj.stop_reason))

    episode = Episode(task, ScriptedModel(turns), make_sandbox("local", tmp_path / "ws"),
                      AgentConfig(clock="virtual", page_chars=100000), tmp_path / "t.json", run_id="t",
                      on_update=on_update)  # fmt: skip
    traj = asyncio.run(episode.run())
    assert traj.stop_reason.value == "end_task" and not (tmp_path / "ws" / "submission" / "after").exists()
    assert all(stop is not None for ended, stop in seen if ended) and any(ended for ended, _ in seen)
    assert "[not run" in traj.messages[-1].content


@pytest.fixture
def finished_run(tmp_path):
    from klong.models.scripted import Script

    make_task(tmp_path / "tasks", paragraphs=1)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump(Script.model_validate({"turns": [READ, END]}).model_dump()))
    out = tmp_path / "run"
    base = ["run", str(tmp_path / "tasks" / "toy"), "--model", f"scripted:{script}", "--out", str(out), "--clock",
            "virtual", "-c", "page_chars=100000"]  # fmt: skip
    assert runner.invoke(app, base).exit_code == 0
    return base, out


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("flags", [
    ["--time-limit", "0"], ["--concurrency", "0"], ["--concurrency", "-4"], ["--attempts", "0"], ["--attempts", "-1"],
    ["--max-turns", "-1"], ["--max-turns", "0"], ["--temperature", "-3"], ["--max-len", "10"], ["--max-tokens", "-1"],
    ["-c", "bash_timeout=-1"], ["-c", "sandbox.max_processes=0"], ["-c", "page_chars=0"], ["--sandbox", "foo"],
    ["--model", "nosuchkind:x"], ["--model", "hf:/no/such/model"], ["--time-limit", "30m"],
])  # fmt: skip
def test_bad_input_changes_nothing(finished_run, flags):
    """On a finished run: each bad option (or other settings than the run's) is a one-line error, exit 2, and every
    file of the run dir is as it was, --redo included (a mistyped --model must not delete the finished run)."""
    base, out = finished_run
    before = _snapshot(out)
    for redo in ([], ["--redo"]):
        if flags == ["--time-limit", "30m"] and redo:
            continue  # other settings with --redo are a new run: that is what --redo is for (not an error)
        result = runner.invoke(app, [*base, *flags, *redo])
        assert result.exit_code == 2, (flags, redo, result.output)
        assert result.output.startswith("error: ") and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert _snapshot(out) == before, (flags, redo)


def test_redo_keeps_the_old_run_aside_and_one_summary_line(finished_run):
    base, out = finished_run
    assert runner.invoke(app, [*base, "--redo"]).exit_code == 0
    assert len(read_summaries(out)) == 1
    (kept,) = (out / "replaced").iterdir()
    assert read_trajectory(kept / "trajectory.json").stop_reason.value == "end_task" and (kept / "workspace").is_dir()


def test_other_bad_inputs_are_one_line_errors(tmp_path, tiny_model_dir):
    deep = {"id": "leaf", "requirements": "x", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
            "finegrained_task_category": None}  # fmt: skip
    for i in range(300):
        deep = {"id": f"n{i}", "requirements": "x", "weight": 1, "sub_tasks": [deep], "task_category": None,
                "finegrained_task_category": None}  # fmt: skip
    (tmp_path / "deep.json").write_text(json.dumps(deep))
    (tmp_path / "empty.json").write_text(json.dumps({"messages": []}))
    rubric = shared_path("paperbench", "fixtures", "rubrics", "hex_flag.json")
    sft_out = tmp_path / "sft"
    cases = [
        (["rubric", "validate", str(tmp_path / "deep.json")], "nested more than"),
        (["rubric", "stats", str(tmp_path / "deep.json")], "nested more than"),
        (["trajectory", "import", str(tmp_path / "empty.json"), "--from", "openai", "--out", str(tmp_path / "imp")],
         "is empty"),
        (["rubric", "score", str(rubric)], "ungraded rubric"),
        (["grade", str(tmp_path), "--task", str(tmp_path), "--judge", "check", "--out", str(tmp_path / "g.json"),
          "--sandbox", "foo"], "unknown sandbox"),
        (["sft", "-c", "model=/no/such/model", "-c", f"output_dir={sft_out}", "-c", "train_data=[x.parquet]"],
         "not a Hugging Face model folder"),
        (["sft", "-c", f"model={tiny_model_dir}", "-c", f"output_dir={sft_out}", "-c",
          f"train_data=[{tmp_path / 'missing.parquet'}]"], "training data not found"),
    ]  # fmt: skip
    for args, expected in cases:
        result = runner.invoke(app, args)
        assert result.exit_code in (1, 2) and expected in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not sft_out.exists()  # a failed `klong sft` wrote nothing


class _Killed(BaseException):
    """Stands for a SIGKILL of klong right after a save (nothing after it runs)."""


@pytest.mark.parametrize("first", ["read_file", "bash"])
def test_on_resume_only_the_first_pending_call_can_have_been_running(tmp_path, first):
    """klong killed right after saving a reply with two calls: on resume the first call, if it has side effects, is
    reported as interrupted (it may have run); a read-only first call is rerun; the later call runs normally."""
    from klong.agent.loop import Episode
    from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn
    from klong.sandbox import make_sandbox

    task = make_task(tmp_path, paragraphs=1)
    calls = {"read_file": ScriptedCall(name="read_file", arguments={"path": "paper/paper.md"}),
             "bash": ScriptedCall(name="bash", arguments={"command": "echo a >> submission/a"})}  # fmt: skip
    turns = [ScriptedTurn(tool_calls=[ScriptedCall(name="read_paper", arguments={"page": 1})]),
             ScriptedTurn(tool_calls=[calls[first], ScriptedCall(name="bash", arguments={"command": "echo b >> submission/b"})]),
             ScriptedTurn(tool_calls=[ScriptedCall(name="end_task", arguments={})])]  # fmt: skip
    path, config = tmp_path / "t.json", AgentConfig(clock="virtual", page_chars=100000)
    models = 0

    def kill_after_second_reply(traj, event):
        nonlocal models
        models += event == "model"
        if event == "model" and models == 2:
            raise _Killed

    with pytest.raises(_Killed):
        asyncio.run(Episode(task, ScriptedModel(turns), make_sandbox("local", tmp_path / "ws"), config, path, run_id="t",
                            on_update=kill_after_second_reply).run())  # fmt: skip
    resumed = Episode(task, ScriptedModel(turns), make_sandbox("local", tmp_path / "ws"), config, path, run_id="t")
    traj = asyncio.run(resumed.run(resume=True))
    results = [m.content for m in traj.messages if m.role == "tool"]
    assert traj.stop_reason.value == "end_task"
    assert sum("[interrupted" in r for r in results) == (first == "bash"), results
    assert (tmp_path / "ws" / "submission" / "b").read_text() == "b\n"  # the second call ran, once
    assert not (tmp_path / "ws" / "submission" / "a").exists()  # the reported call was not run again


def test_trajectory_stats_reads_a_run_dir(finished_run):
    """A run dir names its trajectories (not its meta.json or summaries)."""
    _, out = finished_run
    result = runner.invoke(app, ["trajectory", "stats", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert [r["assistant_turns"] for r in json.loads(result.stdout)["trajectories"]] == [2]
