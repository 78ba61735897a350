"""The `package` stage: task dirs in PaperBench's exact layout, splits, and a dataset card.

For every paper that passed `check`:
- `FACTORY_DIR/package/papers/<slug>/`: `paper.md`, `addendum.md`, `blacklist.txt`, `config.yaml` (`id`, `title`),
  `rubric.json` (+ `paper.pdf` when the paper came as a PDF), readable by `klong.task.read_task` and PaperBench;
- `FACTORY_DIR/package/factory/<slug>/`: the sidecar, never shown to an agent: `record.json` (provenance), the quality
  report, the drafting steps and per-leaf groundings, the contrast outcomes.

Then, over all packaged papers: deterministic splits (`package/splits/{all,train,val,test}.txt`, one task id per line as
PaperBench's split files; a paper's split depends only on its slug and the seed, so adding papers never moves others)
and `package/DATASET_CARD.md` (counts, drops, category mix against PaperBench's, weight-1 share, leaf statistics,
licences per paper).
"""

from __future__ import annotations

import hashlib
import shutil
import statistics
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from klong.factory.gates import PAPERBENCH_MIX, PAPERBENCH_WEIGHT_ONE, soft_report
from klong.factory.layout import run_per_paper, stage_dir, summary
from klong.factory.records import PaperRecord
from klong.io import atomic_write_json, atomic_write_text, read_json, read_text
from klong.task import Task, parse_blacklist, write_task

STAGE = "package"


class PackageConfig(BaseModel):
    """The `package:` section of the factory config."""

    model_config = ConfigDict(extra="forbid")

    splits: dict[str, float] = Field(default_factory=lambda: {"train": 0.8, "val": 0.1, "test": 0.1})
    """Split name -> share of papers (shares sum to 1)."""
    seed: str = "klong-factory"
    copy_pdf: bool = True
    """Put the paper's PDF into the task dir as `paper.pdf` when the factory has one."""

    @field_validator("splits")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or abs(sum(v.values()) - 1.0) > 1e-6 or any(x < 0 for x in v.values()):
            raise ValueError(f"split shares must be >= 0 and sum to 1, found {v}")
        return v


def split_of(slug: str, config: PackageConfig) -> str:
    """The split a paper belongs to: a hash of (seed, slug) placed on the cumulative shares."""
    u = int(hashlib.sha256(f"{config.seed}:{slug}".encode()).hexdigest(), 16) / 2**256
    acc = 0.0
    for name, share in config.splits.items():
        acc += share
        if u < acc:
            return name
    return list(config.splits)[-1]


def package_paper(record: PaperRecord, root: Path, config: PackageConfig) -> PaperRecord:
    checked = root / record.files["check"]
    task_dir = stage_dir(root, STAGE) / "papers" / record.slug
    sidecar = stage_dir(root, STAGE) / "factory" / record.slug
    blacklist = parse_blacklist(read_text(root / record.files["blacklist"])) if record.files.get("blacklist") else []
    blacklist = blacklist or record.official_repos
    task = Task(id=record.slug, title=record.title, paper=read_text(root / record.files["markdown"]),
                addendum=read_text(checked / "addendum.md"), blacklist=blacklist,
                config={"id": record.slug, "title": record.title}, rubric=read_json(checked / "rubric.json"))  # fmt: skip
    shutil.rmtree(task_dir, ignore_errors=True)
    write_task(task_dir, task)
    pdf = record.files.get("pdf") or record.files.get("source_pdf")
    if config.copy_pdf and pdf and (root / pdf).is_file():
        shutil.copyfile(root / pdf, task_dir / "paper.pdf")
    shutil.rmtree(sidecar, ignore_errors=True)
    sidecar.mkdir(parents=True)
    split = split_of(record.slug, config)
    files = {**record.files, "task_dir": f"{STAGE}/papers/{record.slug}", "sidecar": f"{STAGE}/factory/{record.slug}"}
    out = record.model_copy(update={"files": files, "notes": {**record.notes, "package": f"split {split}"}})
    atomic_write_json(sidecar / "record.json", out.model_dump(mode="json", exclude_none=True), indent=1)
    shutil.copyfile(checked / "quality.json", sidecar / "quality.json")
    if (checked / "contrast" / "per_leaf.json").exists():
        shutil.copyfile(checked / "contrast" / "per_leaf.json", sidecar / "contrast_per_leaf.json")
    if record.files.get("draft") and (root / record.files["draft"]).is_dir():
        shutil.copytree(root / record.files["draft"], sidecar / "draft")
    return out


def run_package(root: str | Path, config: PackageConfig | None = None, *, resume: bool = True,
                progress: Callable[[PaperRecord], None] | None = None) -> list[PaperRecord]:  # fmt: skip
    """Package every paper that passed `check`; write the splits and the dataset card; returns the records."""
    root = Path(root)
    config = config or PackageConfig()

    def one(record: PaperRecord) -> PaperRecord:
        if not record.files.get("check") or not record.files.get("markdown"):
            return record.dropped(STAGE, "package: the paper has no checked rubric (run the check stage first)")
        return package_paper(record, root, config)

    final = run_per_paper(root, STAGE, config, one, resume=resume, progress=progress)
    write_splits(root, final, config)
    atomic_write_text(stage_dir(root, STAGE) / "DATASET_CARD.md", dataset_card(root, final, config))
    return final


def write_splits(root: Path, records: list[PaperRecord], config: PackageConfig) -> dict[str, list[str]]:
    packaged = sorted(r.slug for r in records if r.active and r.files.get("task_dir"))
    splits = {name: [s for s in packaged if split_of(s, config) == name] for name in config.splits}
    folder = stage_dir(root, STAGE) / "splits"
    for name, ids in {"all": packaged, **splits}.items():
        atomic_write_text(folder / f"{name}.txt", "".join(f"{i}\n" for i in ids))
    return splits


def _rubric_stats(root: Path, record: PaperRecord) -> dict[str, Any]:
    task_dir = root / record.files["task_dir"]
    return soft_report(read_json(task_dir / "rubric.json"), read_text(task_dir / "paper.md"))


def dataset_card(root: Path, records: list[PaperRecord], config: PackageConfig) -> str:
    """The dataset card (markdown)."""
    packaged = [r for r in records if r.active and r.files.get("task_dir")]
    stats = {r.slug: _rubric_stats(root, r) for r in packaged}
    leaves = [s["leaves"] for s in stats.values()]
    total = sum(leaves) or 1
    mix = {k: sum(s["category_mix"][k] * s["leaves"] for s in stats.values()) / total for k in PAPERBENCH_MIX}
    counts = summary(records)
    splits = Counter(split_of(r.slug, config) for r in packaged)
    lines = ["# Dataset card", "", "Replication tasks in PaperBench's format, made by klong's Research-Factory.", "",
             "## Counts", "", f"- papers in: {len(records)}", f"- tasks packaged: {len(packaged)}"]  # fmt: skip
    lines += [f"- dropped at {k.split('@', 1)[1]}: {v}" for k, v in sorted(counts.items()) if k.startswith("dropped@")]
    lines += ["", "| split | tasks |", "|---|---|", *[f"| {n} | {splits.get(n, 0)} |" for n in config.splits], ""]
    if packaged:
        ws = [s["weight_one_share"] for s in stats.values()]
        lines += ["## Rubrics against PaperBench's", "", "| measure | this dataset | PaperBench |", "|---|---|---|"]
        lines += [f"| {k} leaves | {mix[k]:.1%} | {PAPERBENCH_MIX[k]:.0%} |" for k in PAPERBENCH_MIX]
        lines += [f"| weight-1 nodes | {statistics.mean(ws):.1%} | {PAPERBENCH_WEIGHT_ONE:.0%} |",
                  f"| leaves per task (median) | {statistics.median(leaves):g} | 192 |",
                  f"| leaves per task (min-max) | {min(leaves)}-{max(leaves)} | - |",
                  f"| depth (min-max) | {min(s['max_depth'] for s in stats.values())}-"
                  f"{max(s['max_depth'] for s in stats.values())} | 4-9 |",
                  f"| vague-wording rate | {statistics.mean(s['vague_rate'] for s in stats.values()):.1%} | - |",
                  f"| duplicate leaves | {sum(s['duplicate_leaves'] for s in stats.values())} | - |",
                  f"| result leaves with a locator | "
                  f"{statistics.mean(s['result_locator_share'] for s in stats.values()):.1%} | - |", ""]  # fmt: skip
        lines += [
            "## Tasks",
            "",
            "| task | title | year | venue | licence | leaves | split |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in packaged:
            lines.append(f"| {r.slug} | {r.title} | {r.year or '-'} | {r.venue or '-'} | {r.license or 'unknown'} | "
                         f"{stats[r.slug]['leaves']} | {split_of(r.slug, config)} |")  # fmt: skip
        lines.append("")
    dropped = [r for r in records if r.drop is not None]
    if dropped:
        lines += ["## Dropped papers", "", "| paper | stage | reason |", "|---|---|---|"]
        lines += [f"| {r.slug} | {r.drop.stage} | {r.drop.reason.replace('|', '/')} |" for r in dropped]
        lines.append("")
    return "\n".join(lines)
