"""`klong grade` (one submission, or every episode of a run dir), `klong grade compare`, `klong reproduce`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from klong.cli.common import app, console, err_console, handle_errors
from klong.exceptions import ConfigError

HELP = {"help_option_names": ["-h", "--help"]}
DEFAULT_COMMAND = "target"


class _GradeGroup(TyperGroup):
    """`klong grade TARGET ...` runs the default command; `klong grade compare ...` the subcommand. The help shows
    the default command's options and the subcommands."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        default = self.commands[DEFAULT_COMMAND]
        sub = default.make_context(ctx.info_name, [], parent=ctx.parent, resilient_parsing=True)
        default.format_help(sub, formatter)
        table = Table.grid(padding=(0, 2))
        for name in self.list_commands(ctx):
            cmd = self.commands[name]
            if not cmd.hidden:
                table.add_row(f"[bold cyan]{name}[/bold cyan]", cmd.get_short_help_str(100))
        from rich.console import Console
        from rich.panel import Panel

        Console().print(Panel(table, title="Commands", title_align="left", border_style="dim"))


grade_app = typer.Typer(cls=_GradeGroup, context_settings=HELP, no_args_is_help=True, add_completion=False,
                        help="Grade submissions against rubrics (PaperBench's SimpleJudge); compare gradings.")  # fmt: skip
app.add_typer(grade_app, name="grade")


def _model_config(base_url: str | None, api_key_env: str, temperature: float, max_tokens: int, seed: int | None):
    from klong.models.config import ModelConfig

    try:
        return ModelConfig(base_url=base_url, api_key_env=api_key_env, temperature=temperature, max_tokens=max_tokens,
                           seed=seed)  # fmt: skip
    except ValueError as e:
        raise ConfigError(f"judge model options: {e}") from None


def _judge_config(overrides: list[str]):
    from klong.config import load_config
    from klong.judge.base import JudgeConfig

    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--judge-config {item!r}: expected KEY=VALUE (a field of JudgeConfig, docs/judge.md)")
    return load_config(JudgeConfig, overrides)


@grade_app.command(DEFAULT_COMMAND, hidden=True, context_settings={**HELP, "allow_interspersed_args": True})
@handle_errors
def grade_cmd(
    target: Annotated[
        Path,
        typer.Argument(help="A submission folder, or a run dir (with --tasks).", metavar="TARGET", show_default=False),
    ],
    task: Annotated[
        Path | None,
        typer.Option("--task", help="Task dir of the submission (its rubric and paper).", show_default="none"),
    ] = None,
    tasks: Annotated[
        Path | None,
        typer.Option(
            "--tasks",
            help="Folder of task dirs: grade every finished episode of the run dir TARGET.",
            show_default="none",
        ),
    ] = None,
    judge: Annotated[
        str, typer.Option("--judge", help="check, or a model spec: openai:NAME, vllm:PATH, hf:PATH, scripted:FILE.")
    ] = "check",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Where to write GRADE.json; for a run dir, the grades folder.",
            show_default="RUN_DIR/grades for a run dir; required for a submission",
        ),
    ] = None,
    code_only: Annotated[
        bool, typer.Option("--code-only", show_default=True, help="PaperBench Code-Dev: Code Development leaves only.")
    ] = False,
    resources_provided: Annotated[
        bool, typer.Option("--resources-provided", show_default=True, help="Drop dataset/model acquisition leaves.")
    ] = False,
    max_depth: Annotated[
        int | None, typer.Option("--max-depth", help="Collapse the rubric below this depth.", show_default="none")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Leaves graded at once.")] = 8,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="OpenAI-compatible endpoint of the judge.", show_default="$OPENAI_BASE_URL or OpenAI"
        ),
    ] = None,
    api_key_env: Annotated[
        str, typer.Option("--api-key-env", help="Variable holding the judge's API key.")
    ] = "OPENAI_API_KEY",
    temperature: Annotated[float, typer.Option("--temperature", help="Judge sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Most tokens per judge answer.")] = 4096,
    seed: Annotated[int | None, typer.Option("--seed", help="Judge sampling seed.", show_default="none")] = None,
    judge_config: Annotated[
        list[str] | None,
        typer.Option(
            "--judge-config", help="JudgeConfig KEY=VALUE (repeat), e.g. context_tokens=128000.", show_default="none"
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Judge cache folder.", show_default="~/.cache/klong/judge")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", show_default=True, help="Grade every leaf again (no cache read or written).")
    ] = False,
    trajectory: Annotated[
        Path | None,
        typer.Option("--trajectory", help="The run's trajectory: a blacklist violation scores 0.", show_default="none"),
    ] = None,
    sandbox: Annotated[str, typer.Option("--sandbox", help="Sandbox for programmatic checks.")] = "local",
    resume: Annotated[
        bool,
        typer.Option("--resume/--redo", help="Run dir: keep the grades already written (--resume) or grade again."),
    ] = True,
    executor: Annotated[
        str, typer.Option("--executor", help="Run dir: local (this process) or ray (a pool of judge actors).")
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option("--ray-address", help="ray: the cluster to attach to.", show_default="a local Ray instance"),
    ] = None,
    judge_workers: Annotated[
        int, typer.Option("--judge-workers", min=1, help="ray: judge actors (episodes graded at once).")
    ] = 4,
    as_json: Annotated[bool, typer.Option("--json", show_default=True, help="Print the result as JSON.")] = False,
) -> None:
    """Grade a submission against its task's rubric, leaf by leaf, as PaperBench's SimpleJudge does:
    `klong grade SUBMISSION --task TASK_DIR --out GRADE.json`, or every finished episode of a run dir:
    `klong grade RUN_DIR --tasks TASKS_DIR` (into RUN_DIR/grades/<run>.json; resumable)."""
    from klong.judge.batch import is_run_dir
    from klong.judge.cache import JudgeCache, default_cache_dir
    from klong.judge.grade import make_judge
    from klong.sandbox import check_sandbox

    if not target.is_dir():
        raise ConfigError(f"{target}: not a folder (a submission or a run dir)")
    run_dir = is_run_dir(target)
    if run_dir and tasks is None:
        raise ConfigError(f"{target} is a run dir, not a submission: grade its episodes with `klong grade {target} "
                          f"--tasks TASKS_DIR`, or one with `klong grade {target}/workspaces/RUN/submission --task "
                          "TASK_DIR --out GRADE.json`")  # fmt: skip
    if not run_dir and tasks is not None:
        raise ConfigError(f"--tasks: {target} is not a run dir (no summaries.jsonl); for one submission use --task")
    if run_dir and (task is not None or trajectory is not None):
        raise ConfigError("--task/--trajectory are for one submission; a run dir takes --tasks")
    if not run_dir and (task is None or out is None):
        raise ConfigError("usage: klong grade SUBMISSION_DIR --task TASK_DIR --out GRADE.json (or RUN_DIR --tasks DIR)")
    check_sandbox(sandbox)
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor {executor!r}: expected local or ray")
    if executor == "ray" and not run_dir:
        raise ConfigError("--executor ray grades the episodes of a run dir (RUN_DIR --tasks DIR)")
    if ray_address and executor != "ray":
        raise ConfigError("--ray-address is for --executor ray")
    jconfig = _judge_config(judge_config or [])
    mconfig = _model_config(base_url, api_key_env, temperature, max_tokens, seed)
    if run_dir:
        from klong.judge.batch import load_tasks, plan

        jobs = plan(target, load_tasks(tasks), out)  # every input checked before a judge is made or a file written
    else:
        from klong.task import read_task

        task_obj = read_task(task)
    leaf_judge = make_judge(judge, mconfig, jconfig, sandbox=sandbox)
    cache = None if no_cache else JudgeCache(cache_dir or default_cache_dir())
    options = {"code_only_": code_only, "resources": resources_provided, "max_depth": max_depth,
               "concurrency": concurrency, "cache": cache}  # fmt: skip
    if run_dir:
        pool = None
        if executor == "ray":
            from klong.judge.ray_pool import RayJudgePool

            pool = RayJudgePool((judge, mconfig, jconfig, sandbox), workers=judge_workers,
                                cache_root=cache.root if cache is not None else None, address=ray_address)  # fmt: skip
            pool.start()
        return _grade_run(target, jobs, leaf_judge, options, not resume, as_json, pool)
    from klong.judge.batch import blacklist_violation
    from klong.judge.grade import grade_submission, write_grade

    grade = asyncio.run(grade_submission(target, task_obj, leaf_judge, disqualified=blacklist_violation(trajectory),
                                         **options))  # fmt: skip
    write_grade(out, grade)
    k = grade["klong"]
    summary = {"score": grade["score"], "leaves": grade["num_leaf_nodes"], "invalid": grade["num_invalid_leaf_nodes"],
               "model_calls": k["model_calls"], "cache_hits": k["cache_hits"],
               "tokens": k["prompt_tokens"] + k["completion_tokens"], "out": str(out)}  # fmt: skip
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"score {summary['score']:.4f} over {summary['leaves']} leaves ({summary['invalid']} invalid); "
                      f"{summary['model_calls']} model calls, {summary['cache_hits']} cached; {summary['tokens']:,} tokens -> {out}")  # fmt: skip


def _grade_run(run_dir: Path, jobs, judge, options: dict[str, Any], redo: bool, as_json: bool, pool=None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from klong.judge.batch import grade_run

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, transient=False, disable=as_json)  # fmt: skip
    with progress:
        episodes = progress.add_task("episodes", total=len(jobs))
        leaves = progress.add_task("leaves", total=None, visible=False)

        def on_episode(job, state: str) -> None:
            if state == "grading":
                progress.reset(leaves, total=None, description=f"leaves of {job.run_id}", visible=True)
            else:
                progress.advance(episodes)
                if state == "done":
                    progress.update(leaves, visible=False)

        def on_leaf(total: int) -> None:
            progress.update(leaves, total=total, advance=1)

        async def go():
            try:
                return await grade_run(jobs, judge, redo=redo, on_episode=on_episode, on_leaf=on_leaf, pool=pool,
                                       **options)  # fmt: skip
            finally:
                if pool is not None:
                    await pool.close()

        rows = asyncio.run(go())
    scores = [r["score"] for r in rows if r["score"] is not None]
    errors = [r for r in rows if r["status"].startswith("error")]
    result = {"run_dir": str(run_dir), "episodes": len(rows), "graded": sum(r["status"] == "graded" for r in rows),
              "skipped": sum(r["status"] == "skipped" for r in rows), "errors": len(errors),
              "mean_score": sum(scores) / len(scores) if scores else None, "grades": rows}  # fmt: skip
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        table = Table(title=f"grades of {run_dir}")
        for col in ("run", "stop", "score", "leaves", "invalid", "calls", "cached", "status"):
            right = col in ("score", "leaves", "invalid", "calls", "cached")
            table.add_column(col, justify="right" if right else "left", no_wrap=col in ("run", "status"))
        for r in rows:
            score = "-" if r["score"] is None else f"{r['score']:.4f}"
            invalid = "-" if r["invalid"] is None else str(r["invalid"])
            table.add_row(r["run_id"], r["stop_reason"] or "-", score, str(r["leaves"] or "-"), invalid,
                          str(r["model_calls"]), str(r["cache_hits"]), r["status"])  # fmt: skip
        console.print(table)
        mean = "-" if result["mean_score"] is None else f"{result['mean_score']:.4f}"
        console.print(f"{result['graded']} graded, {result['skipped']} already graded, {result['errors']} errors; "
                      f"mean score {mean}")  # fmt: skip
    if errors:
        raise typer.Exit(code=1)


@grade_app.command("compare", context_settings=HELP)
@handle_errors
def compare_cmd(
    reference: Annotated[
        Path, typer.Argument(help="The reference grading (e.g. PaperBench's human expected_result.json).")
    ],
    other: Annotated[Path, typer.Argument(help="The grading compared with it (e.g. a judge's GRADE.json).")],
    as_json: Annotated[bool, typer.Option("--json", show_default=True, help="Print the comparison as JSON.")] = False,
) -> None:
    """Agreement between two graded trees, leaf by leaf: accuracy, precision, recall, F1, per task category."""
    from klong.judge.compare import compare_graded
    from klong.rubric.graded import read_graded

    a, _ = read_graded(reference)
    b, _ = read_graded(other)
    result = compare_graded(a, b)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"{other} against {reference}")
    for col in ("leaves", "category", "agreement", "precision", "recall", "F1"):
        table.add_column(col, justify="right")
    rows = [("overall", result["overall"])] + list(result["per_category"].items())
    for name, m in rows:
        table.add_row(str(m["leaves"]), name, f"{m['agreement']:.3f}", f"{m['precision']:.3f}", f"{m['recall']:.3f}",
                      f"{m['f1']:.3f}")  # fmt: skip
    console.print(table)
    if result["unmatched_leaves"]:
        console.print(f"{result['unmatched_leaves']} leaves of the reference have no counterpart")


@app.command("reproduce", context_settings=HELP)
@handle_errors
def reproduce_cmd(
    submission: Annotated[Path, typer.Argument(help="The submission folder (with reproduce.sh).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where the fresh copy goes.", show_default="SUBMISSION.reproduced")
    ] = None,
    sandbox: Annotated[str, typer.Option("--sandbox", help="local, bwrap or docker.")] = "local",
    timeout: Annotated[str, typer.Option("--timeout", help="e.g. 30m, 2h.")] = "1h",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", show_default=True, help="Replace an existing copy.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", show_default=True, help="Print the result as JSON.")] = False,
) -> None:
    """Run reproduce.sh in a fresh copy of the submission; record reproduce.log and reproduce.json."""
    from klong.config import parse_duration
    from klong.judge.reproduce import reproduce

    dst = out or submission.with_name(submission.name + ".reproduced")
    info = asyncio.run(
        reproduce(submission, dst, sandbox=sandbox, timeout=parse_duration(timeout), overwrite=overwrite)
    )
    if as_json:
        print(json.dumps({**info.model_dump(), "out": str(dst)}, indent=2))
        return
    status = "timed out" if info.timed_out else f"exit code {info.exit_code}"
    console.print(f"reproduce.sh: {status} after {info.duration:.1f}s -> {dst} (reproduce.log, reproduce.json)")
