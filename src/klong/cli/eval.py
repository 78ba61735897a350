"""`klong eval BENCHMARK ...`: a whole benchmark run with klong's runtime, graded, in the benchmark's own formats.

Every benchmark command takes its own options (the benchmark's data, its grading) and the shared ones below (the
agent, the model and the run dir, as `klong run` takes them): `@eval_command(NAME)` adds the shared ones and hands
them to the command as one `RunOptions`; `launch` does the rest the same way for all of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from klong.cli.common import JsonOpt, console, err_console, exclusive_resume_redo, print_json, sub_app
from klong.cli.run import ExecutorOpt, RayAddressOpt

__all__ = ["RunOptions", "eval_app", "eval_command", "launch"]

eval_app = sub_app("eval", "Run a benchmark (PaperBench, SWE-bench, MLE-bench) and write its own output formats.")

_AGENT = "-c config, else the benchmark's"
ModelOpt = Annotated[str, typer.Option("--model", help="openai:NAME, vllm:DIR, hf:PATH, scripted:FILE or replay:TRAJ.")]
OutOpt = Annotated[
    Path, typer.Option("--out", help="Run dir (trajectories, workspaces, results, the benchmark's files).")
]
SandboxOpt = Annotated[str, typer.Option("--sandbox", help="local, bwrap or docker.")]
AttemptsOpt = Annotated[int, typer.Option("--attempts", help="Attempts per task (the spread is over attempts).")]
ConcurrencyOpt = Annotated[int, typer.Option("--concurrency", help="Episodes running at once.")]
GradeConcurrencyOpt = Annotated[int, typer.Option("--grade-concurrency", help="Runs graded at once.")]
TimeLimitOpt = Annotated[
    str | None, typer.Option("--time-limit", help="Per-episode limit, e.g. 12h, 30m.", show_default=f"{_AGENT}")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue unfinished runs and runs an infrastructure failure stopped.")
]
RedoOpt = Annotated[bool, typer.Option("--redo", help="Run every episode again (old ones kept under OUT/replaced/).")]
RegradeOpt = Annotated[bool, typer.Option("--regrade", help="Grade every finished run again (grades are kept).")]
MaxTurnsOpt = Annotated[int | None, typer.Option("--max-turns", help="Cap on assistant turns.", show_default="no cap")]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="OpenAI-compatible endpoint URL.", show_default="$OPENAI_BASE_URL, else OpenAI"),
]
ApiKeyEnvOpt = Annotated[str, typer.Option("--api-key-env", help="Env var holding the API key.")]
MaxRetriesOpt = Annotated[int, typer.Option("--max-retries", help="Retries of a failed or malformed endpoint answer.")]
TokenizerOpt = Annotated[
    Path | None,
    typer.Option("--tokenizer", help="Tokenizer folder of the served model.", show_default="the model's, else approx"),
]
MaxLenOpt = Annotated[int | None, typer.Option("--max-len", help="Context window in tokens.", show_default="32768")]
TemperatureOpt = Annotated[
    float | None, typer.Option("--temperature", help="Sampling temperature.", show_default="1.0")
]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Most tokens per turn.", show_default="4096")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Sampling seed.", show_default="unseeded")]
VllmPythonOpt = Annotated[
    str | None,
    typer.Option(
        "--vllm-python", help="vllm: the Python with vLLM.", show_default="$KLONG_VLLM_PYTHON, else .venv-vllm"
    ),
]
VllmArgOpt = Annotated[
    list[str] | None, typer.Option("--vllm-arg", help="vllm: one more server flag (repeat).", show_default="none")
]
EnvOpt = Annotated[
    list[str] | None, typer.Option("--env", help="Host env var passed to the sandbox (repeat).", show_default="none")
]
ConfigOpt = Annotated[
    list[str] | None,
    typer.Option("-c", "--config", help="Agent config: YAML file or key.path=value (repeat).", show_default="none"),
]


@dataclass
class RunOptions:
    """The options every `klong eval` command shares (see the aliases above)."""

    model: str
    out: Path
    sandbox: str = "local"
    attempts: int = 1
    concurrency: int = 4
    grade_concurrency: int = 4
    time_limit: str | None = None
    resume: bool = False
    redo: bool = False
    regrade: bool = False
    max_turns: int | None = None
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    max_retries: int = 6
    tokenizer: Path | None = None
    max_len: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    vllm_python: str | None = None
    vllm_arg: list[str] | None = None
    env: list[str] | None = None
    config: list[str] | None = None
    executor: str = "local"
    ray_address: str | None = None
    as_json: bool = False


SHARED_OPTIONS: list[tuple[str, Any]] = [
    ("model", ModelOpt), ("out", OutOpt), ("sandbox", SandboxOpt), ("attempts", AttemptsOpt),
    ("concurrency", ConcurrencyOpt), ("grade_concurrency", GradeConcurrencyOpt), ("time_limit", TimeLimitOpt),
    ("resume", ResumeOpt), ("redo", RedoOpt), ("regrade", RegradeOpt), ("max_turns", MaxTurnsOpt),
    ("base_url", BaseUrlOpt), ("api_key_env", ApiKeyEnvOpt), ("max_retries", MaxRetriesOpt),
    ("tokenizer", TokenizerOpt), ("max_len", MaxLenOpt), ("temperature", TemperatureOpt),
    ("max_tokens", MaxTokensOpt), ("seed", SeedOpt), ("vllm_python", VllmPythonOpt), ("vllm_arg", VllmArgOpt),
    ("env", EnvOpt), ("config", ConfigOpt), ("executor", ExecutorOpt), ("ray_address", RayAddressOpt),
    ("as_json", JsonOpt),
]  # fmt: skip
"""The options every `klong eval` command takes after its own, with `RunOptions`' defaults."""


def eval_command(name: str):
    """Register `fn(opts: RunOptions, **own_options)` as `klong eval NAME`: typer sees its own options followed by
    the shared ones (`SHARED_OPTIONS`), and `fn` gets the shared ones as one `RunOptions`."""
    import functools
    import inspect
    import typing

    from klong.cli.common import handle_errors

    defaults = {f.name: f.default for f in dataclasses.fields(RunOptions)}

    def register(fn):
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
               for p in inspect.signature(fn).parameters.values() if p.name != "opts"]  # fmt: skip
        shared = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=a,
                                    default=defaults[n] if defaults[n] is not dataclasses.MISSING
                                    else inspect.Parameter.empty) for n, a in SHARED_OPTIONS]  # fmt: skip
        params = [*own, *shared]

        @functools.wraps(fn)
        def command(**values: Any) -> Any:
            opts = RunOptions(**{n: values.pop(n) for n, _ in SHARED_OPTIONS})
            return fn(opts=opts, **values)

        command.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return eval_app.command(name)(handle_errors(command))

    return register


def launch(make_bench, opts: RunOptions, extra: dict[str, Any]) -> dict[str, Any]:
    """Check every input, then run, grade and print. `make_bench(sandbox)` builds the benchmark (it reads and checks
    its data: an error there changes nothing)."""
    from klong.agent.config import AgentConfig
    from klong.cli.run import agent_flags, build_model_config, check_run_inputs, make_executor, start_run_dir
    from klong.config import deep_merge, load_config, merge_sources
    from klong.eval.driver import run_benchmark
    from klong.eval.results import INFRASTRUCTURE
    from klong.exceptions import ConfigError
    from klong.models import ModelFactory
    from klong.rollout.progress import RolloutProgress

    exclusive_resume_redo(opts.resume, opts.redo)
    if opts.concurrency < 1 or opts.attempts < 1 or opts.grade_concurrency < 1:
        raise ConfigError(f"--concurrency, --grade-concurrency and --attempts must be at least 1 (got "
                          f"{opts.concurrency}, {opts.grade_concurrency}, {opts.attempts})")  # fmt: skip
    bench = make_bench(opts.sandbox)
    tasks = bench.tasks()
    if not tasks:
        raise ConfigError(f"{bench.name}: no task selected")
    flags = agent_flags(time_limit=opts.time_limit, max_turns=opts.max_turns, max_len=opts.max_len, env=opts.env)
    base = deep_merge(AgentConfig().model_dump(), bench.agent_defaults())
    data = merge_sources(opts.config or [], base=base)
    agent_config = load_config(AgentConfig, [], base=deep_merge(data, flags))
    model_config = build_model_config(base_url=opts.base_url, api_key_env=opts.api_key_env, logprobs=False,
                                      max_retries=opts.max_retries, vllm_python=opts.vllm_python,
                                      vllm_arg=opts.vllm_arg, temperature=opts.temperature,
                                      max_tokens=opts.max_tokens, seed=opts.seed)  # fmt: skip
    tok = check_run_inputs(agent_config, model_config, opts.model, opts.sandbox, opts.tokenizer)
    extra = {"model": opts.model, "sandbox": opts.sandbox, **extra}
    factory = ModelFactory(opts.model, model_config)
    runner = make_executor(opts.executor, opts.ray_address, factory, tok)
    start_run_dir(opts.out, agent_config, {"benchmark": bench.name, **extra, "tasks": [t.id for t in tasks],
                                           "attempts": opts.attempts}, redo=opts.redo)  # fmt: skip
    with RolloutProgress(err_console) as progress:

        def on_grade(run_id: str, status: str) -> None:
            if status not in ("grading", "skipped"):
                err_console.print(f"graded {run_id}: {status}", highlight=False, markup=False)

        async def go():
            try:
                return await run_benchmark(
                    bench,
                    model_factory=factory,
                    sandbox=opts.sandbox,
                    config=agent_config,
                    out_dir=opts.out,
                    attempts=opts.attempts,
                    concurrency=opts.concurrency,
                    grade_concurrency=opts.grade_concurrency,
                    resume=opts.resume,
                    redo=opts.redo,
                    regrade=opts.regrade,
                    tokenizer=tok,
                    on_update=progress.update,
                    on_grade=on_grade,
                    extra=extra,
                    executor=runner,
                )
            finally:
                if runner is not None:
                    await runner.close()

        results = asyncio.run(go())
    if opts.as_json:
        print_json(results)
    else:
        print_results(opts.out, results)
    failed = [r for r in results["runs"] if r.get("stop_reason") in INFRASTRUCTURE]
    if failed:
        listing = "; ".join(f"{r['run_id']}: {r['stop_reason']}" for r in failed)
        err_console.print(f"{len(failed)} run(s) ended by an infrastructure failure (graded as they are; run them "
                          f"again with --resume): {listing}", highlight=False, markup=False)  # fmt: skip
        raise typer.Exit(code=1)
    return results


def print_results(out: Path, doc: dict[str, Any]) -> None:
    def pct(x):
        return "-" if x is None else f"{100 * x:.2f}"

    o = doc["overall"]
    table = Table(title=f"{doc['benchmark']} ({doc['setting']}): {doc['metric']} -> {out}/results.md")
    for col in ("task", "graded", f"{doc['metric']} %", "± std"):
        table.add_column(col, justify="left" if col == "task" else "right")
    for t in doc["per_task"]:
        table.add_row(t["task_id"], str(t["graded"]), pct(t["mean"]), pct(t["std"]))
    table.add_row("overall", f"{o['graded_runs']}/{o['expected_runs']}", pct(o["mean"]), pct(o["std"]), style="bold")
    console.print(table)
    for r in doc["references"]:
        console.print(f"reference: {r['label']}: {pct(r['value'])} ({r['source']})", highlight=False)
    if o.get("not_evaluated_runs"):
        console.print(f"{o['not_evaluated_runs']} run(s) not evaluated: only the benchmark's outputs were written")
    if not doc["official"]:
        console.print(f"graded by: {', '.join(doc['graders']) or 'none'} (not only the official tooling)")
