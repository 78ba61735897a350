"""The conventions every command follows (`klong.cli.common`), checked on the real CLI: `-h`, help and defaults,
`--json`, `--resume`/`--redo`, and error messages that say what to do."""

import json

import pytest
import typer
import yaml
from typer.core import TyperOption
from typer.testing import CliRunner

from klong.cli import app
from tests.shared import shared_path

runner = CliRunner()

DEFAULTS_OWNED_ELSEWHERE: dict[str, str] = {}
JSON_OWNED_ELSEWHERE: dict[str, str] = {}
"""Commands whose file belongs to another part of the code base, with what they still lack (reported, not fixed)."""


def _commands(group=None, path=()):
    group = group or typer.main.get_command(app)
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = [(p, c) for p, c in _commands() if not hasattr(c, "commands")]
GROUPS = [p for p, c in _commands() if hasattr(c, "commands")]


def _param(path, owned_elsewhere):
    name = " ".join(path)
    reason = owned_elsewhere.get(name)
    return pytest.param(path, id=name, marks=pytest.mark.xfail(reason=reason) if reason else ())


def _command(path):
    return dict(COMMANDS)[tuple(path)]


@pytest.mark.parametrize("path", [*GROUPS, *(p for p, _ in COMMANDS)], ids=lambda p: " ".join(p) or "klong")
def test_dash_h_is_help_everywhere(path):
    result = runner.invoke(app, [*path, "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


@pytest.mark.parametrize("path", [_param(p, DEFAULTS_OWNED_ELSEWHERE) for p, _ in COMMANDS])
def test_every_option_has_help_and_shows_its_default(path):
    """A flag that is off unless given shows nothing (typer's convention); every other option shows a value, or the
    text saying where its default comes from when that is resolved later."""
    problems = []
    for opt in (p for p in _command(path).params if isinstance(p, TyperOption) and not p.hidden):
        name = "/".join(opt.opts + opt.secondary_opts)
        if not opt.help:
            problems.append(f"{name}: no help")
        plain_flag = opt.is_bool_flag and not opt.secondary_opts and not opt.default
        shown = isinstance(opt.show_default, str) or (opt.show_default and opt.default not in (None, [], ()))
        if not (opt.required or plain_flag or shown):
            problems.append(f"{name}: default {opt.default!r} not shown")
    assert not problems


@pytest.mark.parametrize(
    "path", [_param(p, JSON_OWNED_ELSEWHERE) for p, _ in COMMANDS if p != ("factory", "fake-server")]
)
def test_every_command_that_prints_a_result_takes_json(path):
    assert "--json" in {o for p in _command(path).params for o in getattr(p, "opts", [])}


def test_resume_and_redo_are_spelled_the_same_everywhere():
    """Every command that can find earlier work in its output takes --resume and --redo: a `--resume/--redo` pair
    defaulting to resume for batch stages, two flags (neither: refuse half-done state) for the long jobs."""
    pairs, flags = set(), set()
    for path, cmd in COMMANDS:
        opts = {o: p for p in cmd.params if isinstance(p, TyperOption) for o in p.opts + p.secondary_opts}
        if "--resume" not in opts and "--redo" not in opts:
            assert "--no-resume" not in opts, path
            continue
        if opts["--resume"] is opts["--redo"]:
            assert opts["--resume"].default is True, path
            pairs.add(path)
        else:
            assert opts["--resume"].default is False and opts["--redo"].default is False, path
            flags.add(path)
    factory_stages = {("factory", s) for s in ("collect", "enrich", "select", "decontam", "fetch", "convert",
                                               "blacklist", "draft", "check", "package")}  # fmt: skip
    assert pairs >= factory_stages | {("demo",)}  # batch stages (also `klong grade RUN_DIR`)
    evals = {p for p in flags if p[0] == "eval"}  # `klong eval BENCHMARK` runs episodes as `klong run` does
    assert flags - evals == {("run",), ("sft",), ("rl",)} and ("eval", "paperbench") in evals


def test_run_help_shows_what_unset_options_resolve_to():
    from klong.agent.clock import format_duration
    from klong.agent.config import AgentConfig
    from klong.models.config import ModelConfig

    agent, gen = AgentConfig(), ModelConfig()
    shown = {o.opts[0]: o.show_default for o in _command(["run"]).params if isinstance(o, TyperOption)}
    assert shown["--time-limit"].endswith(format_duration(agent.time_limit).replace(" 00m", ""))
    assert shown["--clock"].endswith(agent.clock)
    assert shown["--max-len"].endswith(str(agent.context.max_context_tokens))
    assert shown["--temperature"] == str(gen.temperature) and shown["--max-tokens"] == str(gen.max_tokens)
    text = runner.invoke(app, ["run", "-h"], env={"COLUMNS": "250"}).output
    assert "[default: (-c config, else the task's, else 2h)]" in text


def test_factory_stages_resume_by_default_and_redo_on_request(tmp_path):
    args = ["factory", "collect", "--dir", str(tmp_path / "f"), "--local", "examples/factory", "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["papers"] == 1
    for again in ([], ["--resume"], ["--redo"], ["--no-resume"]):  # --no-resume: the old spelling of --redo
        result = runner.invoke(app, [*args, *again])
        assert result.exit_code == 0, (again, result.output)
        assert json.loads(result.stdout)["papers"] == 1
    assert "--no-resume" not in runner.invoke(app, ["factory", "collect", "-h"], env={"COLUMNS": "250"}).output


def test_long_jobs_refuse_resume_with_redo(tmp_path):
    for args in (["run", str(tmp_path), "--model", "scripted:x.yaml", "--out", str(tmp_path / "o")],
                 ["sft", "-c", "model=m", "-c", "output_dir=o", "-c", "train_data=[x]"],
                 ["rl", "-c", "x.yaml"]):  # fmt: skip
        result = runner.invoke(app, [*args, "--resume", "--redo"])
        assert result.exit_code == 2 and "--resume and --redo exclude each other" in result.output


def test_demo_refuses_an_out_holding_another_demo(tmp_path):
    from klong.demo.pipeline import DemoConfig

    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_config.json").write_text(DemoConfig.quick(1).model_dump_json())
    result = runner.invoke(app, ["demo", "--quick", "--seed", "2", "--out", str(out)])
    assert result.exit_code == 2
    assert "holds a demo with other settings (seed)" in result.output and "--redo" in result.output


def _tiny_windows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [[(7 * i + 3 * j) % 5000 + 100 for j in range(40)] for i in range(4)]
    path = tmp_path / "w.parquet"
    pq.write_table(pa.table({"input_ids": ids, "loss_mask": [[0] * 20 + [1] * 20] * 4,
                             "trajectory_id": ["a", "a", "b", "b"], "window": [0, 1, 0, 1]}), path)  # fmt: skip
    return path


@pytest.fixture
def restore_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # two real SFT runs; .ci/run runs the slow tier
def test_sft_refuses_earlier_checkpoints_redo_sets_them_aside_and_threads_are_applied(
    tmp_path, tiny_model_dir, monkeypatch, restore_torch_threads
):
    import torch

    out = tmp_path / "sft"
    args = ["sft", "-c", f"model={tiny_model_dir}", "-c", f"output_dir={out}", "-c", f"train_data=[{_tiny_windows(tmp_path)}]",
            "-c", "pack_length=128", "-c", "rows_per_step=1", "-c", "max_steps=2", "-c", "gradient_checkpointing=false",
            "--json"]  # fmt: skip
    torch.set_num_threads(2)
    monkeypatch.setenv("KLONG_TORCH_THREADS", "1")
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["step"] == 2 and (out / "final" / "config.json").exists()
    assert torch.get_num_threads() == 1 and "torch threads: 1 (KLONG_TORCH_THREADS=1" in first.stderr
    assert json.loads((out / "meta.json").read_text())["extra"]["torch_threads"] == 1

    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output and "--redo" in again.output
    monkeypatch.delenv("KLONG_TORCH_THREADS")
    redo = runner.invoke(app, [*args, "-c", "torch_threads=2", "--redo"])
    assert redo.exit_code == 0, redo.output
    assert (out / "replaced" / "0" / "checkpoints").is_dir() and (out / "replaced" / "0" / "final").is_dir()
    assert (out / "final" / "config.json").exists() and torch.get_num_threads() == 2
    assert json.loads((out / "meta.json").read_text())["extra"]["torch_threads_reason"] == "torch_threads in the config"
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0 and json.loads(resumed.stdout)["output_dir"] == str(out)


@pytest.mark.slow  # real RL iterations; .ci/run runs the slow tier
def test_rl_refuses_an_earlier_run_untouched_redo_sets_it_aside_and_progress_numbers_from_1(tmp_path, tiny_model_dir):
    from tests.train.test_rl import synthetic_tasks

    out = tmp_path / "rl"
    args = ["rl", "-c", f"policy={tiny_model_dir}", "-c", f"output_dir={out}", "-c",
            f"tasks=[{synthetic_tasks(tmp_path / 'tasks', n=1)}]", "-c", "stages=[{timeout: 1m, iterations: 1}]",
            "-c", "tasks_per_iteration=1", "-c", "group_size=2", "-c", "agent.clock=virtual",
            "-c", "agent.mandatory_reading=false", "-c", "agent.context.max_context_tokens=4096",
            "-c", "generation.max_tokens=8", "-c", "generation.seed=0", "-c", "gradient_checkpointing=false",
            "-c", "pack_length=4096", "-c", "torch_threads=1", "--json"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert [r["iteration"] for r in json.loads(first.stdout)["iterations"]] == [1]
    assert "RL stage 1/1 (timeout 1m 00s), iteration 1/1: reward" in first.stderr
    config = (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(config + "# the run's own\n")

    again = runner.invoke(app, [*args, "-c", "learning_rate=1e-3"])
    assert again.exit_code == 2 and "--resume" in again.output and "--redo" in again.output
    assert (out / "config.yaml").read_text() == config + "# the run's own\n"  # nothing of the refused run written
    redo = runner.invoke(app, [*args, "--redo"])
    assert redo.exit_code == 0, redo.output
    assert json.loads((out / "replaced" / "0" / "state.json").read_text())["done"] == 1
    assert (out / "replaced" / "0" / "config.yaml").read_text().endswith("# the run's own\n")
    assert json.loads((out / "state.json").read_text())["done"] == 1


def test_import_names_the_format_a_file_looks_like(tmp_path):
    swe = shared_path("trajectories", "swe-agent", "ctf_eps.traj")
    result = runner.invoke(app, ["trajectory", "import", str(swe), "--from", "openai", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "does not have the openai format: it looks like a swe-agent trajectory" in result.stderr
    assert "--from swe-agent" in result.stderr

    ok = runner.invoke(app, ["trajectory", "import", str(swe), "--from", "swe-agent", "--out", str(tmp_path / "o"),
                             "--json"])  # fmt: skip
    report = json.loads(ok.stdout)
    assert ok.exit_code == 0 and report["failed"] == [] and report["imported"][0]["assistant_turns"] > 0
    klong_file = report["imported"][0]["out"]
    again = runner.invoke(app, ["trajectory", "import", klong_file, "--from", "openai", "--out", str(tmp_path / "p"),
                                "--json"])  # fmt: skip
    assert again.exit_code == 1 and "klong trajectory already" in json.loads(again.stdout)["failed"][0]["error"]

    calls = tmp_path / "calls.json"
    calls.write_text(json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": None,
                     "tool_calls": [{"id": "c", "type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
                     {"role": "tool", "tool_call_id": "c", "content": "a"}]))  # fmt: skip
    mini = runner.invoke(app, ["trajectory", "import", str(calls), "--from", "mini-swe-agent", "--out", str(tmp_path)])
    assert (
        mini.exit_code == 1 and "it looks like an openai trajectory" in mini.stderr and "--from openai" in mini.stderr
    )


def test_a_hub_id_as_tokenizer_or_model_says_how_to_get_a_local_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t").mkdir()
    result = runner.invoke(app, ["trajectory", "stats", "t", "--tokenizer", "Qwen/Qwen2.5-7B-Instruct"])
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and "klong reads local folders only" in line
    assert "hf download Qwen/Qwen2.5-7B-Instruct --local-dir models/Qwen2.5-7B-Instruct" in line
    sft = runner.invoke(app, ["sft", "-c", "model=Qwen/Qwen2.5-7B-Instruct", "-c", "output_dir=o", "-c",
                              "train_data=[w.parquet]"])  # fmt: skip
    assert sft.exit_code == 2 and "hf download Qwen/Qwen2.5-7B-Instruct" in sft.stderr
    for local in ("nowhere", "t/typo"):  # not org/name; a folder that exists, then a typo
        plain = runner.invoke(app, ["trajectory", "stats", "t", "--tokenizer", local])
        assert plain.exit_code == 2 and "tokenizer folder not found" in plain.stderr and "Hub id" not in plain.stderr


def test_rubric_validate_and_show_print_json(tmp_path):
    rubric = shared_path("paperbench", "papers", "semantic-self-consistency", "rubric.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "r", "requirements": "x", "weight": -2, "sub_tasks": [],
                               "task_category": "Code Development", "finegrained_task_category": None}))  # fmt: skip
    result = runner.invoke(app, ["rubric", "validate", str(bad), str(rubric), "--json"])
    assert result.exit_code == 2  # every file is checked; one is invalid
    rows = json.loads(result.stdout)
    assert [r["valid"] for r in rows] == [False, True] and rows[1]["leaves"] == 77
    assert "`weight` must be >= 0" in rows[0]["error"]

    shown = runner.invoke(app, ["rubric", "show", str(rubric), "--depth", "2", "--json"])
    tree = json.loads(shown.stdout)
    assert shown.exit_code == 0 and tree["id"] == json.loads(rubric.read_text())["id"]
    assert all("sub_tasks" not in c for c in tree["sub_tasks"]) and tree["sub_tasks"][0]["hidden_sub_tasks"] > 0


def test_run_prints_json(tmp_path):
    from tests.tasks import make_task

    make_task(tmp_path / "tasks", task_id="alpha", paragraphs=2)
    script = tmp_path / "s.yaml"
    script.write_text(
        yaml.safe_dump({"turns": [{"content": "e", "tool_calls": [{"name": "end_task", "arguments": {}}]}]})
    )
    args = ["run", str(tmp_path / "tasks"), "--model", f"scripted:{script}", "--out", str(tmp_path / "run"),
            "--clock", "virtual", "-c", "mandatory_reading=false", "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["run_id"] for r in report["runs"]] == ["alpha__a0"] and report["infrastructure_failures"] == []
    assert json.loads(runner.invoke(app, args).stdout)["runs"] == []  # finished runs are skipped
