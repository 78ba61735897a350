"""The `draft` stage: a rubric and an addendum per paper, drafted step by step by an LLM.

Reads `convert`'s markdown (`files["markdown"]`) and, when present, the official code (`files["code"]`); writes
`FACTORY_DIR/draft/<slug>/` with `rubric.json`, `addendum.md`, `grounding.json` (each leaf's quote and source, by
leaf id), `draft.json` (model, calls, tokens, review and repairs) and `steps/NN_<step>.json` (every request and answer,
replayed on a rerun). Steps: elements, evidence, addendum, skeleton, one subtree per skeleton child (concurrently),
review and bounded repair, weights; the tree is assembled in code. A paper whose drafting fails validation after its
retries is dropped with the error; an endpoint that stays down stops the stage (rerun to resume).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ConfigDict

from klong.exceptions import ConfigError, InputFileError
from klong.factory.draft import prompts
from klong.factory.draft.assemble import apply_weights, build_tree, finalize, outline, replace_subtree, walk
from klong.factory.draft.client import ClientConfig, DraftClient, DraftError
from klong.factory.draft.code_summary import summarize_code
from klong.factory.draft.schemas import AddendumDraft, Elements, EvidenceMatrix, Review, Skeleton, Subtree, Weights
from klong.factory.gates import GateConfig, is_grounded, main_text
from klong.factory.layout import run_per_paper, stage_dir
from klong.factory.records import PaperRecord
from klong.io import atomic_write_json, atomic_write_text, read_text

STAGE = "draft"


class DraftConfig(ClientConfig):
    """The `draft:` section of the factory config (the model settings of `ClientConfig`, plus these)."""

    model_config = ConfigDict(extra="forbid")

    words_per_leaf: float = 65.0
    """Leaf budget: about one leaf per this many words of the main text..."""
    min_leaves: int = 60
    """...clamped to [min_leaves, max_leaves]."""
    max_leaves: int = 400
    min_children: int = 3
    max_children: int = 13
    fewshot_dir: str | None = None
    """Folder of PaperBench paper folders (`<id>/rubric.json`) to draw few-shot subtrees from; none: a built-in one."""
    fewshot_examples: int = 2
    use_code: bool = True
    """Give the official code's summary to the elements, evidence and addendum steps."""
    code_summary_chars: int = 12_000
    paper_chars: int = 150_000
    """Paper characters shown in a prompt (cut in the middle beyond)."""
    concurrency: int = 4
    """Subtree calls in flight at once."""
    repair_rounds: int = 1
    replay: bool = True
    """Answer steps from their step files when the request is unchanged (no model call)."""
    fixtures_dir: str | None = None
    """`fake` model: folder of recorded answers (`<request sha256>.json`) tried before the rule-based ones."""
    record_model: str | None = None
    """`fake` model in record mode: proxy every request to this model (`openai:NAME` at `base_url`) and save the
    answers as fixtures in `fixtures_dir`, for later offline runs."""


def leaf_budget(paper: str, config: DraftConfig) -> int:
    words = len(main_text(paper).split())
    return int(min(config.max_leaves, max(config.min_leaves, round(words / config.words_per_leaf))))


def _problems(tree: dict[str, Any], paper: str, addendum: str, gates: GateConfig) -> dict[int, list[str]]:  # fmt: skip
    """Automatic problems per root child (1-based): ungrounded quotes, leaf length, single-child nodes."""
    out: dict[int, list[str]] = {}
    for number, node in walk(tree):
        if not number:
            continue
        top = int(number.split(".")[0])
        words = len(node["requirements"].split())
        if len(node["sub_tasks"]) == 1:
            out.setdefault(top, []).append(f"node {number} has a single child")
        if node["sub_tasks"]:
            continue
        if not gates.min_leaf_words <= words <= gates.max_leaf_words:
            out.setdefault(top, []).append(f"leaf {number} has {words} words")
        quote = node.get("_grounding", {}).get("quote", "")
        if not is_grounded(quote, paper, addendum):
            out.setdefault(top, []).append(f"leaf {number}: its quote is not found in the paper or addendum")
    return out


async def draft_paper(record: PaperRecord, root: Path, config: DraftConfig, gates: GateConfig | None = None) -> dict[str, Any]:  # fmt: skip
    """Draft one paper into `root/draft/<slug>/`; returns the `draft.json` summary."""
    gates = gates or GateConfig()
    out = stage_dir(root, STAGE) / record.slug
    paper = read_text(root / record.files["markdown"])
    code = root / record.files["code"] if config.use_code and record.files.get("code") else None
    summary = summarize_code(code, config.code_summary_chars)
    shown = prompts.cut(paper, config.paper_chars)
    title = record.title
    client = DraftClient(config, out / "steps", replay=config.replay)
    try:
        el = await client.step(1, "elements", prompts.elements(title, shown, summary), Elements)
        ev = await client.step(2, "evidence", prompts.evidence(title, shown, el.model_dump(), summary), EvidenceMatrix)
        ad = await client.step(3, "addendum", prompts.addendum(title, el.model_dump(), ev.model_dump()), AddendumDraft)
        addendum_md = ad.to_markdown(title)
        total = leaf_budget(paper, config)
        sk = await client.step(4, "skeleton", prompts.skeleton(title, shown, el.model_dump(), addendum_md, total,
                                                               config.min_children, config.max_children), Skeleton)  # fmt: skip
        semaphore = asyncio.Semaphore(max(1, config.concurrency))

        async def one(i: int, child: dict[str, Any]) -> Subtree:
            shots = prompts.fewshot_examples(config.fewshot_dir, f"{record.slug}/{i}", config.fewshot_examples)
            async with semaphore:
                return await client.step(4 + i, f"subtree-{i}", prompts.subtree(title, shown, addendum_md, child, i, shots),
                                         Subtree)  # fmt: skip

        children = [c.model_dump() for c in sk.children]
        subs = await client.gather(*(one(i, c) for i, c in enumerate(children, 1)))
        number = 5 + len(children)
        tree = build_tree(title, sk, subs, seed=f"{record.key}/{config.seed}")
        auto = _problems(tree, paper, addendum_md, gates)
        problems_text = "\n".join(f"- subtree {i}: {p}" for i, ps in sorted(auto.items()) for p in ps[:10])
        rv = await client.step(number, "review", prompts.review(title, outline(tree), problems_text), Review)
        number += 1
        repaired: list[int] = []
        for _ in range(config.repair_rounds):
            issues: dict[int, list[str]] = {i: list(ps) for i, ps in auto.items()}
            for issue in rv.issues:
                issues.setdefault(issue.subtree, []).append(issue.problem)
            targets = [i for i in sorted(issues) if 1 <= i <= len(tree["sub_tasks"]) and i <= len(children)]
            if not targets:
                break

            async def fix(i: int, n: int, problems: list[str]) -> tuple[int, Subtree]:
                current = {"sub_tasks": [_as_draft(c) for c in (tree["sub_tasks"][i - 1]["sub_tasks"]
                                                                   or [tree["sub_tasks"][i - 1]])]}  # fmt: skip
                async with semaphore:
                    fixed = await client.step(n, f"repair-{i}", prompts.repair(title, shown, addendum_md, children[i - 1], i,
                                                                               current, problems), Subtree)  # fmt: skip
                return i, fixed

            for i, fixed in await client.gather(*(fix(i, number + k, issues[i][:20]) for k, i in enumerate(targets))):
                replace_subtree(tree, i, fixed, f"{record.key}/{config.seed}")
                repaired.append(i)
            number += len(targets)
            auto = {}
            rv = Review()
        w = await client.step(number, "weights", prompts.weights(title, outline(tree)), Weights)
        unknown = apply_weights(tree, w.weights)
    finally:
        await client.close()
    rubric, grounding = finalize(tree)
    atomic_write_json(out / "rubric.json", rubric, indent=4)
    atomic_write_text(out / "addendum.md", addendum_md)
    atomic_write_json(out / "grounding.json", grounding, indent=1)
    info = {"model": config.model, "base_url": config.base_url, "prompt_version": prompts.PROMPT_VERSION,
            "leaf_budget": total, "leaves": len(grounding), "model_calls": client.calls, "replayed_steps": client.replayed,
            "prompt_tokens": client.prompt_tokens, "completion_tokens": client.completion_tokens,
            "code_summary_chars": len(summary), "review_issues": [i.model_dump() for i in rv.issues],
            "repaired_subtrees": repaired, "unknown_weight_numbers": unknown,
            "addendum_lines": ad.lines()}  # fmt: skip
    atomic_write_json(out / "draft.json", info, indent=1)
    return info


def _as_draft(node: dict[str, Any]) -> dict[str, Any]:
    """A working-tree node in the model's DraftNode shape (for the repair prompt)."""
    if node["sub_tasks"]:
        return {"requirements": node["requirements"], "sub_tasks": [_as_draft(c) for c in node["sub_tasks"]]}
    g = node.get("_grounding", {})
    return {"requirements": node["requirements"], "task_category": node["task_category"],
            "finegrained_task_category": node["finegrained_task_category"], "quote": g.get("quote", ""),
            "source": g.get("source", "paper")}  # fmt: skip


@contextlib.contextmanager
def drafting_endpoint(config: DraftConfig) -> Iterator[DraftConfig]:
    """The config to draft with: for the `fake` model, a deterministic drafter served on 127.0.0.1 meanwhile."""
    if config.model != "fake":
        yield config
        return
    from klong.factory.fake_drafter import FakeDrafter, RecordingDrafter
    from klong.models.fake_openai import FakeOpenAIServer

    if config.record_model:
        if not config.fixtures_dir:
            raise ConfigError("draft.record_model needs draft.fixtures_dir (where the recorded answers go)")
        responder = RecordingDrafter(config.record_model, config.base_url, config.api_key_env, config.fixtures_dir)
    else:
        responder = FakeDrafter(config.fixtures_dir)
    with FakeOpenAIServer(responder, model="fake-drafter") as server:
        yield config.model_copy(update={"model": "openai:fake-drafter", "base_url": server.base_url})


def run_draft(root: str | Path, config: DraftConfig | None = None, *, resume: bool = True,
              progress: Callable[[PaperRecord], None] | None = None) -> list[PaperRecord]:  # fmt: skip
    """Draft every active paper of the `blacklist` stage's output; returns the stage's records."""
    root = Path(root)
    config = config or DraftConfig()
    with drafting_endpoint(config) as live:
        return run_per_paper(root, STAGE, config, lambda rec: _draft_one(rec, root, live), resume=resume,
                             progress=progress)  # fmt: skip


def _draft_one(record: PaperRecord, root: Path, config: DraftConfig) -> PaperRecord:
    if not record.active:
        return record
    if not record.files.get("markdown"):
        return record.dropped(STAGE, "draft: no markdown of the paper (convert stage output missing)")
    try:
        info = asyncio.run(draft_paper(record, root, config))
    except InputFileError as e:
        return record.dropped(STAGE, f"draft: cannot read an input: {e}")
    except DraftError as e:
        return record.dropped(STAGE, f"draft: {e}")
    files = {**record.files, "draft": f"{STAGE}/{record.slug}"}
    note = (f"{info['leaves']} leaves, {info['model_calls']} model calls, {info['replayed_steps']} steps replayed, "
            f"{info['prompt_tokens'] + info['completion_tokens']} tokens")  # fmt: skip
    return record.model_copy(update={"files": files, "notes": {**record.notes, "draft": note}})
