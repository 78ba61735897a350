"""Factory stages (rubric): `klong factory draft | check | package`, and `klong factory fake-server`.

Each stage reads its `-c factory.yaml` section plus dotted overrides (`-c draft.min_leaves=30`), takes its common
settings as options, shows a progress bar and ends with a summary (`--json` for machines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from klong.cli.common import console, handle_errors
from klong.cli.factory import factory_app
from klong.cli.factory_sources import (
    ConfigOpt,
    DirOpt,
    JsonOpt,
    OldNoResumeOpt,
    ResumeOpt,
    _config,
    _from_config,
    _run,
    resuming,
)


@factory_app.command("draft")
@handle_errors
def draft_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="openai:NAME (any OpenAI-compatible endpoint) or fake (offline).",
            show_default=_from_config("draft.model", "fake"),
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible endpoint.",
            show_default=_from_config("draft.base_url", "$OPENAI_BASE_URL"),
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            help="Env var holding the API key.",
            show_default=_from_config("draft.api_key_env", "OPENAI_API_KEY"),
        ),
    ] = None,
    fewshot: Annotated[
        Path | None,
        typer.Option(
            "--fewshot",
            help="PaperBench papers folder (<id>/rubric.json) for examples.",
            show_default=_from_config("draft.fewshot_dir", "no examples"),
        ),
    ] = None,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Draft a rubric and an addendum per paper, one JSON-mode call per step (replayed from the sidecar on reruns)."""
    from klong.factory.draft.stage import STAGE, DraftConfig, run_draft

    cfg = _config(DraftConfig, STAGE, config, model=model, base_url=base_url, api_key_env=api_key_env,
                  fewshot_dir=str(fewshot) if fewshot else None)  # fmt: skip
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_draft(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )


@factory_app.command("check")
@handle_errors
def check_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Training judge for the contrast check: openai:NAME or fake.",
            show_default=_from_config("check.contrast.judge", "fake"),
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="The judge's OpenAI-compatible endpoint.",
            show_default=_from_config("check.contrast.base_url", "$OPENAI_BASE_URL"),
        ),
    ] = None,
    no_contrast: Annotated[bool, typer.Option("--no-contrast", help="Skip the contrast check.")] = False,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Hard gates, leak check and contrast check; failing papers are dropped with their reasons."""
    from klong.factory.check import STAGE, CheckConfig, run_check

    cfg = _config(CheckConfig, STAGE, config)
    contrast = {k: v for k, v in {"judge": judge, "base_url": base_url}.items() if v is not None}
    if no_contrast:
        contrast["enabled"] = False
    if contrast:
        cfg = cfg.model_copy(update={"contrast": cfg.contrast.model_copy(update=contrast)})
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_check(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )


@factory_app.command("package")
@handle_errors
def package_cmd(
    root: DirOpt,
    config: ConfigOpt = None,
    resume: ResumeOpt = True,
    no_resume: OldNoResumeOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Write task dirs in PaperBench's layout, the sidecars, the splits and DATASET_CARD.md."""
    from klong.factory.package import STAGE, PackageConfig, run_package

    cfg = _config(PackageConfig, STAGE, config)
    _run(
        STAGE,
        root,
        as_json,
        lambda progress: run_package(root, cfg, resume=resuming(resume, no_resume), progress=progress),
    )
    if not as_json:
        console.print(f"task dirs: {root / STAGE / 'papers'}; card: {root / STAGE / 'DATASET_CARD.md'}")


@factory_app.command("fake-server")
@handle_errors
def fake_server_cmd(
    fixtures: Annotated[
        Path | None,
        typer.Option("--fixtures", help="Folder of recorded answers to serve first.", show_default="none"),
    ] = None,
) -> None:
    """Serve the deterministic drafter and judge on 127.0.0.1 (for offline examples) until Ctrl-C."""
    import time

    from klong.factory.fake_drafter import FakeDrafter
    from klong.models.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer(FakeDrafter(fixtures), model="fake") as server:
        console.print(f"fake drafter and judge at {server.base_url} (model name: anything); Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
