import json

import pytest
from typer.testing import CliRunner

from klong import __version__
from klong.cli import app
from klong.schema import read_trajectory
from tests.shared import shared_path

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_import_and_stats_all_shared_trajectories(tmp_path, qwen_tokenizer_dir):
    swe = sorted(shared_path("trajectories", "swe-agent").glob("*.traj"))
    mini = sorted(shared_path("trajectories", "mini-swe-agent").glob("*.json"))
    out = tmp_path / "imported"
    r1 = runner.invoke(app, ["trajectory", "import", *map(str, swe), "--from", "swe-agent", "--out", str(out)])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, ["trajectory", "import", *map(str, mini), "--from", "mini-swe-agent", "--out", str(out)])
    assert r2.exit_code == 0, r2.output
    files = sorted(out.glob("*.json"))
    assert len(files) == 24

    result = runner.invoke(app, ["trajectory", "stats", str(out), "--tokenizer", str(qwen_tokenizer_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {r["id"]: r for r in report["trajectories"]}
    assert len(rows) == 24
    # counts derived independently from the source files
    expected_assistant = 0
    for src in swe:
        raw = json.loads(src.read_text())
        steps = raw.get("trajectory") or []
        expected_assistant += len(steps) or sum(m["role"] == "assistant" for m in raw["history"])
    for src in mini:
        expected_assistant += sum(m["role"] == "assistant" for m in json.loads(src.read_text()))
    assert report["total"]["assistant_turns"] == expected_assistant
    assert report["total"]["messages"] == sum(len(read_trajectory(f).messages) for f in files)
    assert all(r["tokens"] > 0 for r in rows.values())
    assert report["total"]["tokens"] == sum(r["tokens"] for r in rows.values())

    table = runner.invoke(app, ["trajectory", "stats", str(out)])
    assert table.exit_code == 0 and "total (24)" in table.output


def test_bad_files_are_reported_and_good_ones_kept(tmp_path):
    good = shared_path("trajectories", "mini-swe-agent", "local.traj.json")
    truncated = tmp_path / "cut.json"
    truncated.write_text(good.read_text()[:100])
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["trajectory", "import", str(truncated), str(good), "--from", "mini-swe-agent", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "cut.json" in result.output and "truncated" in result.output
    assert [p.name for p in out.iterdir()] == ["local.json"]
    assert truncated.read_text() == good.read_text()[:100]


def test_unknown_format_and_missing_target(tmp_path):
    result = runner.invoke(app, ["trajectory", "import", "x.json", "--from", "langchain", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown format 'langchain'" in result.output
    result = runner.invoke(app, ["trajectory", "stats", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "none: no such file or folder" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_split_command(tmp_path, qwen_tokenizer_dir):
    import pyarrow.parquet as pq

    swe = sorted(shared_path("trajectories", "swe-agent").glob("*.traj"))
    imported = tmp_path / "imported"
    assert (
        runner.invoke(
            app, ["trajectory", "import", *map(str, swe), "--from", "swe-agent", "--out", str(imported)]
        ).exit_code
        == 0
    )
    out = tmp_path / "w.parquet"
    args = ["split", str(imported), "--tokenizer", str(qwen_tokenizer_dir), "--max-len", "4096", "--overlap", "1024",
            "--pin-turns", "2", "--max-prefix", "2048", "--out", str(out), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    table = pq.read_table(out)
    assert stats["trajectories"] == 22 and stats["windows"] == table.num_rows > 22
    assert stats["tokens"] == sum(table.column("num_tokens").to_pylist())
    mask = "assistant_masks" if "assistant_masks" in table.column_names else "loss_mask"  # renamed in windows v2
    assert stats["trained_tokens"] == sum(sum(m) for m in table.column(mask).to_pylist())
    assert max(table.column("num_tokens").to_pylist()) <= 4096
    assert stats["duplication"] > 1.0

    bad = runner.invoke(app, ["split", str(imported), "--tokenizer", str(qwen_tokenizer_dir), "--max-len", "1000",
                              "--overlap", "900", "--out", str(tmp_path / "x.parquet")])  # fmt: skip
    assert bad.exit_code == 2 and "exceed the window" in bad.output
    assert not (tmp_path / "x.parquet").exists()


def test_run_command_batch_skip_redo(tmp_path):
    import yaml

    from tests.tasks import make_task

    make_task(tmp_path / "tasks", task_id="alpha", paragraphs=2)
    make_task(tmp_path / "tasks", task_id="beta", paragraphs=2)
    script = tmp_path / "s.yaml"
    script.write_text(yaml.safe_dump({"turns": [
        {"content": "r", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]},
        {"content": "w", "tool_calls": [{"name": "write_file", "arguments": {"path": "submission/x.txt", "content": "1"}}]},
        {"content": "e", "tool_calls": [{"name": "end_task", "arguments": {}}]}]}))  # fmt: skip
    out = tmp_path / "run"
    args = ["run", str(tmp_path / "tasks"), "--model", f"scripted:{script}", "--out", str(out), "--clock", "virtual",
            "--attempts", "2", "--concurrency", "3", "--time-limit", "1h"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in (out / "trajectories").iterdir()) == [
        "alpha__a0.json",
        "alpha__a1.json",
        "beta__a0.json",
        "beta__a1.json",
    ]
    assert len((out / "summaries.jsonl").read_text().splitlines()) == 4
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["time_limit"] == 3600 and config["clock"] == "virtual"
    assert json.loads((out / "meta.json").read_text())["extra"]["attempts"] == 2
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "no runs needed running" in again.output
    redo = runner.invoke(app, [*args, "--redo"])
    # one line per run; the replaced runs are kept aside, not deleted
    assert redo.exit_code == 0 and len((out / "summaries.jsonl").read_text().splitlines()) == 4
    assert len(list((out / "replaced").iterdir())) == 4

    # an unfinished trajectory is not silently overwritten
    traj = json.loads((out / "trajectories" / "alpha__a0.json").read_text())
    traj["stop_reason"] = None
    (out / "trajectories" / "alpha__a0.json").write_text(json.dumps(traj))
    blocked = runner.invoke(app, args)
    assert blocked.exit_code == 2 and "unfinished run" in blocked.output and "--resume" in blocked.output


def test_rubric_and_grade_commands(tmp_path):
    from klong.task import Task, write_task

    rubric = shared_path("paperbench", "papers", "semantic-self-consistency", "rubric.json")
    r = runner.invoke(app, ["rubric", "validate", str(rubric)])
    assert r.exit_code == 0 and "valid (100 nodes, 77 leaves, depth 5)" in r.output
    stats = json.loads(runner.invoke(app, ["rubric", "stats", str(rubric), "--json"]).output)
    assert stats["leaves"] == 77 and stats["max_depth"] == 5
    assert "Code Development" in runner.invoke(app, ["rubric", "show", str(rubric), "--depth", "9"]).output

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "r", "requirements": "x", "weight": -2, "sub_tasks": [], "task_category": "Code Development",
                               "finegrained_task_category": None}))  # fmt: skip
    r = runner.invoke(app, ["rubric", "validate", str(bad)])
    assert r.exit_code == 2 and "bad.json: invalid rubric: root: `weight` must be >= 0" in r.output

    human = shared_path("paperbench", "judge_eval", "semantic-self-consistency", "expected_result.json")
    scored = json.loads(runner.invoke(app, ["rubric", "score", str(human), "--json"]).output)
    assert scored["score"] == pytest.approx(scored["recorded_score"])
    code = json.loads(runner.invoke(app, ["rubric", "score", str(human), "--code-only", "--json"]).output)
    assert set(code["per_category"]) == {"Code Development"}

    task_rubric = {"id": "r", "requirements": "p", "weight": 1, "task_category": None, "finegrained_task_category": None,
                   "sub_tasks": [{"id": "a", "requirements": "result.txt exists", "weight": 1, "sub_tasks": [],
                                  "task_category": "Result Analysis", "finegrained_task_category": None,
                                  "check": {"command": "test -f result.txt", "needs_reproduction": True}}]}  # fmt: skip
    write_task(tmp_path / "task", Task(id="t", paper="# P\n", rubric=task_rubric))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "reproduce.sh").write_text("echo 1 > result.txt\n")
    out = tmp_path / "g.json"
    r = runner.invoke(
        app, ["grade", str(sub), "--task", str(tmp_path / "task"), "--judge", "check", "--out", str(out), "--json"]
    )
    assert r.exit_code == 0 and json.loads(r.output)["invalid"] == 1  # not reproduced yet
    r = runner.invoke(app, ["reproduce", str(sub), "--timeout", "30s"])
    assert r.exit_code == 0 and "exit code 0" in r.output
    repro = tmp_path / "sub.reproduced"
    assert (repro / "reproduce.log").exists() and json.loads((repro / "reproduce.json").read_text())["exit_code"] == 0
    r = runner.invoke(
        app, ["grade", str(repro), "--task", str(tmp_path / "task"), "--judge", "check", "--out", str(out), "--json"]
    )
    assert r.exit_code == 0 and json.loads(r.output)["score"] == 1.0
    assert json.loads(out.read_text())["graded_task_tree"]["sub_tasks"][0]["score"] == 1.0

    cmp = runner.invoke(app, ["grade", "compare", str(human), str(human), "--json"])
    assert cmp.exit_code == 0 and json.loads(cmp.output)["overall"]["agreement"] == 1.0
    assert runner.invoke(app, ["grade", str(sub)]).exit_code == 2


def test_split_defaults_come_from_the_run(tmp_path, qwen_tokenizer, qwen_tokenizer_dir):
    """A klong rollout split with no flags uses the settings it recorded and is checked call by call; a flag overrides
    them (said so, unchecked); imported trajectories need --max-len; no window is an error that writes nothing."""
    import asyncio

    from klong.agent.config import AgentConfig
    from klong.chat.context import ContextConfig
    from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn
    from klong.rollout.runner import run_rollouts
    from tests.tasks import make_task

    task = make_task(tmp_path, paragraphs=2)
    turns = [ScriptedTurn(content=f"Step {i}.", tool_calls=[ScriptedCall(name="bash", arguments={"command": f"seq {80 + i}"})])
             for i in range(10)]  # fmt: skip
    agent = AgentConfig(clock="virtual", mandatory_reading=False, max_turns=10,
                        context=ContextConfig(max_context_tokens=2500, overlap_tokens=300, reserve_tokens=64))  # fmt: skip
    run = tmp_path / "run"
    asyncio.run(run_rollouts([task], model_factory=lambda: ScriptedModel(turns), sandbox="local", config=agent,
                             out_dir=run, tokenizer=qwen_tokenizer))  # fmt: skip
    out = tmp_path / "w.parquet"
    plain = runner.invoke(app, ["split", str(run / "trajectories"), "--tokenizer", str(qwen_tokenizer_dir), "--out",
                                str(out), "--json"])  # fmt: skip
    assert plain.exit_code == 0, plain.output
    stats = json.loads(plain.stdout)
    assert stats["checked_calls"] == 10 and stats["windows"] >= 2
    table = pq_table(out)
    assert all(table["checked"]) and max(table["num_tokens"]) <= 2500

    wider = runner.invoke(app, ["split", str(run / "trajectories"), "--tokenizer", str(qwen_tokenizer_dir), "--out",
                                str(tmp_path / "wide.parquet"), "--max-len", "30000", "--json"])  # fmt: skip
    assert wider.exit_code == 0 and "override the settings the runs recorded" in wider.stderr
    assert json.loads(wider.stdout)["windows"] == 1 and json.loads(wider.stdout)["checked_calls"] == 0

    swe = sorted(shared_path("trajectories", "swe-agent").glob("*.traj"))[:2]
    imported = tmp_path / "imported"
    runner.invoke(app, ["trajectory", "import", *map(str, swe), "--from", "swe-agent", "--out", str(imported)])
    need = runner.invoke(app, ["split", str(imported), "--tokenizer", str(qwen_tokenizer_dir), "--out", str(out)])
    assert need.exit_code == 2 and "pass --max-len" in need.output
    before = out.read_bytes()
    none = runner.invoke(app, ["split", str(imported), "--tokenizer", str(qwen_tokenizer_dir), "--out", str(out),
                               "--max-len", "400", "--overlap", "0", "--max-prefix", "100"])  # fmt: skip
    assert none.exit_code == 2 and "no training windows" in none.output and out.read_bytes() == before
    tok = runner.invoke(app, ["split", str(run / "trajectories"), "--out", str(out)])
    assert tok.exit_code == 2 and "--tokenizer is needed" in tok.output  # a scripted run names no model folder


def pq_table(path):
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pydict()
