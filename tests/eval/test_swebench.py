"""`klong eval swebench` end to end on a tiny synthetic instance built here: a real git repository whose base commit
has a bug (and a later commit the fix), a scripted agent that edits it in a real sandbox, the patch taken with git
against the pristine base commit, the instance's tests really run by `--local-eval`; the `swebench` package's own
loaders read `preds.jsonl` where that tier is set up (KLONG_SWEBENCH_PYTHON)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import klong.cli.eval_swebench  # noqa: F401
from klong.cli.common import app
from klong.eval.swebench import image_name
from klong.eval.swebench_harness import harness_argv
from klong.eval.swebench_instances import load_instances
from klong.eval.swebench_local import classify_tests, parse_pytest
from klong.eval.swebench_repo import extract_patch, make_pristine
from klong.exceptions import KlongError

runner = CliRunner()
IID = "acme__calc-1"
BUGGY = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return -(b - a)\n"
TESTS = "from calc import sub\n\n\ndef test_sub():\n    assert sub(3, 1) == 2\n"
HIDDEN = TESTS.replace("import sub", "import add, sub") + "\n\ndef test_add():\n    assert add(2, 2) == 4\n"
TEST_CMD = f"{sys.executable} -m pytest -rA -p no:cacheprovider"
BWRAP = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")


def git(cwd: Path, *args: str, check: bool = True) -> str:
    cmd = [
        "git",
        "-c",
        "safe.directory=*",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "-c",
        "init.defaultBranch=main",
        *args,
    ]
    return subprocess.run(cmd, cwd=cwd, check=check, capture_output=True, text=True).stdout


@pytest.fixture
def inst(tmp_path):
    """`repos/acme__calc` (base commit: `add` subtracts; a later commit on main: the fix and its test, tagged) and
    `instances.jsonl` with its row."""
    src = tmp_path / "repos" / "acme__calc"
    (src / "calc").mkdir(parents=True)
    (src / "tests").mkdir()
    git(src, "init", "-q")
    (src / "README.md").write_text("calc\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "start")
    (src / "calc" / "__init__.py").write_text(BUGGY)
    (src / "tests" / "test_calc.py").write_text(TESTS)
    git(src, "add", ".")
    git(src, "commit", "-qm", "base")
    base = git(src, "rev-parse", "HEAD").strip()
    (src / "tests" / "test_calc.py").write_text(HIDDEN)
    test_patch = git(src, "diff")
    (src / "calc" / "__init__.py").write_text(BUGGY.replace("a - b", "a + b"))
    git(src, "commit", "-qam", "the fix")
    git(src, "tag", "v1")
    later = git(src, "rev-parse", "HEAD").strip()
    row = {"instance_id": IID, "repo": "acme/calc", "base_commit": base, "problem_statement": "add(2, 2) is 0, not 4",
           "hints_text": "see calc/__init__.py", "FAIL_TO_PASS": json.dumps(["tests/test_calc.py::test_add"]),
           "PASS_TO_PASS": json.dumps(["tests/test_calc.py::test_sub"]), "test_patch": test_patch,
           "patch": git(src, "diff", base, "HEAD", "--", "calc"), "version": "0.1", "environment_setup_commit": base,
           "created_at": "2024-01-01T00:00:00"}  # fmt: skip
    (tmp_path / "instances.jsonl").write_text(json.dumps(row) + "\n")
    return {"src": src, "base": base, "later": later, "row": row, "file": tmp_path / "instances.jsonl",
            "repos": tmp_path / "repos"}  # fmt: skip


def script(tmp_path: Path, *calls: dict) -> str:
    turns = [{"content": f"step {k}", "tool_calls": [c]} for k, c in enumerate(calls)]
    turns.append({"content": "done", "tool_calls": [{"name": "end_task", "arguments": {}}]})
    path = tmp_path / "script.yaml"
    path.write_text(yaml.safe_dump({"turns": turns}))
    return f"scripted:{path}"


def has_object(repo: Path, sha: str) -> bool:
    return subprocess.run(["git", "-c", "safe.directory=*", "cat-file", "-e", sha], cwd=repo).returncode == 0


def bash(command: str) -> dict:
    return {"name": "bash", "arguments": {"command": command}}


FIX = {"name": "edit_file", "arguments": {"path": "repo/calc/__init__.py", "old_text": "return a - b",
                                          "new_text": "return a + b"}}  # fmt: skip
EXTRAS = bash(
    "printf 'def double(x):\\n    return 2 * x\\n' > repo/calc/helpers.py && printf 'bin\\000ary' > repo/blob.bin"
)


def run(inst, tmp_path, model, *extra, sandbox="local"):
    out = tmp_path / "out"
    args = ["eval", "swebench", "--instances", str(inst["file"]), "--model", model, "--out", str(out),
            "--sandbox", sandbox, "--repo-dir", str(inst["repos"]), "--test-cmd", TEST_CMD, "--json", *extra]  # fmt: skip
    result = runner.invoke(app, args)
    return out, result


def preds(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "preds.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("sandbox", ["local", pytest.param("bwrap", marks=BWRAP)])
def test_a_fix_is_resolved_by_the_local_tests(inst, tmp_path, sandbox):
    model = script(tmp_path, FIX, EXTRAS)
    out, result = run(inst, tmp_path, model, "--local-eval", sandbox=sandbox)
    assert result.exit_code == 0, result.output
    [pred] = preds(out)
    assert list(pred) == ["instance_id", "model_name_or_path", "model_patch"]
    assert pred["instance_id"] == IID and pred["model_name_or_path"] == model
    patch = pred["model_patch"]
    assert "+    return a + b" in patch and "calc/helpers.py" in patch and "blob.bin" not in patch
    assert "tests/test_calc.py" not in patch and "paper/" not in patch and "diff --git a/.git" not in patch
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(inst["src"]), str(fresh))
    git(fresh, "checkout", "-q", inst["base"])
    subprocess.run(["git", "apply", "--check", "-"], cwd=fresh, input=patch, text=True, check=True)

    report = json.loads((out / "swebench" / "local_eval" / f"{IID}__a0" / "report.json").read_text())[IID]
    assert report["resolved"] and report["patch_successfully_applied"]
    assert report["tests_status"]["FAIL_TO_PASS"] == {"success": ["tests/test_calc.py::test_add"], "failure": []}
    assert report["tests_status"]["PASS_TO_PASS"]["success"] == ["tests/test_calc.py::test_sub"]
    results = json.loads((out / "results.json").read_text())
    assert results["overall"]["mean"] == 1.0 and results["official"] is False
    assert results["graders"] == ["local-tests (not the official SWE-bench harness)"]
    [r] = results["runs"]
    assert r["metrics"]["f2p_passed"] == 1 and r["metrics"]["binary_files_left_out"] == 1
    assert results["files"] == {"preds.jsonl": "preds.jsonl"}


def test_no_change_is_an_empty_unresolved_patch(inst, tmp_path):
    out, result = run(inst, tmp_path, script(tmp_path), "--local-eval")
    assert result.exit_code == 0, result.output
    assert preds(out)[0]["model_patch"] == ""
    report = json.loads((out / "swebench" / "local_eval" / f"{IID}__a0" / "report.json").read_text())[IID]
    assert report == {"patch_is_None": False, "patch_exists": False, "patch_successfully_applied": False,
                      "resolved": False}  # fmt: skip
    results = json.loads(result.stdout)
    assert results["overall"]["mean"] == 0.0 and results["runs"][0]["metrics"]["empty_patch"] is True


def test_a_wrong_fix_fails_the_hidden_test_and_edited_tests_are_replaced(inst, tmp_path):
    # the agent "fixes" add wrongly and rewrites the test file (the hidden tests replace it) so that its tests pass
    wrong = {**FIX, "arguments": {**FIX["arguments"], "new_text": "return a * b + 1"}}
    edit_tests = bash(
        "printf 'def test_add():\\n    pass\\n\\n\\ndef test_sub():\\n    pass\\n' > repo/tests/test_calc.py"
    )
    out, result = run(inst, tmp_path, script(tmp_path, wrong, edit_tests), "--local-eval")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "swebench" / "local_eval" / f"{IID}__a0" / "report.json").read_text())[IID]
    assert report["patch_successfully_applied"] and not report["resolved"]
    assert report["tests_status"]["FAIL_TO_PASS"]["failure"] == ["tests/test_calc.py::test_add"]
    assert report["tests_status"]["PASS_TO_PASS"]["success"] == ["tests/test_calc.py::test_sub"]
    assert "tests/test_calc.py" in preds(out)[0]["model_patch"]
    log = (out / "swebench" / "local_eval" / f"{IID}__a0" / "test_output.txt").read_text()
    assert "FAILED tests/test_calc.py::test_add" in log and "assert 5 == 4" in log


def test_the_workspace_repo_has_no_later_history_and_patches_alone_are_not_evaluated(inst, tmp_path):
    out, result = run(inst, tmp_path, script(tmp_path, bash("cd repo && git log --all --oneline")))
    assert result.exit_code == 0, result.output
    repo = out / "workspaces" / f"{IID}__a0" / "repo"
    assert git(repo, "log", "--all", "--format=%H").split() == [inst["base"]]
    assert has_object(repo, inst["base"]) and not has_object(repo, inst["later"])
    assert git(repo, "tag") == git(repo, "remote") == git(repo, "for-each-ref", "refs/heads") == ""
    assert git(repo, "status", "--porcelain") == "" and not (repo / ".git" / "FETCH_HEAD").exists()
    results = json.loads(result.stdout)
    assert results["runs"][0]["status"] == "not evaluated" and results["runs"][0]["score"] is None
    assert preds(out)[0]["model_patch"] == ""

    full = tmp_path / "full.git"
    make_pristine(full, inst["src"], inst["base"], full_history=True)
    history = git(full, "rev-list", "--all").split()
    assert inst["base"] in history and len(history) == 2 and inst["later"] not in history


def test_the_agents_git_config_never_runs(inst, tmp_path):
    marker = tmp_path / "MARKER"
    hostile = bash(f"cd repo && git config core.fsmonitor 'touch {marker}; false' && git config filter.x.clean "
                   f"'touch {marker}; cat' && echo '* filter=x' > .gitattributes && mkdir -p .git/hooks && "
                   f"printf '#!/bin/sh\\ntouch {marker}\\n' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit")  # fmt: skip
    out, result = run(inst, tmp_path, script(tmp_path, hostile, FIX), "--local-eval")
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert json.loads(result.stdout)["overall"]["mean"] == 1.0 and ".gitattributes" in preds(out)[0]["model_patch"]
    # the trap was armed: git run with the agent's own config does run it
    git(out / "workspaces" / f"{IID}__a0" / "repo", "status")
    assert marker.exists()


def test_a_repo_replaced_by_a_link_is_not_diffed(inst, tmp_path):
    pristine = tmp_path / "p.git"
    make_pristine(pristine, inst["src"], inst["base"], full_history=False)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "repo").symlink_to("/etc")
    with pytest.raises(KlongError, match="no longer a folder"):
        extract_patch(pristine, tmp_path / "ws" / "repo", inst["base"])


def test_instances_from_every_format_and_bad_rows(inst, tmp_path):
    import datasets
    import pandas

    row = inst["row"]
    (tmp_path / "i.json").write_text(json.dumps([row]))
    pandas.DataFrame([row]).to_parquet(tmp_path / "i.parquet")
    listed = {**row, "FAIL_TO_PASS": json.loads(row["FAIL_TO_PASS"]), "PASS_TO_PASS": json.loads(row["PASS_TO_PASS"])}
    datasets.DatasetDict({"test": datasets.Dataset.from_list([listed])}).save_to_disk(str(tmp_path / "ds"))
    loaded = [load_instances(p) for p in (inst["file"], tmp_path / "i.json", tmp_path / "i.parquet", tmp_path / "ds")]
    assert all(x == loaded[0] for x in loaded) and loaded[0][0].FAIL_TO_PASS == ["tests/test_calc.py::test_add"]


def test_bad_inputs_are_one_line_errors_before_anything_is_written(inst, tmp_path):
    row = inst["row"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n" + json.dumps({**row, "instance_id": "acme__calc-2", "base_commit": None}))
    missing = tmp_path / "missing.jsonl"
    missing.write_text(json.dumps({"instance_id": "x__y-1", "base_commit": "0" * 40}) + "\n")
    not_json = tmp_path / "f2p.jsonl"
    not_json.write_text(json.dumps({**row, "FAIL_TO_PASS": "[oops"}) + "\n")
    repos = ["--repo-dir", str(inst["repos"])]
    for args, message in [
        (["--instances", str(bad), *repos], f"{bad}: line 2 (acme__calc-2): field `base_commit`"),
        (["--instances", str(missing), *repos], f"{missing}: line 1 (x__y-1): missing field `repo`"),
        (["--instances", str(not_json), *repos], "line 1 (acme__calc-1): field `FAIL_TO_PASS`: Value error, not a JSON list"),
        (["--instances", str(tmp_path / "nope.jsonl"), *repos], "nope.jsonl: file not found"),
        (["--instances", str(inst["file"]), *repos, "--ids", "nope"], "--ids: not in"),
        (["--instances", str(inst["file"]), "--repo-dir", str(tmp_path)], "no local clone of the repository here"),
        (["--instances", str(inst["file"]), "--sandbox", "bwrap"], "--sandbox bwrap needs --repo-dir"),
        (["--instances", str(inst["file"]), *repos, "--evaluate", "--local-eval"], "exclude each other"),
        (["--instances", str(inst["file"]), *repos, "--evaluate", "--swebench-python", sys.executable],
         "no swebench package there"),
    ]:  # fmt: skip
        out = tmp_path / "never"
        result = runner.invoke(app, ["eval", "swebench", *args, "--model", "scripted:x.yaml", "--out", str(out)])
        assert result.exit_code == 2 and message in result.output, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    (inst["src"] / ".git").rename(inst["src"] / "moved")
    result = runner.invoke(app, ["eval", "swebench", "--instances", str(inst["file"]), *repos, "--model", "x", "--out",
                                 str(tmp_path / "never")])  # fmt: skip
    assert result.exit_code == 2 and f"holding the base commit {row['base_commit']}" in result.output


def test_pytest_summary_is_read_as_the_harness_reads_it():
    log = ("PASSED tests/a.py::test_one\nFAILED tests/a.py::test_two - assert 1 == 2\nERROR tests/a.py::test_three\n"
           "XFAIL tests/a.py::test_four - reason\nSKIPPED [1] tests/a.py:9: no\n  PASSED indented::no\n")  # fmt: skip
    statuses = parse_pytest(log)
    assert statuses == {"tests/a.py::test_one": "PASSED", "tests/a.py::test_two": "FAILED",
                        "tests/a.py::test_three": "ERROR", "tests/a.py::test_four": "XFAIL", "[1]": "SKIPPED"}  # fmt: skip
    s = classify_tests(statuses, ["tests/a.py::test_one", "tests/a.py::test_four", "tests/a.py::gone"],
                     ["tests/a.py::test_two", "tests/a.py::test_three"])  # fmt: skip
    assert s["FAIL_TO_PASS"] == {"success": ["tests/a.py::test_one", "tests/a.py::test_four"],
                                 "failure": ["tests/a.py::gone"]}  # fmt: skip
    assert s["PASS_TO_PASS"]["failure"] == ["tests/a.py::test_two", "tests/a.py::test_three"]


FAKE_HARNESS = '''#!{python}
"""Stands in for `python -m swebench.harness.run_evaluation` (4.x): reads its flags, writes the report where the
harness writes it, resolved when the patch fixes add; records its command line."""
import argparse, json, os, sys
if sys.argv[1] == "-c":
    print("4.1.0")
    sys.exit(0)
assert sys.argv[1:3] == ["-m", "swebench.harness.run_evaluation"], sys.argv
p = argparse.ArgumentParser()
for flag in ("dataset_name", "split", "predictions_path", "run_id", "max_workers", "timeout", "namespace", "report_dir"):
    p.add_argument("--" + flag, required=True)
a = p.parse_args(sys.argv[3:])
[pred] = [json.loads(line) for line in open(a.predictions_path)]
[row] = [json.loads(line) for line in open(a.dataset_name)]
assert row["instance_id"] == pred["instance_id"] and "FAIL_TO_PASS" in row
json.dump({{"argv": sys.argv, "cwd": os.getcwd()}}, open(os.path.join(a.report_dir, "called.json"), "w"))
ok = "return a + b" in pred["model_patch"]
d = os.path.join("logs", "run_evaluation", a.run_id, pred["model_name_or_path"].replace("/", "__"), row["instance_id"])
os.makedirs(d)
status = {{"FAIL_TO_PASS": {{"success": ["t"] if ok else [], "failure": [] if ok else ["t"]}},
          "PASS_TO_PASS": {{"success": ["u"], "failure": []}}}}
json.dump({{row["instance_id"]: {{"patch_is_None": False, "patch_exists": True, "patch_successfully_applied": True,
                                 "resolved": ok, "tests_status": status}}}}, open(os.path.join(d, "report.json"), "w"))
'''


def test_evaluate_runs_the_harness_and_reads_its_report(inst, tmp_path):
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_HARNESS.format(python=sys.executable))
    fake.chmod(0o755)
    out, result = run(inst, tmp_path, script(tmp_path, FIX), "--evaluate", "--swebench-python", str(fake),
                      "--model-name", "org/agent-1")  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    assert (
        results["overall"]["mean"] == 1.0 and results["official"] is True and results["graders"] == ["swebench-harness"]
    )
    inputs = out / "swebench" / "harness" / "inputs" / f"{IID}__a0"
    called = json.loads((inputs / "called.json").read_text())
    assert Path(called["cwd"]) == out.resolve() / "swebench" / "harness"
    assert "--namespace" in called["argv"] and called["argv"][called["argv"].index("--run_id") + 1] == f"{IID}__a0"
    assert results["runs"][0]["files"]["report"] == (f"swebench/harness/logs/run_evaluation/{IID}__a0/org__agent-1/"
                                                      f"{IID}/report.json")  # fmt: skip
    assert preds(out)[0]["model_name_or_path"] == "org/agent-1"


def test_image_names_follow_the_harness():
    assert (
        image_name("astropy__astropy-12907", "swebench")
        == "swebench/sweb.eval.x86_64.astropy_1776_astropy-12907:latest"
    )
    assert image_name("Django__django-1", "none") == "sweb.eval.x86_64.django__django-1:latest"


def _swebench_python(code: str, *args: str) -> str:
    proc = subprocess.run([os.environ["KLONG_SWEBENCH_PYTHON"], "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.swebench
def test_the_swebench_package_reads_our_files(inst, tmp_path):
    out, result = run(inst, tmp_path, script(tmp_path, FIX, EXTRAS))
    assert result.exit_code == 0, result.output
    code = """import json, sys
from swebench.harness.utils import get_predictions_from_file, load_swebench_dataset
preds = get_predictions_from_file(sys.argv[1], sys.argv[2], "test")
data = load_swebench_dataset(sys.argv[2], "test", [p["instance_id"] for p in preds])
print(json.dumps({"preds": preds, "ids": [d["instance_id"] for d in data]}))"""
    got = json.loads(_swebench_python(code, str(out / "preds.jsonl"), str(inst["file"])))
    assert got["preds"] == preds(out) and got["ids"] == [IID]
    assert "+    return a + b" in got["preds"][0]["model_patch"]

    # every flag klong passes is one the pinned harness takes; its image names are klong's
    help_text = _swebench_python("import runpy, sys; sys.argv = ['x', '--help']; "
                                 "runpy.run_module('swebench.harness.run_evaluation', run_name='__main__')")  # fmt: skip
    argv = harness_argv("py", instances=Path("i"), preds=Path("p"), run_id="r", timeout=1, namespace="swebench",
                        report_dir=Path("d"), extra=[])  # fmt: skip
    assert [f for f in argv if f.startswith("--") and f not in help_text] == []
    code = """import sys
from swebench.harness.test_spec.test_spec import make_test_spec
row = {"instance_id": sys.argv[1], "repo": "astropy/astropy", "version": "5.0", "base_commit": "0" * 40,
       "test_patch": "", "patch": "", "problem_statement": "", "hints_text": "", "created_at": "",
       "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]", "environment_setup_commit": "0" * 40}
print(make_test_spec(row, namespace="swebench").instance_image_key)"""
    assert _swebench_python(code, "astropy__astropy-12907").strip() == image_name("astropy__astropy-12907", "swebench")


MINITEST = """#!/usr/bin/env python3
# the fake image's test command: runs the test_ functions of the files named, printing pytest's -rA summary lines
import importlib.util, os, sys
sys.path.insert(0, os.getcwd())
for path in (a for a in sys.argv[1:] if not a.startswith("-")):
    spec = importlib.util.spec_from_file_location("tests_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in sorted(n for n in dir(module) if n.startswith("test_")):
        try:
            getattr(module, name)()
            print(f"PASSED {path}::{name}")
        except Exception as e:
            print(f"FAILED {path}::{name} - {type(e).__name__}")
"""


def build_image(inst, ctx: Path, tag: str, lines: list[str]) -> str:
    """A stand-in for an instance's SWE-bench image, FROM the local Debian image: `/testbed` a clone with the base
    commit checked out and the later fix in its history, `minitest` as a test command, and `lines` more."""
    import docker

    client = docker.from_env()
    try:
        client.images.get("debian-local:bookworm")
    except docker.errors.ImageNotFound:
        pytest.skip("no local base image debian-local:bookworm")
    git(ctx.parent, "clone", "-q", str(inst["src"]), str(ctx / "testbed"))
    git(ctx / "testbed", "checkout", "-q", inst["base"])
    (ctx / "minitest").write_text(MINITEST)
    (ctx / "minitest").chmod(0o755)
    dockerfile = ["FROM debian-local:bookworm", "COPY testbed /testbed", "COPY minitest /usr/local/bin/", *lines]
    (ctx / "Dockerfile").write_text("\n".join(dockerfile) + "\n")
    client.images.build(path=str(ctx), tag=tag, rm=True)
    return tag


@pytest.fixture
def images():
    import docker

    tags: list[str] = []
    yield tags
    for tag in tags:
        docker.from_env().images.remove(tag, force=True)


@pytest.mark.docker
def test_docker_takes_the_repo_from_the_instance_image_at_testbed(inst, tmp_path, images):
    images.append(build_image(inst, tmp_path / "image", image_name(IID, "klongtest"), []))
    inst["file"].write_text(json.dumps({**inst["row"], "test_cmd": "minitest"}) + "\n")
    seen = bash("cat /testbed/calc/__init__.py > seen.txt && ls -a /testbed > listing.txt && python3 --version")
    model = script(tmp_path, FIX, seen)
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "swebench", "--instances", str(inst["file"]), "--model", model, "--out",
                                 str(out), "--sandbox", "docker", "--namespace", "klongtest", "--local-eval",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    ws = out / "workspaces" / f"{IID}__a0"
    assert "return a + b" in (ws / "seen.txt").read_text() and ".git" in (ws / "listing.txt").read_text()
    assert git(ws / "repo", "log", "--all", "--format=%H").split() == [inst["base"]]
    assert has_object(ws / "repo", inst["base"]) and not has_object(ws / "repo", inst["later"])
    assert git(ws / "repo", "status", "--porcelain", "--untracked-files=no") == " M calc/__init__.py\n"
    [pred] = preds(out)
    assert "+    return a + b" in pred["model_patch"] and "seen.txt" not in pred["model_patch"]
    report = json.loads((out / "swebench" / "local_eval" / f"{IID}__a0" / "report.json").read_text())[IID]
    assert report["resolved"], (out / "swebench" / "local_eval" / f"{IID}__a0" / "test_output.txt").read_text()
    assert json.loads(result.stdout)["overall"]["mean"] == 1.0


@pytest.mark.docker
@pytest.mark.swebench
def test_evaluate_with_the_real_harness_on_a_stand_in_image(inst, tmp_path, images):
    """The pinned harness itself grades the run, in a container of a stand-in for the instance's image: a row of a
    repository the harness knows (pytest-dev/pytest 5.4, whose test command is `pytest -rA`), the host's git, a
    `pytest` that is `minitest`, and a no-op conda."""
    iid = "pytest-dev__pytest-90001"
    ctx = tmp_path / "image"
    ctx.mkdir()
    shutil.copy("/usr/bin/git", ctx / "git")
    (ctx / "conda").write_text("#!/bin/sh\nexit 0\n")
    (ctx / "conda").chmod(0o755)
    lines = ["COPY git /usr/bin/", "COPY conda /usr/local/bin/", "RUN mkdir -p /opt/miniconda3/bin && "
             "touch /opt/miniconda3/bin/activate && ln -s /usr/local/bin/minitest /usr/local/bin/pytest"]  # fmt: skip
    images.append(build_image(inst, ctx, image_name(iid, "klongtest"), lines))
    (inst["repos"] / "pytest-dev__pytest").symlink_to(inst["src"])
    inst["file"].write_text(json.dumps({**inst["row"], "instance_id": iid, "repo": "pytest-dev/pytest",
                                        "version": "5.4"}) + "\n")  # fmt: skip
    python = os.environ["KLONG_SWEBENCH_PYTHON"]
    out, result = run(inst, tmp_path, script(tmp_path, FIX, EXTRAS), "--evaluate", "--swebench-python", python,
                      "--namespace", "klongtest", "--model-name", "org/agent")  # fmt: skip
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)
    logs = out / "swebench" / "harness" / "logs" / "run_evaluation" / f"{iid}__a0" / "org__agent" / iid
    assert results["overall"]["mean"] == 1.0, (logs / "run_instance.log").read_text()
    assert results["official"] is True and results["runs"][0]["metrics"]["f2p_passed"] == 1
    report = json.loads((logs / "report.json").read_text())[iid]
    assert report["resolved"] and report["tests_status"]["PASS_TO_PASS"]["success"] == ["tests/test_calc.py::test_sub"]
    assert "PASSED tests/test_calc.py::test_add" in (logs / "test_output.txt").read_text()


@pytest.mark.docker
def test_docker_mounts_only_folders_of_the_workspace_and_needs_the_image(tmp_path):
    import asyncio

    from klong.exceptions import SandboxError
    from klong.sandbox import SandboxConfig, make_sandbox

    ws = tmp_path / "ws"
    (ws / "repo").mkdir(parents=True)
    (ws / "repo" / "f.txt").write_text("in repo\n")
    config = SandboxConfig(docker_image="debian-local:bookworm", docker_build=False, docker_mounts={"repo": "/testbed"},
                           docker_env={"KLONG_X": "1"})  # fmt: skip

    async def go(box, command):
        await box.start()
        try:
            return await box.run(["bash", "-c", command], timeout=30)
        finally:
            await box.close()

    r = asyncio.run(go(make_sandbox("docker", ws, config), "cat /testbed/f.txt; echo $KLONG_X; echo x > /testbed/g"))
    assert r.exit_code == 0 and r.output.split() == ["in", "repo", "1"] and (ws / "repo" / "g").is_file()
    shutil.rmtree(ws / "repo")
    (ws / "repo").symlink_to(tmp_path)  # an agent's link out of the workspace is never mounted
    with pytest.raises(SandboxError, match="not a folder of the workspace"):
        asyncio.run(go(make_sandbox("docker", ws, config), "true"))
    missing = config.model_copy(update={"docker_image": "klongtest/none:latest", "docker_mounts": {}})
    with pytest.raises(SandboxError, match="not found"):
        asyncio.run(go(make_sandbox("docker", tmp_path / "ws2", missing), "true"))


def test_docker_mounts_must_stay_inside_the_workspace():
    from pydantic import ValidationError

    from klong.sandbox import SandboxConfig

    for mounts in ({"../up": "/testbed"}, {"/etc": "/testbed"}, {".": "/testbed"}, {"repo": "testbed"},
                   {"repo": "/workspace"}):  # fmt: skip
        with pytest.raises(ValidationError):
            SandboxConfig(docker_mounts=mounts)
    assert SandboxConfig(docker_mounts={"repo": "/testbed"}).docker_mounts == {"repo": "/testbed"}
