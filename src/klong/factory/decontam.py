"""`klong factory decontam`: drop every paper that is (or may be) one of an evaluation set's papers.

Evaluation sets: PaperBench's 23 papers (shipped as `klong/factory/data/paperbench.yaml`) plus any list a user supplies
(`--against FILE`): YAML/JSON (a list of papers, or `{name:, papers: [...]}`, each with `id`, `title`, `arxiv_id`,
`openreview_id`, `doi`, `abstract`, `repos`) or plain text (one title, arXiv id/URL or repository URL per line).

A paper is flagged when any of these match an evaluation paper (checked in this order, the first match is the reason):
ids (arXiv id without version, OpenReview id, DOI, the evaluation id as the paper's slug); the official repository URL
(normalised: scheme, `www.`, `git@host:` form, `.git`, trailing path, case; mirrors on another host match by
owner/name); normalised titles; fuzzy titles (difflib ratio >= `title_threshold`, also after a `Name:` prefix); abstract
similarity (Jaccard of word 3-shingles >= `abstract_threshold`). Each flagged paper is dropped with a reason naming the
set, the evaluation paper and the evidence, and listed in `decontam/matches.jsonl`.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from klong.exceptions import InputFileError
from klong.factory.layout import dump_jsonl, read_input, stage_dir, write_papers
from klong.factory.records import PaperRecord
from klong.factory.sources.progress import Progress
from klong.io import atomic_write_json, read_json, read_text, read_yaml, validate_record

STAGE = "decontam"


class EvalPaper(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = ""
    title: str = ""
    arxiv_id: str | None = None
    openreview_id: str | None = None
    doi: str | None = None
    abstract: str = ""
    repos: list[str] = Field(default_factory=list)


class EvalSet(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    papers: list[EvalPaper]


class DecontamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    builtin: list[str] = Field(default_factory=lambda: ["paperbench"])
    """Evaluation sets shipped with klong (`paperbench`)."""
    against: list[str] = Field(default_factory=list)
    """Extra evaluation lists (YAML/JSON/txt files)."""
    title_threshold: float = 0.9
    """difflib ratio on normalised titles at or above which titles match."""
    abstract_threshold: float = 0.5
    """Jaccard similarity of word 3-shingles at or above which abstracts match."""
    all_code_links: bool = False
    """Also match non-official code links against the sets' repositories (default: official links only)."""


class Match(BaseModel):
    set: str
    eval_id: str
    kind: str
    detail: str


def normalize_title(title: str) -> str:
    """Lowercase ASCII words separated by single spaces: case, accents, punctuation and spacing removed."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii").lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def normalize_repo(url: str) -> tuple[str, str] | None:
    """`(host, "owner/name")` of a repository URL in any usual form, or None when it is not one."""
    text = url.strip().lower()
    if not text or text in ("none", "n/a"):
        return None
    m = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+)$", text)
    if m:
        host, path = m.group(1), m.group(2)
    else:
        text = re.sub(r"^(git\+)?[a-z]+://", "", text)
        host, _, path = text.partition("/")
    host = host.removeprefix("www.").split("@")[-1].split(":")[0]
    parts = [p for p in re.split(r"[/?#]", path) if p]
    if len(parts) < 2:
        return None
    owner, name = parts[0], parts[1].removesuffix(".git")
    return host, f"{owner}/{name}"


def shingles(text: str, n: int = 3) -> set[str]:
    words = normalize_title(text).split()
    return {" ".join(words[i : i + n]) for i in range(max(0, len(words) - n + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def _title_variants(title: str) -> list[str]:
    norm = normalize_title(title)
    out = [norm]
    if ":" in title:
        rest = normalize_title(title.split(":", 1)[1])
        if len(rest.split()) >= 4:
            out.append(rest)
    return out


def builtin_eval_set(name: str) -> EvalSet:
    path = resources.files("klong.factory").joinpath("data", f"{name}.yaml")
    if not path.is_file():
        raise InputFileError(str(path), f"no built-in evaluation set {name!r}")
    return validate_record(EvalSet, read_yaml(Path(str(path))), str(path), what="evaluation set")


def load_eval_set(path: str | Path) -> EvalSet:
    """Read a user-supplied evaluation list (YAML, JSON or text); errors name the file."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        data = read_json(path) if path.suffix.lower() == ".json" else read_yaml(path)
        if isinstance(data, list):
            data = {"papers": data}
        if not isinstance(data, dict):
            raise InputFileError(path, "expected a list of papers or a mapping with `papers:`")
        data = {"name": data.get("name") or path.stem, **data}
        eval_set = validate_record(EvalSet, data, path, what="evaluation list")
    else:
        from klong.factory.sources.arxiv_source import normalize_arxiv_id

        papers = []
        for i, line in enumerate(read_text(path).splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            repo = normalize_repo(line) if ("://" in line or line.startswith("git@")) else None
            if repo and "arxiv.org" not in repo[0]:
                papers.append(EvalPaper(id=f"line {i}", repos=[line]))
            elif (aid := normalize_arxiv_id(line)) and len(line) <= 60 and len(line.split()) == 1:
                papers.append(EvalPaper(id=f"line {i}", arxiv_id=aid))
            else:
                papers.append(EvalPaper(id=f"line {i}", title=line))
        eval_set = EvalSet(name=path.stem, papers=papers)
    for p in eval_set.papers:
        if not (p.title or p.arxiv_id or p.openreview_id or p.doi or p.repos or p.abstract):
            raise InputFileError(path, f"evaluation paper {p.id!r} has nothing to match on (title, ids or repos)")
    return eval_set


class Decontaminator:
    """Matches paper records against evaluation sets (see the module docstring for the rules)."""

    def __init__(self, sets: Sequence[EvalSet], config: DecontamConfig):
        from klong.factory.sources.arxiv_source import normalize_arxiv_id

        self.config = config
        self.entries = []
        for s in sets:
            for p in s.papers:
                self.entries.append(
                    (
                        s.name,
                        p,
                        normalize_arxiv_id(p.arxiv_id),
                        _title_variants(p.title) if p.title else [],
                        shingles(p.abstract),
                        {r[1]: u for u in p.repos if (r := normalize_repo(u))},
                    )
                )

    def match(self, record: PaperRecord) -> Match | None:
        from klong.factory.sources.arxiv_source import normalize_arxiv_id

        arxiv_id = normalize_arxiv_id(record.arxiv_id)
        links = [c for c in record.code_links if c.official or self.config.all_code_links]
        repos = {r[1]: c.url for c in links if (r := normalize_repo(c.url))}
        titles = _title_variants(record.title)
        abstract = shingles(record.abstract)
        for name, p, p_arxiv, _, _, p_repos in self.entries:
            if arxiv_id and p_arxiv == arxiv_id:
                return Match(set=name, eval_id=p.id, kind="arxiv_id", detail=f"arXiv id {arxiv_id}")
            if record.openreview_id and p.openreview_id == record.openreview_id:
                return Match(set=name, eval_id=p.id, kind="openreview_id", detail=f"OpenReview id {p.openreview_id}")
            if record.doi and p.doi and record.doi.lower() == p.doi.lower():
                return Match(set=name, eval_id=p.id, kind="doi", detail=f"DOI {p.doi}")
            if p.id and record.slug == p.id:
                return Match(set=name, eval_id=p.id, kind="id", detail=f"paper id {p.id!r}")
            for owner_name, url in repos.items():
                if owner_name in p_repos:
                    return Match(set=name, eval_id=p.id, kind="repository",
                                 detail=f"code link {url} is the evaluation repository {p_repos[owner_name]}")  # fmt: skip
        best: tuple[float, str, EvalPaper] | None = None
        for name, p, _, p_titles, _, _ in self.entries:
            for a in titles:
                for b in p_titles:
                    ratio = 1.0 if a == b else difflib.SequenceMatcher(None, a, b).ratio()
                    if ratio >= self.config.title_threshold and (best is None or ratio > best[0]):
                        best = (ratio, name, p)
        if best is not None:
            ratio, name, p = best
            kind = "title" if ratio == 1.0 else "fuzzy_title"
            return Match(
                set=name, eval_id=p.id, kind=kind, detail=f"title matches {p.title!r} (similarity {ratio:.2f})"
            )
        for name, p, _, _, p_abstract, _ in self.entries:
            sim = jaccard(abstract, p_abstract)
            if sim >= self.config.abstract_threshold:
                return Match(set=name, eval_id=p.id, kind="abstract",
                             detail=f"abstract similar to {p.title or p.id!r}'s (3-shingle Jaccard {sim:.2f})")  # fmt: skip
        return None


def eval_sets(config: DecontamConfig) -> list[EvalSet]:
    return [builtin_eval_set(n) for n in config.builtin] + [load_eval_set(p) for p in config.against]


def run_decontam(
    root: str | Path, config: DecontamConfig, *, resume: bool = True, progress: Progress | None = None
) -> list[PaperRecord]:
    """Flag and drop contaminated papers; writes `decontam/papers.jsonl` and `decontam/matches.jsonl`.

    Matching is cheap and deterministic, so the whole stage is recomputed on every run (`resume` is accepted for a
    uniform signature). Papers dropped earlier are copied through untouched.
    """
    from klong.factory.config import save_stage_config

    records = read_input(root, STAGE)
    sets = eval_sets(config)
    checker = Decontaminator(sets, config)
    out, matches = [], []
    for rec in records:
        if rec.active and (m := checker.match(rec)) is not None:
            rec = rec.dropped(STAGE, f"decontam: {m.detail} -> {m.set} paper {m.eval_id!r} ({m.kind})")
            matches.append({"key": rec.key, "title": rec.title, **m.model_dump()})
        out.append(rec)
        if progress is not None:
            progress(rec)
    d = stage_dir(root, STAGE)
    d.mkdir(parents=True, exist_ok=True)
    write_papers(d / "papers.jsonl", out)
    dump_jsonl(d / "matches.jsonl", matches)
    save_stage_config(d, config)
    atomic_write_json(d / "sets.json", [{"name": s.name, "papers": len(s.papers)} for s in sets], indent=2)
    return out
