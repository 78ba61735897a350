"""A deterministic drafting model (and judge) for `klong.models.fake_openai.FakeOpenAIServer`.

`FakeDrafter(fixtures_dir)` is a responder: for each chat request it returns, in order of preference,
1. a recorded answer from `fixtures_dir/<sha256 of the messages>.json` (`{"content": "..."}`), when present;
2. for a drafting step (system message `[klong-draft:<step>]`), a rule-based JSON answer derived from the paper in
   the request: sections become method components and skeleton children, their sentences Code Development leaves,
   sentences with numbers and table rows Result Analysis leaves, every leaf quoting the paper verbatim; numeric
   settings found only in the code summary's configs become addendum clarifications;
3. for a judge request (klong's judge prompts), a rule-based grade: a Code Development leaf passes when most of its
   content words occur in the submission's source files; Code Execution when the reproduction ran cleanly and its
   log echoes the criterion; Result Analysis when the reproduction ran cleanly, its log holds the criterion's numbers,
   and the submission holds code that computes (a function definition), so a repository that only prints the paper's
   numbers passes no result leaf.

`RecordingDrafter(model, base_url, api_key_env, fixtures_dir)` proxies each request to a real endpoint and saves the
answer as a fixture, so a later offline run replays it. Both run the production client code for real, offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from klong.io import atomic_write_json, read_json
from klong.judge.submission import tree_paths

_STEP = re.compile(r"^\[klong-draft:([\w-]+)\]")
_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")
_NUM = re.compile(r"(?<![\w.])\d+(?:\.\d+)?%?")
_LOC = re.compile(r"\b(Table|Figure)\s+\d+")
_SKIP = re.compile(r"abstract|introduction|related|conclusion|reference|acknowledg|appendix|limitation|broader|discussion",
                   re.IGNORECASE)  # fmt: skip
_EXPERIMENT = re.compile(r"experiment|result|evaluation|ablation|benchmark|comparison|study", re.IGNORECASE)
_SETUP = re.compile(r"setup|implementation detail|dataset|hyperparameter|training detail", re.IGNORECASE)
_STOP = set(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "from",
        "as",
        "at",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "has",
        "have",
        "had",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "we",
        "our",
        "us",
        "their",
        "they",
        "which",
        "such",
        "than",
        "then",
        "into",
        "over",
        "under",
        "about",
        "after",
        "before",
        "between",
        "both",
        "each",
        "also",
        "can",
        "may",
        "must",
        "should",
        "would",
        "could",
        "will",
        "not",
        "no",
        "code",
        "written",
        "implement",
        "implemented",
        "following",
        "described",
        "paper",
        "reproduced",
        "run",
        "results",
        "result",
        "reproduction",
        "shows",
        "show",
        "consistent",
        "reports",
        "reported",
        "using",
        "used",
        "use",
        "uses",
        "when",
        "where",
        "while",
        "there",
    ]
)


def request_key(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _tag(text: str, name: str) -> str:
    m = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.DOTALL)
    return m.group(1) if m else ""


def _reply(obj: Any) -> dict[str, Any]:
    content = json.dumps(obj, ensure_ascii=False)
    return {"content": content, "usage": {"prompt_tokens": 1000, "completion_tokens": len(content) // 4 + 1}}


# -- reading the paper ---------------------------------------------------------------------------------------------
def sections(paper: str) -> list[tuple[str, str]]:
    """(heading without numbering, body) for every markdown heading below the title, in order."""
    out: list[tuple[str, list[str]]] = []
    for line in paper.splitlines():
        m = re.match(r"^(#{2,6})\s+(.*)", line)
        if m:
            out.append((re.sub(r"^[\d.]+\s*", "", m.group(2)).strip(), []))
        elif out:
            out[-1][1].append(line)
    return [(h, "\n".join(body).strip()) for h, body in out]


def sentences(body: str) -> list[str]:
    """Prose sentences (tables, code and lists of links left out), each at most 60 words."""
    prose = []
    in_code = False
    for line in body.splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        if in_code or line.lstrip().startswith(("|", "#", "Image:", "<!--")):
            prose.append("\n")
            continue
        prose.append(line)
    text = " ".join(" ".join(prose).split("\n"))
    out = []
    for para in re.split(r"\s{2,}", text):
        for s in _SENT.split(para.strip()):
            s = " ".join(s.split())
            if len(s.split()) >= 5 and "http" not in s:
                out.append(" ".join(s.split()[:60]))
    return out


def table_rows(body: str) -> list[str]:
    rows = [
        ln.strip()
        for ln in body.splitlines()
        if ln.strip().startswith("|") and not re.match(r"^\|[\s:|-]+\|$", ln.strip())
    ]
    return rows[1:] if len(rows) > 1 else []  # the header row is not a result


def kind_of(heading: str) -> str | None:
    if _SKIP.search(heading):
        return None
    if _SETUP.search(heading):
        return "setup"
    return "experiment" if _EXPERIMENT.search(heading) else "contribution"


def _leaf(requirements: str, category: str, fine: str, quote: str, source: str = "paper") -> dict[str, Any]:
    return {"requirements": requirements, "task_category": category, "finegrained_task_category": fine,
            "quote": quote, "source": source}  # fmt: skip


def _groups(leaves: list[dict[str, Any]], heading: str, size: int = 4) -> list[dict[str, Any]]:
    out = []
    for k in range(0, len(leaves), size):
        chunk = leaves[k : k + size]
        if len(chunk) == 1 and out:
            out[-1]["sub_tasks"].append(chunk[0])
            continue
        first = " ".join(chunk[0]["quote"].split()[:8])
        out.append({"requirements": f'The part of "{heading}" beginning "{first} ..." has been addressed',
                    "sub_tasks": chunk})  # fmt: skip
    return out


def _config_facts(code_summary: str, paper: str) -> list[str]:
    """Numeric settings in the code summary's configs that the paper does not state."""
    configs = code_summary.split("\nConfigs:", 1)[1] if "\nConfigs:" in code_summary else ""
    facts = []
    for m in re.finditer(r"^\s*([A-Za-z][\w.]*)\s*[:=]\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*$", configs, re.MULTILINE):
        key, value = m.group(1), m.group(2)
        if value not in paper:
            facts.append(f"The {key.split('.')[-1].replace('_', ' ')} is {value}.")
    return facts


# -- the drafting steps --------------------------------------------------------------------------------------------
class FakeDrafter:
    def __init__(self, fixtures_dir: str | Path | None = None):
        self.fixtures_dir = Path(fixtures_dir) if fixtures_dir else None

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body.get("messages") or []
        if self.fixtures_dir is not None:
            path = self.fixtures_dir / f"{request_key(messages)}.json"
            if path.exists():
                return {"content": read_json(path)["content"]}
        system = str(messages[0].get("content", "")) if messages else ""
        user = str(messages[-1].get("content", "")) if messages else ""
        if (m := _STEP.match(system)) is not None:
            handler = getattr(self, "_" + m.group(1).split("-")[0], None)
            if handler is None:
                return {"status": 400, "message": f"fake drafter: unknown step {m.group(1)!r}"}
            return _reply(handler(user))
        return judge_reply(body)

    def _elements(self, user: str) -> dict[str, Any]:
        paper = _tag(user, "paper")
        comps, exps, claims = [], [], []
        for heading, body in sections(paper):
            ss = sentences(body)
            if heading.lower().startswith("abstract"):
                claims = ss[:5]
            kind = kind_of(heading)
            if kind is None or not ss:
                continue
            if kind == "experiment":
                exps.append(
                    {
                        "name": heading,
                        "description": ss[0],
                        "locators": sorted({m.group(0) for m in _LOC.finditer(body)}),
                    }
                )
            else:
                comps.append({"name": heading, "description": ss[0], "quote": ss[0]})
        if not comps and not exps:
            comps = [{"name": "Method", "description": "the paper's method", "quote": ""}]
        return {"claims": claims, "method_components": comps, "experiments": exps, "resources": [], "ambiguities": []}

    def _evidence(self, user: str) -> dict[str, Any]:
        paper = _tag(user, "paper")
        contributions = []
        for heading, body in sections(paper):
            if kind_of(heading) is None:
                continue
            facts = [{"text": s, "source": "paper", "quote": s} for s in sentences(body)[:20]]
            if facts:
                contributions.append({"name": heading, "facts": facts})
        code_facts = [
            {"text": f, "source": "code-only", "quote": ""} for f in _config_facts(_tag(user, "code_summary"), paper)
        ]
        if code_facts:
            contributions.append({"name": "Settings stated only by the code", "facts": code_facts})
        return {
            "contributions": contributions
            or [{"name": "Paper", "facts": [{"text": "the method", "source": "unresolved"}]}]
        }

    def _addendum(self, user: str) -> dict[str, Any]:
        title = re.search(r'"([^"]+)"', user)
        evidence = json.loads(_tag(user, "evidence") or "{}")
        code_only = [
            f["text"] for c in evidence.get("contributions", []) for f in c["facts"] if f["source"] == "code-only"
        ]
        return {"scope": f'Reproduce the method and the main-text experiments of "{title.group(1) if title else "the paper"}".',
                "resources": ["Public datasets named in the paper may be downloaded from their usual sources."],
                "scale_downs": ["Fewer training epochs are acceptable when the trends in the paper's tables still show."],
                "clarifications": code_only, "out_of_scope": ["Results that appear only in the appendix."]}  # fmt: skip

    def _skeleton(self, user: str) -> dict[str, Any]:
        paper = _tag(user, "paper")
        total = int(m.group(1)) if (m := re.search(r"add up to about (\d+) leaves", user)) else 60
        lo, hi = (int(m.group(1)), int(m.group(2))) if (m := re.search(r"(\d+) to (\d+)\s+children", user)) else (3, 13)
        picked = [(h, b, kind_of(h)) for h, b in sections(paper) if kind_of(h) and sentences(b)]
        picked = [p for p in picked if p[2] == "setup"] + [p for p in picked if p[2] != "setup"]
        picked = picked[:hi]
        words = [max(1, len(b.split())) for _, b, _ in picked]
        children = []
        for (heading, _, kind), w in zip(picked, words, strict=True):
            phrase = {"contribution": f"The {heading} has been implemented",
                      "experiment": f"The {heading} experiments have been reproduced",
                      "setup": f"The {heading} has been reproduced"}[kind]  # fmt: skip
            children.append({"requirements": phrase, "kind": kind, "focus": heading,
                             "leaf_budget": max(3, round(total * w / sum(words)))})  # fmt: skip
        while len(children) < max(2, min(lo, 2)):
            children.append({"requirements": "The paper's main claim has been reproduced", "kind": "contribution",
                             "focus": "", "leaf_budget": 3})  # fmt: skip
        return {"children": children}

    def _subtree(self, user: str) -> dict[str, Any]:
        paper, node = _tag(user, "paper"), json.loads(_tag(user, "node") or "{}")
        index = int(m.group(1)) if (m := re.search(r"child (\d+)", user)) else 1
        heading, kind, budget = node.get("focus", ""), node.get("kind", "contribution"), int(node.get("leaf_budget", 8))
        body = next((b for h, b in sections(paper) if h == heading), paper)
        leaves = []
        if index == 1:
            for line in re.findall(r"^- (.+)$", _tag(user, "addendum"), re.MULTILINE):
                if re.search(r"\d", line):
                    leaves.append(_leaf(f"Code has been written so that: {line}", "Code Development",
                                        "Experimental Setup", line, "addendum"))  # fmt: skip
        locators = sorted({m.group(0) for m in _LOC.finditer(body)})
        where = f" (see {locators[0]})" if locators else ""
        for s in sentences(body):
            has_num = bool(_NUM.search(s))
            if kind == "experiment" and has_num:
                leaves.append(_leaf(f"The reproduction shows the paper's finding{where}: {s}", "Result Analysis",
                                    "Evaluation, Metrics & Benchmarking", s))  # fmt: skip
            elif kind == "experiment":
                leaves.append(_leaf(f"The following has been run as described in the paper: {s}", "Code Execution",
                                    "Experimental Setup", s))  # fmt: skip
            else:
                fine = "Experimental Setup" if kind == "setup" else "Method Implementation"
                leaves.append(_leaf(f"Code has been written to implement the following, as the paper describes: {s}",
                                    "Code Development", fine, s))  # fmt: skip
        if kind == "experiment":
            leaves.insert(0, _leaf(f"Code has been written to run the {heading} experiments as the paper describes",
                                   "Code Development", "Experimental Setup", heading))  # fmt: skip
            for row in table_rows(body):
                label = row.strip("|").split("|")[0].strip()
                leaves.append(_leaf(f"The reproduction's {locators[0] if locators else 'results table'} reports "
                                    f"results for {label} consistent with the paper: {row}", "Result Analysis",
                                    "Evaluation, Metrics & Benchmarking", row))  # fmt: skip
        leaves = leaves[: max(budget, 3)] or [
            _leaf(
                node.get("requirements", "The method has been implemented"),
                "Code Development",
                "Method Implementation",
                heading or "method",
            )
        ]
        return {"sub_tasks": _groups(leaves, heading or "the paper") if len(leaves) > 4 else leaves}

    def _weights(self, user: str) -> dict[str, Any]:
        for line in _tag(user, "outline").splitlines():
            m = re.match(r"^(\d+) .*has been implemented$", line)
            if m:
                return {"weights": {m.group(1): 3}}
        return {"weights": {}}

    def _review(self, user: str) -> dict[str, Any]:
        issues = [{"subtree": int(m.group(1)), "problem": m.group(2)}
                  for m in re.finditer(r"^- subtree (\d+): (.+)$", _tag(user, "problems"), re.MULTILINE)]  # fmt: skip
        return {"issues": issues}

    def _repair(self, user: str) -> dict[str, Any]:
        current = json.loads(_tag(user, "current") or '{"sub_tasks": []}')
        paper, addendum = _tag(user, "paper"), _tag(user, "addendum")

        def ok(n: dict[str, Any]) -> dict[str, Any] | None:
            if n.get("sub_tasks"):
                kids = [k for k in (ok(c) for c in n["sub_tasks"]) if k is not None]
                return {**n, "sub_tasks": kids} if len(kids) > 1 else (kids[0] if kids else None)
            words = n["requirements"].split()
            if " ".join((n.get("quote") or "").split()) not in " ".join(f"{paper}\n{addendum}".split()):
                return None
            return {**n, "requirements": " ".join(words[:150])}

        kept = [k for k in (ok(c) for c in current["sub_tasks"]) if k is not None]
        return {"sub_tasks": kept or current["sub_tasks"]}


# -- the judge -----------------------------------------------------------------------------------------------------
_FILE = re.compile(r"## File: (?P<path>\S+)\n```\n(?P<text>.*?)\n```", re.DOTALL)
_CODE_SUFFIXES = (".py", ".ipynb", ".jl", ".r", ".c", ".cc", ".cpp", ".cu", ".js", ".ts", ".rs", ".go", ".java")


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9]+", text.lower().replace("_", " ")) if len(w) >= 4 and w not in _STOP}


def judge_reply(body: dict[str, Any]) -> dict[str, Any]:
    """A rule-based grade for klong's judge prompts (see the module doc)."""
    prompt = str((body.get("messages") or [{}])[-1].get("content", ""))
    if "List the files most useful" in prompt:
        listing = prompt.split("Files:\n", 1)[-1].split("\n\nAnswer", 1)[0]
        return _reply({"files": tree_paths(listing)})
    m = re.search(r"^Criterion \(([^)]*)\): (.*)$", prompt, re.MULTILINE)
    if m is None:
        return {"status": 400, "message": "fake drafter: neither a drafting step nor a judge request"}
    category, criterion = m.group(1), m.group(2)
    files = {f["path"]: f["text"] for f in _FILE.finditer(prompt)}
    code = "\n".join(t for p, t in files.items() if p.lower().endswith(_CODE_SUFFIXES))
    log_m = re.search(r"# reproduce\.log \(exit code (\d+)[^)]*\)\n```\n(.*?)\n```", prompt, re.DOTALL)
    ran_ok = log_m is not None and log_m.group(1) == "0"
    log = log_m.group(2) if log_m else ""
    wanted = _words(criterion)
    if category == "Code Development":
        share = len(wanted & _words(code)) / len(wanted) if wanted else 0.0
        score, why = int(bool(code) and share >= 0.5), f"{share:.0%} of the criterion's terms occur in the source files"
    elif category == "Code Execution":
        share = len(wanted & _words(log + code)) / len(wanted) if wanted else 0.0
        score, why = int(ran_ok and bool(code) and share >= 0.4), f"ran cleanly: {ran_ok}; {share:.0%} of terms seen"
    else:
        numbers = set(_NUM.findall(criterion))
        computes = re.search(r"^\s*def \w+\(", code, re.MULTILINE) is not None
        score = int(ran_ok and computes and numbers <= set(_NUM.findall(log)))
        why = (
            f"ran cleanly: {ran_ok}; code computes: {computes}; numbers in the log: {numbers <= set(_NUM.findall(log))}"
        )
    return _reply({"expectations": criterion, "reality": why, "score": score})


class RecordingDrafter:
    """Proxies each request to a real OpenAI-compatible endpoint and saves the answer as a fixture."""

    def __init__(self, model: str, base_url: str | None, api_key_env: str, fixtures_dir: str | Path):
        import openai

        self.model = model.partition(":")[2] or model
        self.fixtures_dir = Path(fixtures_dir)
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get(api_key_env) or "EMPTY")

    def __call__(self, body: dict[str, Any]) -> dict[str, Any]:
        import openai

        request = {k: v for k, v in body.items() if k not in ("model", "stream")}
        try:
            response = self.client.chat.completions.create(model=self.model, **request)
        except openai.APIStatusError as e:
            return {"status": e.status_code, "message": f"recording proxy: {e.message}"}
        content = response.choices[0].message.content or ""
        atomic_write_json(self.fixtures_dir / f"{request_key(body.get('messages') or [])}.json",
                          {"content": content, "model": self.model}, indent=1)  # fmt: skip
        usage = response.usage
        return {"content": content, "usage": {"prompt_tokens": usage.prompt_tokens if usage else 0,
                                              "completion_tokens": usage.completion_tokens if usage else 0}}  # fmt: skip
