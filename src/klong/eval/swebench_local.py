"""`--local-eval`: the instance's tests run on a fresh checkout with the model's patch, for machines without the
SWE-bench images. NOT the official harness: the test command is the row's `test_cmd` (or `--test-cmd`), the
environment is the sandbox's, and only pytest's `-rA` summary lines are read.

What it does, in the harness's order: a fresh checkout of the base commit (`make_repo`), `git apply` of the model's
patch (a patch that does not apply: unresolved), the test files named in `test_patch` reset to the base commit (files
the test patch creates are removed), `git apply` of `test_patch`, then `TEST_CMD <test files>` in a fresh sandbox of
the chosen kind, its output in `test_output.txt`. Statuses come from the summary lines (`PASSED id`, `FAILED id - ...`,
`ERROR id`, `XFAIL id`, `SKIPPED ...`); a FAIL_TO_PASS or PASS_TO_PASS test passes when PASSED or XFAIL and fails when
FAILED, ERROR or absent, as the harness grades; resolved = every one passes. `report.json` has the harness's shape:
`{instance_id: {patch_is_None, patch_exists, patch_successfully_applied, resolved, tests_status: {FAIL_TO_PASS,
PASS_TO_PASS, FAIL_TO_FAIL, PASS_TO_FAIL: {success, failure}}}}`.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from klong.eval.swebench_repo import changed_paths, git
from klong.exceptions import KlongError
from klong.io import atomic_write_json, atomic_write_text
from klong.sandbox import SandboxConfig, make_sandbox

GRADER = "local-tests (not the official SWE-bench harness)"
STATUSES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL")
PASS = ("PASSED", "XFAIL")
DATA_EXTS = (".json", ".png", ".csv", ".txt", ".md", ".jpg", ".jpeg", ".pkl", ".yml", ".yaml", ".toml")
"""Files of a test patch that are data, not tests to run (as the harness leaves them out)."""


def parse_pytest(log: str) -> dict[str, str]:
    """Test id -> status from pytest's `-rA` short summary (the first word after the status is the id)."""
    statuses: dict[str, str] = {}
    for line in log.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0] in STATUSES and line.startswith(parts[0]):
            statuses[parts[1]] = parts[0]
    return statuses


def classify_tests(statuses: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str]) -> dict[str, Any]:
    def split(tests: list[str]) -> dict[str, list[str]]:
        success = [t for t in tests if statuses.get(t) in PASS]
        failure = [t for t in tests if t not in statuses or statuses[t] in ("FAILED", "ERROR")]
        return {"success": success, "failure": failure}

    empty = {"success": [], "failure": []}
    return {"FAIL_TO_PASS": split(fail_to_pass), "PASS_TO_PASS": split(pass_to_pass), "FAIL_TO_FAIL": dict(empty),
            "PASS_TO_FAIL": dict(empty)}  # fmt: skip


def resolved(status: dict[str, Any]) -> bool:
    return not status["FAIL_TO_PASS"]["failure"] and not status["PASS_TO_PASS"]["failure"]


def _apply(repo: Path, patch: str) -> bool:
    try:
        git("-C", repo, "apply", "--whitespace=nowarn", "-", input=patch.encode())
        return True
    except KlongError:
        return False


def _reset_tests(repo: Path, base_commit: str, paths: list[str]) -> None:
    """The files the test patch touches go back to the base commit (new ones are removed), whatever the model did."""
    if not paths:
        return
    at_base = set(git("-C", repo, "ls-tree", "-r", "-z", "--name-only", base_commit, "--", *paths).split("\0"))
    for p in paths:
        if p in at_base:
            git("-C", repo, "checkout", "-q", base_commit, "--", p)
        elif (repo / p).is_file() or (repo / p).is_symlink():
            (repo / p).unlink()


async def evaluate_locally(*, instance_id: str, base_commit: str, patch: str, test_patch: str,
                           fail_to_pass: list[str], pass_to_pass: list[str], test_cmd: str, timeout: float,
                           make_repo: Callable[[Path], None], sandbox: str, sandbox_config: SandboxConfig,
                           repo_in_sandbox: str | None, out: Path) -> dict[str, Any]:  # fmt: skip
    """Run the tests and write `out/report.json` and `out/test_output.txt`; returns the report's entry.
    `make_repo(dest)` makes a fresh checkout of the base commit at `dest`; `repo_in_sandbox` is where the sandbox
    sees it (None: `repo/` of the sandbox's workspace)."""
    entry: dict[str, Any] = {"patch_is_None": False, "patch_exists": bool(patch.strip()),
                             "patch_successfully_applied": False, "resolved": False}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    if not entry["patch_exists"]:  # as the harness: an empty patch is not run, and is unresolved
        atomic_write_json(out / "report.json", {instance_id: entry}, indent=2)
        return entry
    work = Path(tempfile.mkdtemp(prefix="klong-swebench-"))
    try:
        repo = work / "repo"
        await asyncio.to_thread(make_repo, repo)
        if not await asyncio.to_thread(_apply, repo, patch):
            atomic_write_json(out / "report.json", {instance_id: entry}, indent=2)
            return entry
        entry["patch_successfully_applied"] = True
        files = changed_paths(test_patch)
        await asyncio.to_thread(_reset_tests, repo, base_commit, files)
        if test_patch.strip() and not await asyncio.to_thread(_apply, repo, test_patch):
            raise KlongError(f"{instance_id}: the instance's test_patch does not apply to the base commit")
        tests = [f for f in files if not f.endswith(DATA_EXTS)]
        box = make_sandbox(sandbox, work, sandbox_config)
        where = repo_in_sandbox or f"{box.root}/repo"
        command = f"cd {shlex.quote(where)} && {test_cmd} {' '.join(map(shlex.quote, tests))} > {shlex.quote(box.root)}/log 2>&1"
        await box.start()
        try:
            result = await box.run(["bash", "-c", command], timeout=timeout)
        finally:
            await box.close()
        log = (work / "log").read_text(errors="replace") if (work / "log").is_file() else result.output
        if result.timed_out:
            log += f"\n[klong: the tests ran past --test-timeout ({timeout:.0f} s) and were killed]\n"
        atomic_write_text(out / "test_output.txt", log)
        entry["tests_status"] = classify_tests(parse_pytest(log), fail_to_pass, pass_to_pass)
        entry["resolved"] = not result.timed_out and resolved(entry["tests_status"])
    finally:
        await asyncio.to_thread(shutil.rmtree, work, ignore_errors=True)
    atomic_write_json(out / "report.json", {instance_id: entry}, indent=2)
    return entry
