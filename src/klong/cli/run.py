"""`klong run`: one model on one or many tasks, in a sandbox, under a time limit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from klong.cli.common import JsonOpt, app, console, err_console, exclusive_resume_redo, handle_errors, print_json

_AGENT = "-c config, else the task's, else"
"""Where an agent setting left unset comes from (flags > -c sources > the task's `klong.agent` section > default)."""


ExecutorOpt = Annotated[str, typer.Option("--executor", help="local (this process) or ray (Ray tasks; docs/scale.md).")]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="ray: the cluster to attach to.", show_default="a local Ray instance"),
]


@app.command("run")
@handle_errors
def run_cmd(
    tasks: Annotated[list[Path], typer.Argument(help="Task dirs (PaperBench layout), or folders of task dirs.")],
    model: Annotated[str, typer.Option("--model", help="openai:NAME, hf:PATH, scripted:FILE or replay:TRAJECTORY.")],
    out: Annotated[Path, typer.Option("--out", help="Run dir (trajectories, workspaces, summaries).")],
    sandbox: Annotated[str, typer.Option("--sandbox", help="local, bwrap or docker.")] = "local",
    time_limit: Annotated[
        str | None,
        typer.Option("--time-limit", help="Per-episode limit, e.g. 2h, 30m, 600.", show_default=f"{_AGENT} 2h"),
    ] = None,
    clock: Annotated[
        str | None,
        typer.Option("--clock", help="wall, or virtual for synthetic tasks.", show_default=f"{_AGENT} wall"),
    ] = None,
    attempts: Annotated[int, typer.Option("--attempts", help="Episodes per task.")] = 1,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Episodes running at once.")] = 4,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue unfinished runs (a killed process) and runs an infrastructure "
            "failure stopped. Without it an unfinished run is an error; finished runs are always skipped.",
        ),
    ] = False,
    redo: Annotated[
        bool, typer.Option("--redo", help="Run every run again; the old ones are kept under OUT/replaced/.")
    ] = False,
    max_turns: Annotated[
        int | None,
        typer.Option("--max-turns", help="Cap on assistant turns.", show_default=f"{_AGENT} no cap"),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="OpenAI-compatible endpoint URL.", show_default="$OPENAI_BASE_URL, else OpenAI"
        ),
    ] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Env var holding the API key.")] = "OPENAI_API_KEY",
    max_retries: Annotated[
        int, typer.Option("--max-retries", help="Retries of a failed or malformed endpoint answer.")
    ] = 6,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            "--tokenizer",
            help="Tokenizer folder of the served model (context counting).",
            show_default="hf: the model's own; else approximate counting",
        ),
    ] = None,
    max_len: Annotated[
        int | None,
        typer.Option("--max-len", help="Context window in tokens.", show_default=f"{_AGENT} 32768"),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", help="Sampling temperature.", show_default="1.0")
    ] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="Most tokens per model turn.", show_default="4096")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Sampling seed (hf: per call; openai: sent).", show_default="unseeded"),
    ] = None,
    logprobs: Annotated[bool, typer.Option("--logprobs", help="Record sampled ids and logprobs (vLLM).")] = False,
    vllm_python: Annotated[
        str | None,
        typer.Option(
            "--vllm-python",
            help="vllm: the Python with vLLM.",
            show_default="$KLONG_VLLM_PYTHON, else ./.venv-vllm/bin/python",
        ),
    ] = None,
    vllm_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--vllm-arg",
            help="vllm: one more server flag, e.g. --vllm-arg=--max-model-len=8192 (repeat).",
            show_default="none",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", help="Host env var passed to the sandbox (repeat).", show_default="none"),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option("-c", "--config", help="Agent config: YAML file or key.path=value (repeat).", show_default="none"),
    ] = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a model on tasks: a trajectory and a submission per (task, attempt)."""
    from klong.agent.config import AgentConfig
    from klong.config import deep_merge, load_config, merge_sources
    from klong.exceptions import ConfigError, StopReason
    from klong.models import ModelFactory
    from klong.rollout.progress import RolloutProgress
    from klong.rollout.runner import read_summaries, run_rollouts
    from klong.task import find_tasks

    exclusive_resume_redo(resume, redo)
    flags = agent_flags(time_limit=time_limit, clock=clock, max_turns=max_turns, max_len=max_len, env=env)
    task_list = find_tasks(tasks)
    # precedence: defaults < the task's `klong.agent` section < -c sources < flags
    task_overrides = task_list[0].config.get("klong", {}).get("agent", {}) if len(task_list) == 1 else {}
    data = merge_sources(config or [], base=deep_merge(AgentConfig().model_dump(), task_overrides))
    agent_config = load_config(AgentConfig, [], base=deep_merge(data, flags))
    model_config = build_model_config(base_url=base_url, api_key_env=api_key_env, logprobs=logprobs,
                                      max_retries=max_retries, vllm_python=vllm_python, vllm_arg=vllm_arg,
                                      temperature=temperature, max_tokens=max_tokens, seed=seed)  # fmt: skip
    if concurrency < 1 or attempts < 1:
        raise ConfigError(f"--concurrency and --attempts must be at least 1 (got {concurrency}, {attempts})")
    tok = check_run_inputs(agent_config, model_config, model, sandbox, tokenizer)
    factory = ModelFactory(model, model_config)
    runner = make_executor(executor, ray_address, factory, tok)
    start_run_dir(out, agent_config, {"model": model, "sandbox": sandbox, "tasks": [t.id for t in task_list],
                                      "attempts": attempts}, redo=redo)  # fmt: skip

    async def go():
        try:
            return await run_rollouts(task_list, model_factory=factory, sandbox=sandbox, config=agent_config,
                                      out_dir=out, attempts=attempts, concurrency=concurrency, resume=resume,
                                      redo=redo, tokenizer=tok, on_update=progress.update, executor=runner)  # fmt: skip
        finally:
            if runner is not None:
                await runner.close()

    with RolloutProgress(err_console) as progress:
        summaries = asyncio.run(go())
    failed = [r for r in read_summaries(out) if r.stop_reason and StopReason(r.stop_reason).is_infrastructure]
    if as_json:
        print_json({"out": str(out), "runs": [s.model_dump() for s in summaries],
                    "infrastructure_failures": [r.model_dump() for r in failed]})  # fmt: skip
    else:
        _print_runs(out, summaries)
    if failed:
        listing = "; ".join(f"{r.run_id}: {r.stop_reason} ({r.stop_detail})" for r in failed)
        err_console.print(f"{len(failed)} run(s) ended by an infrastructure failure (continue them with --resume): "
                          f"{listing}", highlight=False, markup=False)  # fmt: skip
        raise typer.Exit(code=1)


def _print_runs(out: Path, summaries) -> None:
    table = Table(title=f"finished runs -> {out}")
    for col in ("run", "stop", "turns", "tool calls", "time", "tokens", "files", "blacklist"):
        table.add_column(col)
    for s in summaries:
        t = s.virtual_time if s.virtual_time is not None else s.wall_time
        table.add_row(s.run_id, s.stop_reason or "-", str(s.assistant_turns), str(s.tool_calls), f"{t:.0f}s",
                      f"{s.prompt_tokens + s.completion_tokens:,}", str(s.submission_files), str(s.blacklist_violations))  # fmt: skip
    console.print(table if summaries else "no runs needed running (finished runs are skipped; --redo runs them again)")


def agent_flags(
    *,
    time_limit: str | None,
    max_turns: int | None,
    max_len: int | None,
    env: list[str] | None,
    clock: str | None = None,
) -> dict:
    """The agent settings given as flags, as a config layer over the -c sources (unset flags leave them)."""
    from klong.config import parse_duration

    flags: dict = {}
    if time_limit is not None:
        flags["time_limit"] = parse_duration(time_limit)
    if clock is not None:
        flags["clock"] = clock
    if max_turns is not None:
        flags["max_turns"] = max_turns
    if max_len is not None:
        flags["context"] = {"max_context_tokens": max_len}
    if env:
        flags["sandbox"] = {"env": env}
    return flags


def make_executor(kind: str, ray_address: str | None, factory, tokenizer):
    """None for `local` (run_rollouts runs episodes in this process), a started `RayExecutor` for `ray`."""
    from klong.exceptions import ConfigError

    if kind == "local":
        if ray_address:
            raise ConfigError("--ray-address is for --executor ray")
        return None
    if kind != "ray":
        raise ConfigError(f"--executor {kind!r}: expected local or ray")
    from klong.rollout.ray_executor import RayExecutor

    runner = RayExecutor(factory, tokenizer, address=ray_address)
    runner.start()  # Ray missing, a cluster without sandbox slots: said now, before any episode
    return runner


def build_model_config(*, base_url, api_key_env, logprobs, max_retries, vllm_python, vllm_arg, temperature, max_tokens,
                       seed):  # fmt: skip
    """The served model's settings from the command's flags (unset sampling flags keep the model's defaults)."""
    from pydantic import ValidationError

    from klong.exceptions import ConfigError
    from klong.io import format_validation_error
    from klong.models.config import ModelConfig

    gen = {
        k: v for k, v in {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}.items() if v is not None
    }
    try:
        return ModelConfig(base_url=base_url, api_key_env=api_key_env, logprobs=logprobs, max_retries=max_retries,
                           vllm={"python": vllm_python, "args": vllm_arg or []}, **gen)  # fmt: skip
    except ValidationError as e:
        raise ConfigError(f"invalid model settings: {format_validation_error(e)}") from None


def check_run_inputs(agent_config, model_config, model: str, sandbox: str, tokenizer):
    """Every input checked before the run dir is touched (a mistake changes nothing already written); returns the
    tokenizer named by --tokenizer (None: the model's own or approximate counting)."""
    from klong.models import load_model
    from klong.models.tokenizer import load_tokenizer
    from klong.sandbox import check_sandbox

    check_context(agent_config.context, model_config.max_tokens)
    check_sandbox(sandbox)
    load_model(model, model_config)  # an unknown kind, a missing folder or script: an error now, not after --redo
    return load_tokenizer(tokenizer) if tokenizer is not None else None


def start_run_dir(out: Path, agent_config, meta_extra: dict, *, redo: bool) -> None:
    """Check that `out` holds no run with other settings, then write its `config.yaml` and `meta.json`."""
    from klong.config import write_config
    from klong.provenance import collect_run_meta
    from klong.schema import write_run_meta

    check_run_dir(out, agent_config, redo=redo)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out / "config.yaml", agent_config)
    if not (out / "meta.json").exists() or redo:
        meta = collect_run_meta()
        meta.extra = meta_extra
        write_run_meta(out / "meta.json", meta)


def check_context(context, max_tokens: int) -> None:
    """The context settings must leave room for the model's longest answer (the runtime reserves `max_tokens`)."""
    from pydantic import ValidationError

    from klong.chat.context import ContextConfig
    from klong.exceptions import ConfigError
    from klong.io import format_validation_error

    if context.max_context_tokens < 256:
        raise ConfigError(f"--max-len {context.max_context_tokens} is too small for any agent prompt (at least 256)")
    try:
        ContextConfig.model_validate(
            {**context.model_dump(), "reserve_tokens": max(context.reserve_tokens, max_tokens)}
        )
    except ValidationError as e:
        raise ConfigError(f"--max-tokens {max_tokens} does not fit the context: {format_validation_error(e)}") from None


def check_run_dir(out: Path, config, *, redo: bool) -> None:
    """A run dir keeps the settings it was started with: other settings need --redo (or another --out)."""
    import yaml

    from klong.exceptions import ConfigError

    existing = out / "config.yaml"
    if redo or not existing.exists():
        return
    old = yaml.safe_load(existing.read_text()) or {}
    new = config.model_dump(mode="json")
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if changed:
        raise ConfigError(f"{out} holds a run with other settings ({', '.join(changed)}): use the same settings to "
                          "continue it, --redo to start over, or another --out")  # fmt: skip
