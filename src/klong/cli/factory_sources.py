"""Factory stages (sources and filtering): `klong factory collect | enrich | select | decontam | fetch`.

Each reads `-c factory.yaml` (its own section) plus dotted overrides (`-c enrich.citation_sources=[openalex]`), takes a
few common settings as options, shows a progress bar, and ends with a summary (`--json` for machines).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from klong.cli.common import console, err_console, handle_errors, print_json
from klong.cli.factory import factory_app

DirOpt = Annotated[Path, typer.Option("--dir", "-d", help="The factory folder.")]
ConfigOpt = Annotated[
    list[str] | None,
    typer.Option("-c", "--config", help="factory.yaml files and dotted overrides (stage.key=value).",
                 show_default="none: every stage setting at its default"),
]  # fmt: skip
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume/--redo", help="--resume: skip the papers this stage has done (rerun the command to "
                 "continue); --redo: start the stage over."),
]  # fmt: skip
RecomputedOpt = Annotated[
    bool, typer.Option("--resume/--redo", help="Accepted for uniformity: this stage is recomputed on every run.")
]
OldNoResumeOpt = Annotated[bool, typer.Option("--no-resume", hidden=True, help="The old spelling of --redo.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON (progress goes to stderr).")]


def _from_config(key: str, default: object) -> str:
    """The default shown for an option that overrides a factory.yaml setting."""
    return f"{key} from -c, else {default}"


def resuming(resume: bool, no_resume: bool) -> bool:
    """`--resume` (the default) unless `--redo` or its old spelling `--no-resume` was given."""
    return resume and not no_resume


def _input_count(root: Path, stage: str) -> int | None:
    from klong.factory.layout import papers_path, previous_stage, read_papers

    prev = previous_stage(stage)
    if prev is None or not papers_path(root, prev).exists():
        return None
    return len(read_papers(papers_path(root, prev)))


def _run(stage: str, root: Path, as_json: bool, fn: Callable[..., list[Any]]) -> None:
    """Run `fn(progress=callback)` under a progress bar, then print the stage's summary and this stage's drops."""
    from klong.factory.layout import summary

    total = _input_count(root, stage)
    columns = [TextColumn(f"[bold]{stage}[/bold]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}")]  # fmt: skip
    with Progress(*columns, console=err_console, transient=True, disable=as_json) as bar:
        task = bar.add_task(stage, total=total, last="")

        def tick(rec: Any) -> None:
            bar.update(task, advance=1, last=rec.slug[:40])

        records = fn(progress=tick)
    counts = summary(records)
    info = {"stage": stage, "papers": len(records), **counts, "out": str(root / stage / "papers.jsonl")}
    if as_json:
        print_json(info)
        return
    drops = ", ".join(f"{k.split('@', 1)[1]} {v}" for k, v in counts.items() if k.startswith("dropped@")) or "none"
    console.print(
        f"{stage}: {len(records)} papers, {counts['active']} active; dropped so far: {drops} -> {info['out']}"
    )
    for r in records:
        if r.drop is not None and r.drop.stage == stage:
            console.print(f"  dropped {r.slug}: {r.drop.reason}", highlight=False)


def _config(cls: type, stage: str, config: list[str] | None, **overrides: Any) -> Any:
    """The stage's config from `-c` sources, with the command's options (those given) applied and validated."""
    from pydantic import ValidationError

    from klong.exceptions import ConfigError
    from klong.factory.config import stage_config
    from klong.io import format_validation_error

    cfg = stage_config(cls, stage, config or [])
    set_ = {k: v for k, v in overrides.items() if v not in (None, [], ())}
    if not set_:
        return cfg
    try:
        return cls.model_validate({**cfg.model_dump(), **set_})
    except ValidationError as e:
        raise ConfigError(f"invalid option for `klong factory {stage}`: {format_validation_error(e)}") from None


@factory_app.command("collect")
@handle_errors
def collect_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    local: Annotated[
        list[str] | None,
        typer.Option("--local", help="A local folder of papers (repeatable).", show_default="collect.local from -c"),
    ] = None,
    openreview: Annotated[
        list[str] | None,
        typer.Option(
            "--openreview",
            help="OpenReview venue id, e.g. ICLR.cc/2024/Conference (repeatable).",
            show_default="collect.openreview_venues from -c",
        ),
    ] = None,
    arxiv_query: Annotated[
        list[str] | None,
        typer.Option(
            "--arxiv", help="An arXiv search query (repeatable).", show_default="collect.arxiv_queries from -c"
        ),
    ] = None,
    arxiv_id: Annotated[
        list[str] | None,
        typer.Option(
            "--arxiv-id", help="An arXiv id to look up (repeatable).", show_default="collect.arxiv_ids from -c"
        ),
    ] = None,
    max_per_source: Annotated[
        int | None,
        typer.Option(
            "--max-per-source",
            help="Most papers taken from each source.",
            show_default=_from_config("collect.max_per_source", "no limit"),
        ),
    ] = None,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Gather candidate papers from local folders, OpenReview venues and arXiv."""
    from klong.factory.collect import STAGE, CollectConfig, run_collect

    cfg = _config(CollectConfig, STAGE, config)
    cfg = cfg.model_copy(update={
        "local": cfg.local + [str(Path(p).resolve()) for p in local or []],
        "openreview_venues": cfg.openreview_venues + list(openreview or []),
        "arxiv_queries": cfg.arxiv_queries + list(arxiv_query or []),
        "arxiv_ids": cfg.arxiv_ids + list(arxiv_id or []),
        "max_per_source": max_per_source if max_per_source is not None else cfg.max_per_source,
    })  # fmt: skip
    if not (cfg.local or cfg.openreview_venues or cfg.arxiv_queries or cfg.arxiv_ids):
        from klong.exceptions import ConfigError

        raise ConfigError("collect: no source given (use --local DIR, --openreview VENUE_ID, --arxiv QUERY, "
                          "--arxiv-id ID, or the collect: section of a -c factory.yaml)")  # fmt: skip
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_collect(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )


@factory_app.command("enrich")
@handle_errors
def enrich_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    code_links: Annotated[
        Path | None,
        typer.Option(
            "--code-links",
            help="A YAML/JSON dump: paper key / arXiv id / slug -> repo URL(s).",
            show_default=_from_config("enrich.code_links_file", "none"),
        ),
    ] = None,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add arXiv ids, code links (paper text, Hugging Face, a user dump) and citation counts."""
    from klong.factory.enrich import STAGE, EnrichConfig, run_enrich

    cfg = _config(EnrichConfig, STAGE, config, code_links_file=str(code_links) if code_links else None)
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_enrich(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )


@factory_app.command("select")
@handle_errors
def select_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    max_papers: Annotated[
        int | None,
        typer.Option(
            "--max-papers",
            help="Keep at most this many papers (the most cited per year first).",
            show_default=_from_config("select.max_papers", "no limit"),
        ),
    ] = None,
    min_citations: Annotated[
        float | None,
        typer.Option(
            "--min-citations",
            help="Drop papers with fewer citations (per year, by default).",
            show_default=_from_config("select.min_citations", "no minimum"),
        ),
    ] = None,
    require_code: Annotated[bool, typer.Option("--require-code", help="Keep only papers with official code.")] = False,
    resume: RecomputedOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Filter papers by venue, tier, year, citations and official code; keep at most --max-papers."""
    from klong.factory.select import STAGE, SelectConfig, run_select

    cfg = _config(SelectConfig, STAGE, config, max_papers=max_papers, min_citations=min_citations,
                  require_official_code=require_code or None)  # fmt: skip
    _run(STAGE, root, as_json, lambda progress: run_select(root, cfg, progress=progress))


@factory_app.command("decontam")
@handle_errors
def decontam_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="An extra evaluation list (YAML/JSON/txt), repeatable.",
            show_default="decontam.against from -c; PaperBench is always built in",
        ),
    ] = None,
    resume: RecomputedOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop papers that match an evaluation set (PaperBench built in) by id, repository, title or abstract."""
    from klong.factory.decontam import STAGE, DecontamConfig, run_decontam

    cfg = _config(DecontamConfig, STAGE, config)
    if against:
        cfg = cfg.model_copy(update={"against": cfg.against + [str(p) for p in against]})
    _run(STAGE, root, as_json, lambda progress: run_decontam(root, cfg, progress=progress))


@factory_app.command("fetch")
@handle_errors
def fetch_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    clone_code: Annotated[bool, typer.Option("--clone-code", help="git clone official repositories.")] = False,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Download or copy each paper's PDF/markdown and copy (or clone) its official code."""
    from klong.factory.fetch import STAGE, FetchConfig, run_fetch

    cfg = _config(FetchConfig, STAGE, config, clone_code=clone_code or None)
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_fetch(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )
