"""`--evaluate`: the official SWE-bench harness (the `swebench` package, 4.x, pinned `>=4.1,<5`) on one run's patch.

It runs as a subprocess of its own Python (`--swebench-python`, `$KLONG_SWEBENCH_PYTHON`): klong does not import it
(its flags and its dataset rows changed in 5.x). Per run, with `swebench/harness/` as its working directory (its
logs are relative to it):

    PYTHON -m swebench.harness.run_evaluation --dataset_name inputs/<run>/instances.jsonl --split test
        --predictions_path inputs/<run>/preds.jsonl --run_id <run> --max_workers 1 --timeout SECONDS
        --namespace NS --report_dir inputs/<run> [--harness-arg ...]

`instances.jsonl` holds the instance's row, `preds.jsonl` the run's prediction; the harness's own log goes to
`inputs/<run>/harness.log` and its per-instance report is `logs/run_evaluation/<run>/<model, / as __>/<id>/report.json`
= `{id: {patch_is_None, patch_exists, patch_successfully_applied, resolved, tests_status: {FAIL_TO_PASS, PASS_TO_PASS,
FAIL_TO_FAIL, PASS_TO_FAIL: {success, failure}}}}`. An empty patch is not run (the harness would skip it too):
unresolved.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

from klong.exceptions import ConfigError, InputFileError, KlongError
from klong.io import append_jsonl, read_json

HARNESS = "swebench-harness"


def check_harness(python: str) -> str:
    """The `swebench` version of `python`, which must be 4.x (5.x wants other dataset rows and flags)."""
    try:
        proc = subprocess.run([python, "-c", "import swebench; print(swebench.__version__)"], capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
    except OSError as e:
        raise ConfigError(f"--swebench-python {python}: cannot run it ({e.strerror})") from None
    version = proc.stdout.strip()
    if proc.returncode != 0:
        raise ConfigError(f"--swebench-python {python}: no swebench package there (pip install 'swebench>=4.1,<5')")
    if not version.startswith("4."):
        raise ConfigError(f"--swebench-python {python}: swebench {version}; klong calls the 4.x harness "
                          "(pip install 'swebench>=4.1,<5')")  # fmt: skip
    return version


def harness_argv(python: str, *, instances: Path, preds: Path, run_id: str, timeout: int, namespace: str | None,
                 report_dir: Path, extra: list[str]) -> list[str]:  # fmt: skip
    return [python, "-m", "swebench.harness.run_evaluation", "--dataset_name", str(instances), "--split", "test",
            "--predictions_path", str(preds), "--run_id", run_id, "--max_workers", "1", "--timeout", str(timeout),
            "--namespace", namespace or "none", "--report_dir", str(report_dir), *extra]  # fmt: skip


def harness_report(cwd: Path, run_id: str, model: str, instance_id: str) -> Path:
    """Where the harness, run in `cwd`, writes an instance's `report.json`."""
    return cwd / "logs" / "run_evaluation" / run_id / model.replace("/", "__") / instance_id / "report.json"


def score_report(entry: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """Score (1 resolved, else 0) and metrics of a report entry in the harness's shape."""
    status = entry.get("tests_status") or {}
    metrics: dict[str, Any] = {"patch_applied": bool(entry.get("patch_successfully_applied")),
                               "empty_patch": not entry.get("patch_exists", False)}  # fmt: skip
    for key, name in (("FAIL_TO_PASS", "f2p"), ("PASS_TO_PASS", "p2p")):
        s = status.get(key, {})
        metrics[f"{name}_passed"] = len(s.get("success", []))
        metrics[f"{name}_total"] = len(s.get("success", [])) + len(s.get("failure", []))
    return (1.0 if entry.get("resolved") else 0.0), metrics


async def run_harness(python: str, *, cwd: Path, run_id: str, row: dict[str, Any], prediction: dict[str, str],
                      timeout: int, namespace: str | None, extra: list[str]) -> tuple[dict[str, Any], dict[str, Path]]:  # fmt: skip
    """Run the harness on one prediction; returns the report's entry and the files (`report`, `harness_log`)."""
    iid = prediction["instance_id"]
    inputs = cwd / "inputs" / run_id
    for stale in (inputs, cwd / "logs" / "run_evaluation" / run_id):  # the harness would reuse a report there
        shutil.rmtree(stale, ignore_errors=True)
    inputs.mkdir(parents=True)
    append_jsonl(inputs / "instances.jsonl", row)
    append_jsonl(inputs / "preds.jsonl", prediction)
    argv = harness_argv(python, instances=inputs / "instances.jsonl", preds=inputs / "preds.jsonl", run_id=run_id,
                        timeout=timeout, namespace=namespace, report_dir=inputs, extra=extra)  # fmt: skip
    log = inputs / "harness.log"
    with open(log, "wb") as f:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
        code = await proc.wait()
    report = harness_report(cwd, run_id, prediction["model_name_or_path"], iid)
    if code != 0 or not report.is_file():
        last = (log.read_text(errors="replace").strip().splitlines() or [""])[-1][-300:]
        what = f"failed (exit {code})" if code else "wrote no report"
        raise KlongError(f"the SWE-bench harness {what} for {iid}: {last} (see {log})")
    data = read_json(report)
    entry = data.get(iid) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        raise InputFileError(report, f"no entry for {iid}")
    return entry, {"report": report, "harness_log": log}
