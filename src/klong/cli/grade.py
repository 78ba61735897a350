"""`klong grade`, `klong grade compare`, `klong reproduce`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from klong.cli.common import app, console, handle_errors
from klong.exceptions import ConfigError


@app.command("grade", context_settings={"allow_interspersed_args": True})
@handle_errors
def grade_cmd(
    target: Annotated[list[Path], typer.Argument(help="SUBMISSION_DIR, or `compare A.json B.json`.")],
    task: Annotated[Path | None, typer.Option("--task", help="Task dir (its rubric and paper).")] = None,
    judge: Annotated[
        str, typer.Option("--judge", help="check, or a model spec: openai:NAME, hf:PATH, scripted:FILE.")
    ] = "check",
    out: Annotated[Path | None, typer.Option("--out", help="Where to write GRADE.json.")] = None,
    code_only: Annotated[
        bool, typer.Option("--code-only", help="PaperBench Code-Dev: Code Development leaves only.")
    ] = False,
    resources_provided: Annotated[
        bool, typer.Option("--resources-provided", help="Drop dataset/model acquisition leaves.")
    ] = False,
    max_depth: Annotated[int | None, typer.Option("--max-depth", help="Collapse the rubric below this depth.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Leaves graded at once.")] = 8,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible endpoint of the judge.")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env")] = "OPENAI_API_KEY",
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Judge cache folder (default ~/.cache/klong/judge).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache")] = False,
    trajectory: Annotated[
        Path | None, typer.Option("--trajectory", help="The run's trajectory: a blacklist violation scores 0.")
    ] = None,
    sandbox: Annotated[str, typer.Option("--sandbox", help="Sandbox for programmatic checks.")] = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary (or comparison) as JSON.")] = False,
) -> None:
    """Grade a submission against the task's rubric, leaf by leaf, as PaperBench does."""
    if target and str(target[0]) == "compare":
        return _compare(target[1:], as_json)
    if len(target) != 1 or task is None or out is None:
        raise ConfigError("usage: klong grade SUBMISSION_DIR --task TASK_DIR --judge SPEC --out GRADE.json")
    from klong.judge.cache import JudgeCache, default_cache_dir
    from klong.judge.grade import grade_submission, make_judge, write_grade
    from klong.models.config import ModelConfig
    from klong.sandbox import check_sandbox
    from klong.schema import read_trajectory
    from klong.task import read_task

    check_sandbox(sandbox)
    submission = target[0]
    if not submission.is_dir():
        raise ConfigError(f"{submission}: not a folder")
    task_obj = read_task(task)
    disqualified = None
    if trajectory is not None:
        violations = read_trajectory(trajectory).meta.get("monitor", {}).get("blacklist_violations", [])
        if violations:
            disqualified = f"blacklisted resource fetched: {violations[0]['resource']} ({violations[0]['line']})"
    leaf_judge = make_judge(
        judge, ModelConfig(base_url=base_url, api_key_env=api_key_env, temperature=0.0), sandbox=sandbox
    )
    cache = None if no_cache else JudgeCache(cache_dir or default_cache_dir())
    grade = asyncio.run(grade_submission(submission, task_obj, leaf_judge, code_only_=code_only,
                                         resources=resources_provided, max_depth=max_depth, concurrency=concurrency,
                                         cache=cache, disqualified=disqualified))  # fmt: skip
    write_grade(out, grade)
    summary = {"score": grade["score"], "leaves": grade["num_leaf_nodes"], "invalid": grade["num_invalid_leaf_nodes"],
               "model_calls": grade["klong"]["model_calls"], "cache_hits": grade["klong"]["cache_hits"],
               "tokens": grade["token_usage"]["total_tokens"], "out": str(out)}  # fmt: skip
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"score {summary['score']:.4f} over {summary['leaves']} leaves ({summary['invalid']} invalid); "
                      f"{summary['model_calls']} model calls, {summary['cache_hits']} cached; {summary['tokens']:,} tokens -> {out}")  # fmt: skip


def _compare(files: list[Path], as_json: bool) -> None:
    from klong.judge.compare import compare_graded
    from klong.rubric.graded import read_graded

    if len(files) != 2:
        raise ConfigError("usage: klong grade compare REFERENCE.json OTHER.json")
    a, _ = read_graded(files[0])
    b, _ = read_graded(files[1])
    result = compare_graded(a, b)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"{files[1]} against {files[0]}")
    for col in ("leaves", "category", "agreement", "precision", "recall", "F1"):
        table.add_column(col, justify="right")
    rows = [("overall", result["overall"])] + list(result["per_category"].items())
    for name, m in rows:
        table.add_row(
            str(m["leaves"]),
            name,
            f"{m['agreement']:.3f}",
            f"{m['precision']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['f1']:.3f}",
        )
    console.print(table)
    if result["unmatched_leaves"]:
        console.print(f"{result['unmatched_leaves']} leaves of the reference have no counterpart")


@app.command("reproduce")
@handle_errors
def reproduce_cmd(
    submission: Annotated[Path, typer.Argument(help="The submission folder (with reproduce.sh).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where the fresh copy goes (default SUBMISSION.reproduced).")
    ] = None,
    sandbox: Annotated[str, typer.Option("--sandbox")] = "local",
    timeout: Annotated[str, typer.Option("--timeout", help="e.g. 30m, 2h.")] = "1h",
    overwrite: Annotated[bool, typer.Option("--overwrite")] = False,
) -> None:
    """Run reproduce.sh in a fresh copy of the submission; record reproduce.log and reproduce.json."""
    from klong.config import parse_duration
    from klong.judge.reproduce import reproduce

    dst = out or submission.with_name(submission.name + ".reproduced")
    info = asyncio.run(
        reproduce(submission, dst, sandbox=sandbox, timeout=parse_duration(timeout), overwrite=overwrite)
    )
    status = "timed out" if info.timed_out else f"exit code {info.exit_code}"
    console.print(f"reproduce.sh: {status} after {info.duration:.1f}s -> {dst} (reproduce.log, reproduce.json)")
