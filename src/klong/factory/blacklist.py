"""`klong factory blacklist`: the paper's official code repositories, in PaperBench's `blacklist.txt` format.

Extraction (`find_repo_links`): repository URLs in the paper text on github.com, gitlab.com, bitbucket.org and
huggingface.co (models, `datasets/`, `spaces/`), reduced to the repository (`/tree/main/x`, `.git`, a trailing `).`
dropped) and repaired where the PDF broke them across lines (a space or line break after a `/`, a hyphen the
converter kept). Each link is then judged from the sentence around it:

- **official**: the record already says so (an HF paper page's `githubRepo`, a user list); or the sentence carries a
  release cue ("our code", "code is available", "we release", "open-source", "project page", `Code:`) nearer to the
  link than any third-party cue; or, for a code host, the link stands in the paper's opening (title, abstract, first
  footnotes: the first `early_fraction` of the text) with no third-party cue;
- **third-party** otherwise ("we use the implementation of", "based on", "baseline", "from the authors of", a
  citation): kept out of the blacklist unless `include_third_party` is set, but recorded in the decisions file.

Mirrors policy: PaperBench lists one URL per line, and klong's monitor matches an entry as a substring after dropping
the scheme, `www.` and `.git`, so `https://github.com/O/R` already covers `.git`, `/archive/...`, `codeload` and
`pip install git+https://...`. With `mirrors` on (default) each official GitHub/GitLab repository also gets the two
forms that do not contain that string: `git@github.com:O/R` (SSH clone) and `https://raw.githubusercontent.com/O/R`
(raw files). The file is the canonical URLs first, then mirrors, then `extra`; `none` when there is nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from klong.factory.layout import run_per_paper, stage_dir
from klong.factory.records import CodeLink, PaperRecord
from klong.factory.sources.progress import Progress
from klong.io import atomic_write_text

STAGE = "blacklist"

_SEP = r"[ \t]*\n?[ \t]*/[ \t]*\n?[ \t]*"  # a slash, maybe with a line break the PDF put around it
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]|-\s+(?=[a-z]))*"
_URL = re.compile(
    r"(?:https?\s*:\s*//\s*)?(?:www\.)?(?P<host>github\.com|gitlab\.com|bitbucket\.org|huggingface\.co)"
    rf"{_SEP}(?:(?P<kind>datasets|spaces){_SEP})?(?P<owner>{_NAME}){_SEP}(?P<repo>{_NAME})",
    re.I,
)
_NOT_OWNERS = {"features", "topics", "orgs", "sponsors", "marketplace", "settings", "about", "pricing", "login",
               "explore", "collections", "docs", "blog", "papers", "models", "learn", "join", "site", "users"}  # fmt: skip
_OFFICIAL_CUES = re.compile(
    r"\bour (?:code|implementation|source|software|repository|models?|datasets?|benchmark)|\bcode (?:and [a-z ]+ )?"
    r"(?:is|are|will be) (?:publicly |made )?(?:available|released)|\b(?:we|are) (?:publicly )?(?:release|open[- ]?source)"
    r"|\bopen[- ]?sourced?\b|\bproject (?:page|website)|\bcode\s*:|\bgithub\s*:|\bavailable (?:at|from|on)\b"
    r"|\bcan be found at\b|\breleased? (?:at|on)\b|\bto reproduce our\b",
    re.I,
)
_THIRD_PARTY_CUES = re.compile(
    r"\bwe (?:use|used|adopt|adapt|follow|employ)\b|\bbased on\b|\bbuilt? (?:up)?on\b|\bbaselines?\b"
    r"|\busing the\b|\bfrom the authors\b|\bimplementation (?:of|from|by)\b|\bprovided by\b|\bet al\.|\bborrowed\b|\bthird[- ]party\b"
    r"|\boriginal (?:code|implementation)\b|\bpretrained (?:checkpoints?|weights|models?) (?:from|of)\b",
    re.I,
)


class RepoLink(BaseModel):
    """One repository found for a paper, with the decision taken about it."""

    url: str
    """Canonical form: `https://github.com/owner/repo` (no `.git`, no trailing slash, no sub-path)."""
    official: bool
    source: str
    """`paper_text` or the record's code-link source."""
    reason: str


class BlacklistConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_third_party: bool = False
    """Also blacklist repositories the paper cites but does not own (baselines, datasets)."""
    mirrors: bool = True
    """Add `git@host:O/R` and `raw.githubusercontent.com/O/R` forms of each official GitHub/GitLab repository."""
    extra: list[str] = Field(default_factory=list)
    """Entries added to every paper's blacklist."""
    early_fraction: float = 0.12
    """A code link in this leading share of the text (title, abstract, first footnotes) counts as the authors'."""
    require_official: bool = False
    """Drop papers for which no official repository is known."""


def canonical(host: str, owner: str, repo: str, kind: str | None = None) -> str:
    """`https://HOST/[KIND/]OWNER/REPO` with `.git`, trailing dots and line-break debris removed."""
    owner, repo = (re.sub(r"-\s+", "-", x) for x in (owner, repo))
    repo = re.sub(r"\.git$", "", repo.rstrip("."), flags=re.I).rstrip(".")
    prefix = f"{kind.lower()}/" if kind else ""
    return f"https://{host.lower()}/{prefix}{owner}/{repo}"


def canonical_url(url: str) -> str | None:
    """The canonical repository URL of any link `find_repo_links` would recognise, else None."""
    m = _URL.search(url)
    if not m or m["owner"].lower() in _NOT_OWNERS:
        return None
    return canonical(m["host"], m["owner"], m["repo"], m["kind"])


def _sentence(text: str, start: int, end: int) -> tuple[str, str]:
    """The text of the link's sentence before and after the link (bounded)."""
    before = text[max(0, start - 300) : start].rstrip()  # a link alone in its paragraph belongs to the one before
    cut = max(before.rfind(". "), before.rfind("\n\n"))
    before = before[cut + 1 :] if cut >= 0 else before
    after = text[end : end + 120]
    stop = re.search(r"\.\s|\n\n", after)
    return before, after[: stop.start()] if stop else after


def _judge(text: str, m: re.Match[str], record: PaperRecord, config: BlacklistConfig) -> tuple[bool, str]:
    before, after = _sentence(text, m.start(), m.end())
    official = list(_OFFICIAL_CUES.finditer(before))
    third = list(_THIRD_PARTY_CUES.finditer(before))
    if official and (not third or official[-1].end() > third[-1].end()):  # the nearest cue wins
        return True, f"release cue {official[-1].group(0)!r} before the link"
    if third:
        return False, f"third-party cue {third[-1].group(0)!r} before the link"
    if _OFFICIAL_CUES.search(after) and not _THIRD_PARTY_CUES.search(after):
        return True, "release cue after the link"
    if _THIRD_PARTY_CUES.search(after):
        return False, "third-party cue after the link"
    if m["kind"] is None and m.start() < config.early_fraction * len(text) and m["host"].lower() != "huggingface.co":
        return True, "code link in the paper's opening (title, abstract, first footnotes)"
    return False, "no release cue near the link"


def find_repo_links(text: str, record: PaperRecord, config: BlacklistConfig | None = None) -> list[RepoLink]:
    """Every repository linked from the paper text or the record, canonicalised, deduplicated, with a decision."""
    config = config or BlacklistConfig()
    links: dict[str, RepoLink] = {}
    for c in record.code_links:
        url = canonical_url(c.url)
        if url and c.official:
            links[url.lower()] = RepoLink(
                url=url, official=True, source=c.source, reason=f"record: official ({c.source})"
            )
    for m in _URL.finditer(text):
        if m["owner"].lower() in _NOT_OWNERS:
            continue
        url = canonical(m["host"], m["owner"], m["repo"], m["kind"])
        key = url.lower()
        official, reason = _judge(text, m, record, config)
        if key not in links or (official and not links[key].official):
            links[key] = RepoLink(url=url, official=official, source="paper_text", reason=reason)
    for c in record.code_links:
        url = canonical_url(c.url)
        if url and url.lower() not in links:
            links[url.lower()] = RepoLink(
                url=url, official=False, source=c.source, reason=f"record: not official ({c.source})"
            )
    return list(links.values())


def mirror_forms(url: str) -> list[str]:
    """The other forms of a repository URL that a fetch could use and that do not contain the canonical string."""
    m = re.match(r"https://(github\.com|gitlab\.com)/([^/]+)/([^/]+)$", url)
    if not m:
        return []
    host, owner, repo = m.groups()
    forms = [f"git@{host}:{owner}/{repo}"]
    if host == "github.com":
        forms.append(f"https://raw.githubusercontent.com/{owner}/{repo}")
    return forms


def blacklist_entries(links: list[RepoLink], config: BlacklistConfig) -> list[str]:
    """The blacklist lines: chosen canonical URLs, then their mirrors, then `extra` (deduplicated, in order)."""
    chosen = [x.url for x in links if x.official or config.include_third_party]
    mirrors = [f for url in chosen for f in mirror_forms(url)] if config.mirrors else []
    return list(dict.fromkeys([*chosen, *mirrors, *config.extra]))


def format_blacklist(entries: list[str]) -> str:
    """PaperBench's `blacklist.txt`: one entry per line, `none` when empty."""
    return "\n".join(entries) + "\n" if entries else "none\n"


def blacklist_one(root: Path, rec: PaperRecord, config: BlacklistConfig) -> PaperRecord:
    """Extract one active paper's blacklist; returns the record with `files.blacklist`, code links and a note."""
    md = rec.files.get("markdown")
    if md is None or not (root / md).is_file():
        return rec.dropped(STAGE, f"blacklist: no converted markdown ({md or 'files.markdown missing'}; run convert)")
    links = find_repo_links((root / md).read_text(encoding="utf-8", errors="replace"), rec, config)
    entries = blacklist_entries(links, config)
    official = [x for x in links if x.official]
    if config.require_official and not official:
        return rec.dropped(STAGE, f"blacklist: no official repository found ({len(links)} third-party links)")
    out = stage_dir(root, STAGE) / f"{rec.slug}.txt"
    atomic_write_text(out, format_blacklist(entries))
    atomic_write_text(out.with_suffix(".links.json"), json.dumps([x.model_dump() for x in links], indent=2) + "\n")
    known = {canonical_url(c.url) or c.url for c in rec.code_links}
    new_links = [CodeLink(url=x.url, source="paper_text", official=x.official) for x in links if x.url not in known]
    note = (f"{len(official)} official ({', '.join(x.url for x in official) or 'none'}), "
            f"{len(links) - len(official)} third-party; {len(entries)} entries")  # fmt: skip
    return rec.model_copy(update={"files": {**rec.files, "blacklist": str(out.relative_to(root))},
                                  "code_links": [*rec.code_links, *new_links], "notes": {**rec.notes, STAGE: note}})  # fmt: skip


def run_blacklist(
    root: str | Path, config: BlacklistConfig, *, resume: bool = True, progress: Progress | None = None
) -> list[PaperRecord]:
    """Write `blacklist/<slug>.txt` for every active paper of `convert/papers.jsonl`; returns the records."""
    root = Path(root)
    return run_per_paper(
        root, STAGE, config, lambda rec: blacklist_one(root, rec, config), resume=resume, progress=progress
    )
