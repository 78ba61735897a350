"""The drafting prompts, one per step, and the few-shot examples drawn from real PaperBench rubrics.

Every step is a (system, user) pair; the system message starts with `[klong-draft:<step>]`, which names the step for
logs and for the fake drafter. Inputs are wrapped in tags (`<paper>`, `<code_summary>`, `<node>`, ...) so a model, or
a rule-based responder, can find them. The official code's summary reaches only the first three steps (elements,
evidence, addendum); the later steps see the addendum instead, which is the code's only channel into the rubric.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from klong.factory.draft.schemas import FINE_CATEGORIES

PROMPT_VERSION = "klong-draft-v1"

SYSTEM = """[klong-draft:{step}] You help build replication tasks in PaperBench's format: a research paper, an \
addendum of clarifications, and a rubric tree that grades an attempt to reproduce the paper from scratch. \
Answer with ONE JSON object and nothing else, exactly in the shape the request describes."""

RULES = f"""Rubric conventions (PaperBench):
- Leaves are binary criteria: one condition each, self-contained (understandable without the parent), specific.
- Leaf categories: "Code Development" (phrase: "Code has been written to ..."), "Code Execution" ("... has been run"),
  "Result Analysis" (a stated trend or comparison, naming its table or figure, e.g. "Table 2 shows ...").
- Fine-grained categories, one per leaf: {", ".join(FINE_CATEGORIES)}.
- Every leaf carries `quote`: verbatim text from the paper (or a line of the addendum, with "source": "addendum") that
  the criterion rests on. Never invent a fact the paper or addendum does not state.
- Never mention a code repository, its URL, its file names or its identifiers: the attempt is made without the code."""


def cut(text: str, limit: int) -> str:
    """`text` cut in the middle to at most about `limit` characters."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[len(text) - (limit - head) :]


def _messages(step: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM.format(step=step)}, {"role": "user", "content": user}]


def _j(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=1)


def elements(title: str, paper: str, code_summary: str) -> list[dict[str, str]]:
    return _messages(
        "elements",
        f"""List the elements of the paper "{title}" a replication must cover.

<paper>
{paper}
</paper>

<code_summary>
{code_summary or "(no official code available)"}
</code_summary>

Answer: {{"claims": [str], "method_components": [{{"name", "description", "quote"}}],
"experiments": [{{"name", "description", "datasets": [str], "baselines": [str], "metrics": [str],
"locators": ["Table 1", "Figure 2"]}}], "resources": [str], "ambiguities": [str]}}
Use the main text only (no appendix). `quote` is verbatim paper text.""",
    )


def evidence(title: str, paper: str, elements_json: dict, code_summary: str) -> list[dict[str, str]]:
    return _messages(
        "evidence",
        f"""Build the contribution -> evidence matrix for "{title}".
For each contribution or experiment, list the facts a replication needs, each tagged with its source:
"paper" (stated in the main text; give the verbatim `quote`), "code-only" (only the official code states it, e.g. a
learning rate in a config) or "unresolved" (neither states it).

<paper>
{paper}
</paper>

<elements>
{_j(elements_json)}
</elements>

<code_summary>
{code_summary or "(no official code available)"}
</code_summary>

Answer: {{"contributions": [{{"name": str, "facts": [{{"text": str, "source": "paper"|"code-only"|"unresolved",
"quote": str}}]}}]}}""",
    )


def addendum(title: str, elements_json: dict, evidence_json: dict) -> list[dict[str, str]]:
    return _messages(
        "addendum",
        f"""Write the addendum of the replication task for "{title}".
Sections: scope (one paragraph), resources (datasets, models, compute), scale_downs (approved reductions),
clarifications (every "code-only" or "unresolved" fact the rubric needs, as a plain statement such as "Use a learning
rate of 0.0003."), out_of_scope. Never name the code, its repository, files, functions or variables.

<elements>
{_j(elements_json)}
</elements>

<evidence>
{_j(evidence_json)}
</evidence>

Answer: {{"scope": str, "resources": [str], "scale_downs": [str], "clarifications": [str], "out_of_scope": [str]}}""",
    )


def skeleton(title: str, paper: str, elements_json: dict, addendum_md: str, total_leaves: int,
             min_children: int, max_children: int) -> list[dict[str, str]]:  # fmt: skip
    return _messages(
        "skeleton",
        f"""Plan the top of the rubric for "{title}": {min_children} to {max_children}
children of the root, one per contribution or experiment (setup may be its own child), each with a leaf budget.
The budgets should add up to about {total_leaves} leaves, in proportion to how much of the paper each covers.

<paper>
{paper}
</paper>

<elements>
{_j(elements_json)}
</elements>

<addendum>
{addendum_md}
</addendum>

Answer: {{"children": [{{"requirements": str, "kind": "contribution"|"experiment"|"setup", "focus": str,
"leaf_budget": int}}]}}""",
    )


def subtree(
    title: str, paper: str, addendum_md: str, node: dict, index: int, examples: list[str]
) -> list[dict[str, str]]:
    shots = "\n\n".join(f"<example>\n{e}\n</example>" for e in examples)
    return _messages(
        "subtree",
        f"""Write the subtree of child {index} of the rubric for "{title}": about
{node.get("leaf_budget")} leaves under the node below, grouped into inner nodes (2-7 children each, never exactly
one), 2-4 levels deep.

{RULES}

Examples of real PaperBench subtrees (they predate the `quote` field; yours must have it on every leaf):
{shots}

<paper>
{paper}
</paper>

<addendum>
{addendum_md}
</addendum>

<node>
{_j(node)}
</node>

Answer: {{"sub_tasks": [{{"requirements": str, "sub_tasks": [...]}} or {{"requirements": str, "task_category": str,
"finegrained_task_category": str, "quote": str, "source": "paper"|"addendum"}}]}}""",
    )


def weights(title: str, outline: str) -> list[dict[str, str]]:
    return _messages(
        "weights",
        f"""Weight the rubric of "{title}". Most nodes keep weight 1; give 2-4 to the nodes
for the paper's main method or main result, 0 to nothing. Nodes are numbered as in the outline.

<outline>
{outline}
</outline>

Answer: {{"weights": {{"2.1": 3, ...}}}} listing only the nodes whose weight is not 1.""",
    )


def review(title: str, outline: str, problems: str) -> list[dict[str, str]]:
    return _messages(
        "review",
        f"""Review the rubric of "{title}" against the conventions and name the top-level
subtrees (numbered as in the outline) that need to be rewritten, with the problem of each. Problems found by the
automatic checks are listed; add any you see (vague or compound leaves, missing tables or figures, leaks).

{RULES}

<outline>
{outline}
</outline>

<problems>
{problems or "(none found automatically)"}
</problems>

Answer: {{"issues": [{{"subtree": int, "problem": str}}]}} (an empty list when the rubric is fine).""",
    )


def repair(title: str, paper: str, addendum_md: str, node: dict, index: int, current: dict, problems: list[str]) -> list[dict[str, str]]:  # fmt: skip
    return _messages(
        "repair",
        f"""Rewrite the subtree of child {index} of the rubric for "{title}" to fix these
problems:
{chr(10).join(f"- {p}" for p in problems)}

{RULES}

<paper>
{paper}
</paper>

<addendum>
{addendum_md}
</addendum>

<node>
{_j(node)}
</node>

<current>
{_j(current)}
</current>

Answer with the whole corrected subtree: {{"sub_tasks": [...]}}, same shape as <current>.""",
    )


# -- few-shot examples ---------------------------------------------------------------------------------------------
_BUILTIN_EXAMPLE = {
    "requirements": "The contrastive pre-training objective has been implemented and trained",
    "sub_tasks": [
        {"requirements": "Code has been written to compute the InfoNCE loss between paired image and text embeddings "
                         "with a learnable temperature", "task_category": "Code Development",
         "finegrained_task_category": "Method Implementation"},
        {"requirements": "Code has been written to train the encoders with a batch size of 256 for 30 epochs",
         "task_category": "Code Development", "finegrained_task_category": "Experimental Setup"},
        {"requirements": "The pre-training has been run with the settings of Section 4.1",
         "task_category": "Code Execution", "finegrained_task_category": "Experimental Setup"},
    ],
}  # fmt: skip


def _trim(node: dict, depth: int, max_depth: int, max_children: int) -> dict:
    out = {"requirements": node.get("requirements", "")}
    subs = node.get("sub_tasks") or []
    if subs and depth < max_depth:
        out["sub_tasks"] = [_trim(c, depth + 1, max_depth, max_children) for c in subs[:max_children]]
        return out
    if subs:  # cut below: show the first leaf reached, as a leaf
        while subs:
            node, subs = subs[0], subs[0].get("sub_tasks") or []
        out["requirements"] = node.get("requirements", "")
    out["task_category"] = node.get("task_category")
    out["finegrained_task_category"] = node.get("finegrained_task_category")
    return out


def fewshot_examples(fewshot_dir: str | Path | None, seed: str, n: int = 2, max_chars: int = 3000) -> list[str]:
    """`n` subtrees (root children) of real PaperBench rubrics under `fewshot_dir/<paper>/rubric.json`, picked by a
    RNG seeded with `seed` (the same paper always gets the same examples) and trimmed to 3 levels, 3 children per node
    and `max_chars`. Without a folder (or with no rubric in it), one built-in example."""
    files = sorted(Path(fewshot_dir).glob("*/rubric.json")) if fewshot_dir else []
    if not files or n <= 0:
        return [_j(_BUILTIN_EXAMPLE)] if n > 0 else []
    rng = random.Random(seed)
    out = []
    for path in rng.sample(files, min(n, len(files))):
        root = json.loads(path.read_text(encoding="utf-8"))
        children = root.get("sub_tasks") or [root]
        example = _j(_trim(rng.choice(children), 1, 3, 3))
        for max_children in (2, 1):
            if len(example) <= max_chars:
                break
            example = _j(_trim(rng.choice(children), 1, 3, max_children))
        out.append(example[:max_chars])
    return out
