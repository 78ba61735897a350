"""`klong eval paperbench`: PaperBench (full or Code-Dev) on its own data folder, graded by the judge."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from klong.cli.eval import RunOptions, eval_command, launch


@eval_command("paperbench")
def paperbench_cmd(
    opts: RunOptions,
    data: Annotated[Path, typer.Option("--data", help="PaperBench's data folder (papers/<id>/ in it).")],
    judge: Annotated[
        str, typer.Option("--judge", help="The judge: a model spec (openai:NAME, vllm:DIR, ...) or check.")
    ],
    split: Annotated[
        str, typer.Option("--split", help="dev, test, all (or another PaperBench split name), or a file of ids.")
    ] = "dev",
    code_dev: Annotated[
        bool, typer.Option("--code-dev", help="PaperBench Code-Dev: code leaves only, no reproduction.")
    ] = False,
    reproduce_timeout: Annotated[
        str, typer.Option("--reproduce-timeout", help="Limit of reproduce.sh (PaperBench's default).")
    ] = "100h",
    judge_base_url: Annotated[
        str | None,
        typer.Option("--judge-base-url", help="OpenAI-compatible endpoint of the judge.", show_default="as --base-url"),
    ] = None,
    judge_api_key_env: Annotated[
        str, typer.Option("--judge-api-key-env", help="Env var holding the judge's API key.")
    ] = "OPENAI_API_KEY",
    judge_max_tokens: Annotated[int, typer.Option("--judge-max-tokens", help="Most tokens per judge answer.")] = 4096,
    judge_config: Annotated[
        list[str] | None,
        typer.Option("--judge-config", help="JudgeConfig KEY=VALUE (repeat).", show_default="none"),
    ] = None,
    judge_concurrency: Annotated[int, typer.Option("--judge-concurrency", help="Leaves graded at once per run.")] = 8,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache", help="Judge cache folder.", show_default="~/.cache/klong/judge")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Grade every leaf again (no judge cache).")] = False,
) -> None:
    """Run PaperBench: per attempt the agent, reproduce.sh in a fresh sandbox (full), the judge; PaperBench's
    grades and run-group layout under OUT/paperbench/, results.md/json/png with the KLong paper's figures beside."""
    from klong.cli.grade import _judge_config, _model_config
    from klong.config import parse_duration
    from klong.eval.paperbench import PaperBench
    from klong.judge.cache import JudgeCache, default_cache_dir
    from klong.judge.grade import make_judge

    timeout = parse_duration(reproduce_timeout)
    jconfig = _judge_config(judge_config or [])
    mconfig = _model_config(judge_base_url or opts.base_url, judge_api_key_env, 0.0, judge_max_tokens, None)

    def make_bench(sandbox_kind: str) -> PaperBench:
        bench = PaperBench(data, split, judge=None, sandbox=sandbox_kind, code_dev=code_dev,
                           reproduce_timeout=timeout, judge_concurrency=judge_concurrency,
                           cache=None if no_cache else JudgeCache(cache_dir or default_cache_dir()))  # fmt: skip
        bench.tasks()  # the data is read and checked before the judge is made
        bench.judge = make_judge(judge, mconfig, jconfig, sandbox=sandbox_kind)
        return bench

    launch(make_bench, opts, extra={"split": split, "judge": judge, "data": str(data)})
