"""The `check` stage: hard gates, the leak gate and the contrast check on every drafted rubric.

Reads `draft`'s output (`files["draft"]`: `rubric.json`, `addendum.md`, `grounding.json`), the paper
(`files["markdown"]`), the official code (`files["code"]`) and the blacklist (`files["blacklist"]`). Writes
`FACTORY_DIR/check/<slug>/` with the final `rubric.json` and `addendum.md` (leaves failing the contrast check dropped,
per policy), the contrast submissions, and `quality.json`: every gate's outcome, the grounding and contrast reports,
the soft measures. A paper failing a hard gate is dropped with the reasons; the contrast check (the costly part) runs
only on papers that pass the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from klong.exceptions import InputFileError
from klong.factory.contrast import ContrastConfig, run_contrast, training_judge
from klong.factory.draft.assemble import drop_leaves
from klong.factory.gates import GateConfig, grounding_gate, grounding_report, soft_report, structural_gates
from klong.factory.layout import run_per_paper, stage_dir
from klong.factory.leak import find_leaks
from klong.factory.records import PaperRecord
from klong.io import atomic_write_json, atomic_write_text, read_json, read_text
from klong.task import Task, parse_blacklist

STAGE = "check"


class CheckConfig(BaseModel):
    """The `check:` section of the factory config."""

    model_config = ConfigDict(extra="forbid")

    gates: GateConfig = Field(default_factory=GateConfig)
    contrast: ContrastConfig = Field(default_factory=ContrastConfig)
    leak: bool = True
    """Run the leak gate (official repository, file names, identifiers in rubric.json / addendum.md)."""


def check_paper(record: PaperRecord, root: Path, config: CheckConfig, make_judge: Callable[[], Any] | None) -> dict[str, Any]:  # fmt: skip
    """Check one drafted paper; writes `check/<slug>/` and returns the quality report (`passed`, `reasons`)."""
    draft = root / record.files["draft"]
    out = stage_dir(root, STAGE) / record.slug
    rubric = read_json(draft / "rubric.json")
    addendum = read_text(draft / "addendum.md")
    grounding = read_json(draft / "grounding.json") if (draft / "grounding.json").exists() else {}
    paper = read_text(root / record.files["markdown"])
    code = root / record.files["code"] if record.files.get("code") else None
    blacklist = parse_blacklist(read_text(root / record.files["blacklist"])) if record.files.get("blacklist") else []
    fails = [str(f) for f in structural_gates(rubric, config.gates, generated=True)]
    ground = grounding_report(rubric, grounding, paper, addendum)
    fails += [str(f) for f in grounding_gate(ground, config.gates)]
    leaks = find_leaks(rubric, addendum, repo_urls=[*record.official_repos, *blacklist], code_dir=code, paper=paper)
    if config.leak:
        fails += [str(lk) for lk in leaks]
    report: dict[str, Any] = {"hard_gates": fails, "leaks": [lk.model_dump() for lk in leaks],
                              "grounding": {k: ground[k] for k in ("leaves", "grounded", "share")}}  # fmt: skip
    final = rubric
    if not fails and config.contrast.enabled and make_judge is not None:
        task = Task(id=record.slug, title=record.title, paper=paper, addendum=addendum, blacklist=blacklist,
                    config={"id": record.slug, "title": record.title}, rubric=rubric)  # fmt: skip
        contrast = asyncio.run(_contrast(task, code, out / "contrast", make_judge, config.contrast))
        report["contrast"] = {k: v for k, v in contrast.items() if k != "per_leaf"}
        atomic_write_json(out / "contrast" / "per_leaf.json", contrast["per_leaf"], indent=1)
        fails += [f"contrast: {r}" for r in contrast["reasons"]]
        failing = contrast["failing_leaves"]
        if failing and config.contrast.policy == "drop":
            final = drop_leaves(rubric, {f["id"] for f in failing})
            after = structural_gates(final, config.gates, generated=True)
            fails += [f"after dropping {len(failing)} leaves that fail the contrast check: {f}" for f in after]
            report["dropped_leaves"] = failing
    report.update({"soft": soft_report(final, paper), "passed": not fails, "reasons": fails})
    atomic_write_json(out / "rubric.json", final, indent=4)
    atomic_write_text(out / "addendum.md", addendum)
    atomic_write_json(out / "quality.json", report, indent=1)
    return report


async def _contrast(task: Task, code: Path | None, workdir: Path, make_judge: Callable[[], Any], config: ContrastConfig) -> dict[str, Any]:  # fmt: skip
    judge = make_judge()
    try:
        return await run_contrast(task, code, workdir, judge, config)
    finally:
        close = getattr(getattr(judge, "model", None), "close", None)
        if close is not None:
            await close()


def run_check(root: str | Path, config: CheckConfig | None = None, *, resume: bool = True,
              progress: Callable[[PaperRecord], None] | None = None) -> list[PaperRecord]:  # fmt: skip
    """Check every active paper of the `draft` stage's output; returns the stage's records."""
    root = Path(root)
    config = config or CheckConfig()
    with training_judge(config.contrast) as make_judge:
        return run_per_paper(root, STAGE, config, lambda rec: _check_one(rec, root, config, make_judge),
                             resume=resume, progress=progress)  # fmt: skip


def _check_one(record: PaperRecord, root: Path, config: CheckConfig, make_judge: Callable[[], Any]) -> PaperRecord:
    if not record.active:
        return record
    if not record.files.get("draft") or not record.files.get("markdown"):
        return record.dropped(STAGE, "check: no drafted rubric (run the draft stage first)")
    try:
        report = check_paper(record, root, config, make_judge)
    except InputFileError as e:
        return record.dropped(STAGE, f"check: cannot read an input: {e}")
    if not report["passed"]:
        more = f" (and {len(report['reasons']) - 3} more; see check/{record.slug}/quality.json)"
        reason = "check: " + "; ".join(report["reasons"][:3]) + (more if len(report["reasons"]) > 3 else "")
        return record.dropped(STAGE, reason)
    soft = report["soft"]
    note = (f"{soft['leaves']} leaves after the contrast check, grounded {report['grounding']['share']:.0%}, "
            f"contrast scores {report.get('contrast', {}).get('scores', {})}")  # fmt: skip
    return record.model_copy(update={"files": {**record.files, "check": f"{STAGE}/{record.slug}"},
                                     "notes": {**record.notes, "check": note}})  # fmt: skip
