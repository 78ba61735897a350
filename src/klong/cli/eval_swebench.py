"""`klong eval swebench`: SWE-bench (Verified) instances run by klong's agent, the patches in `preds.jsonl`, graded
by the official harness (`--evaluate`) or, where its images cannot run, by the instance's tests (`--local-eval`,
labelled as not official). See `klong.eval.swebench`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from klong.cli.eval import RunOptions, eval_command, launch

InstancesOpt = Annotated[
    Path, typer.Option("--instances", help="SWE-bench rows: FILE.jsonl, FILE.json, FILE.parquet or a datasets folder.")
]


@eval_command("swebench")
def swebench(
    opts: RunOptions,
    instances: InstancesOpt,
    repo_dir: Annotated[
        Path | None,
        typer.Option(
            "--repo-dir",
            help="Local clones, DIR/<owner>__<name> (needed by local and bwrap).",
            show_default="docker: the instance image's /testbed",
        ),
    ] = None,
    ids: Annotated[
        list[str] | None, typer.Option("--ids", help="Only these instance ids (repeat).", show_default="all")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="Split of a datasets folder holding several.")] = "test",
    hints: Annotated[bool, typer.Option("--hints", help="Give the agent the instance's hints_text too.")] = False,
    full_history: Annotated[
        bool, typer.Option("--full-history", help="The agent's repository holds the base commit's whole history.")
    ] = False,
    model_name: Annotated[
        str | None,
        typer.Option("--model-name", help="model_name_or_path in preds.jsonl.", show_default="the --model spec"),
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate", help="Grade with the official SWE-bench harness (needs its docker images).")
    ] = False,
    swebench_python: Annotated[
        str | None,
        typer.Option(
            "--swebench-python",
            help="--evaluate: a Python with swebench>=4.1,<5.",
            show_default="$KLONG_SWEBENCH_PYTHON",
        ),
    ] = None,
    namespace: Annotated[
        str, typer.Option("--namespace", help="Image namespace of the instance images ('none': built locally).")
    ] = "swebench",
    harness_timeout: Annotated[
        int, typer.Option("--harness-timeout", help="--evaluate: the harness's per-instance timeout (s).")
    ] = 1800,
    harness_arg: Annotated[
        list[str] | None,
        typer.Option("--harness-arg", help="--evaluate: one more harness flag (repeat).", show_default="none"),
    ] = None,
    local_eval: Annotated[
        bool,
        typer.Option("--local-eval", help="Grade by running the instance's tests here (NOT the official harness)."),
    ] = False,
    test_cmd: Annotated[
        str,
        typer.Option("--test-cmd", help="--local-eval: test command (pytest -rA output) of rows without test_cmd."),
    ] = "python -m pytest -rA",
    test_timeout: Annotated[
        float, typer.Option("--test-timeout", help="--local-eval: seconds the tests may run.")
    ] = 1800.0,
) -> None:
    """Run SWE-bench instances: the agent fixes each issue in the repository at its base commit; the patches go to
    OUT/preds.jsonl (SWE-bench's format), graded with --evaluate (official) or --local-eval (local tests). Default
    time limit 1h per instance."""
    from klong.eval.swebench import SweBench

    python = swebench_python or os.environ.get("KLONG_SWEBENCH_PYTHON")
    grading = "harness" if evaluate else "local-tests" if local_eval else "none"
    launch(lambda kind: SweBench(instances, sandbox=kind, model_name=model_name or opts.model, repo_dir=repo_dir, ids=ids,
                                 split=split, hints=hints, full_history=full_history, evaluate=evaluate,
                                 local_eval=local_eval, swebench_python=python, namespace=namespace,
                                 harness_timeout=harness_timeout, harness_args=harness_arg, test_cmd=test_cmd,
                                 test_timeout=test_timeout),
           opts, extra={"instances": str(instances), "grading": grading})  # fmt: skip
