"""An LLM leaf judge equivalent to PaperBench's SimpleJudge (project/paperbench/paperbench/judge/simple.py).

Once per submission (as PaperBench's `before_grading`): read `reproduce.sh` and `reproduce.log` (first 200,000
characters; repeated log lines collapsed), measure paper and log in tokens of the judge's tokenizer
(`klong.judge.tokens`), cut the log to half the context window and, when paper and log still overflow it, the log and
then the paper; the budget for files is the context window minus the paper, minus the log for execution and result
leaves, minus 10,000 tokens; per category, the whitelisted files (`Submission.whitelisted`) drawn as a tree (limited to
depth 4, then cut, when it does not fit). Per leaf: (1) the model sees paper, addendum, criterion and tree, and ranks
the files; (2) the top 10 are read in that order until the budget (less 2,000 tokens) is used, the last one cut on a
line boundary; (3) the model sees paper, addendum, those files, `reproduce.sh` (Code Development and Code Execution
and Result Analysis; nothing for Code-Dev), `reproduce.log` (execution and result leaves), the rubric nodes before the
criterion, the criterion and its category's question, and answers with expectations, reality and a 0/1 score.
Result Analysis leaves score 0 without a model call when the reproduction touched no file they may see.

An answer that cannot be read locally is handed back to the model to extract (PaperBench's parsing step); a leaf
whose answer still cannot be read, or whose calls fail after retries, scores 0 with `valid_score: false`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from klong.exceptions import ModelError
from klong.judge import prompts as P
from klong.judge.base import JudgeConfig, LeafContext, LeafGrade, Usage, add_usage, judge_addendum
from klong.judge.parse import ParsedGrade, parse_file_ranking, parse_grade
from klong.judge.submission import REPRODUCE_LOG, REPRODUCE_SCRIPT, Submission, SubmissionFile, file_tree, reduce_log
from klong.judge.tokens import DEFAULT_CONTEXT, context_window, make_counter
from klong.protocols import Model
from klong.schema import Message

CATEGORIES = ("Code Development", "Code Execution", "Result Analysis")
"""PaperBench's addendum for the judge only, beside `addendum.md` in a paper folder."""
MISSING = "(Does not exist)"
NOT_TOUCHED = "Reproduce.sh did not touch any files, so there are no reproduced results to analyze."
FILE_BUFFER_TOKENS = 2000
LOG_MARGIN_TOKENS = 5000
PINN_PRIOR_NODES = 5
"""PaperBench limits the context nodes of its largest rubric (`pinn`) to 5."""


@dataclass
class _Prepared:
    submission: Submission
    paper: str
    addendum: str
    reproduce_sh: str
    log: str
    log_status: str
    avail: dict[str, int] = field(default_factory=dict)
    files: dict[str, list[SubmissionFile]] = field(default_factory=dict)
    trees: dict[str, str] = field(default_factory=dict)
    touched: bool = False


class SimpleJudge:
    judge_type = "simple"
    cacheable = True

    def __init__(self, model: Model, config: JudgeConfig | None = None):
        self.model = model
        self.config = config or JudgeConfig()
        self.name = model.name
        self.model_name = getattr(model, "model_name", None) or model.name
        """The model as PaperBench names it in token usage (`gpt-4.1`, without klong's `openai:`)."""
        tokenizer = self.config.tokenizer
        if tokenizer is None and model.name.startswith("hf:") and Path(model.name[3:]).is_dir():
            tokenizer = model.name[3:]
        self.counter = make_counter(self.config.token_counter, self.model_name, tokenizer, self.config.chars_per_token)
        self.context_tokens = self.config.context_tokens or context_window(self.model_name) or DEFAULT_CONTEXT
        self._prepared: OrderedDict[tuple, _Prepared] = OrderedDict()

    def identity(self) -> dict[str, Any]:
        settings = getattr(self.model, "config", None)
        sampling = None
        if settings is not None and hasattr(settings, "model_dump"):
            sampling = settings.model_dump(include={"temperature", "top_p", "max_tokens", "seed", "dtype"})
        base_url = getattr(self.model, "endpoint", None)  # a vllm: model attached to a server names it
        client = getattr(self.model, "client", None)
        if base_url is None and client is not None and getattr(client, "base_url", None):
            base_url = str(client.base_url)
        return {"judge_type": self.judge_type, "model": self.name, "base_url": base_url, "sampling": sampling,
                "config": self.config.model_dump(), "counter": self.counter.name, "context": self.context_tokens,
                "prompt_version": P.PROMPT_VERSION}  # fmt: skip

    def completer_config(self) -> dict[str, Any]:
        """The sampling settings in the shape of PaperBench's `OpenAICompletionsTurnCompleter.Config`."""
        out: dict[str, Any] = {"model": self.model_name}
        settings = getattr(self.model, "config", None)
        for key in ("temperature", "top_p", "max_tokens"):
            if settings is not None and hasattr(settings, key):
                out[key] = getattr(settings, key)
        return out

    # -- once per submission ---------------------------------------------------------------------------------------
    def _prepare(self, ctx: LeafContext) -> _Prepared:
        key = (id(ctx.submission), str(ctx.submission.root), ctx.task.id, ctx.code_only)
        if key in self._prepared:
            self._prepared.move_to_end(key)
            return self._prepared[key]
        c, count, head, sub = self.config, self.counter.count, self.counter.head, ctx.submission
        n_ctx = self.context_tokens
        addendum = f"{ctx.task.addendum}\n{judge_addendum(ctx.task)}".strip() or "(NO ADDENDUM GIVEN)"
        script = sub.read_text(REPRODUCE_SCRIPT, c.file_read_chars)
        log = sub.read_text(REPRODUCE_LOG, c.file_read_chars)
        log = MISSING if log is None else (reduce_log(log) if c.reduce_log else log)
        paper = ctx.task.paper
        paper_n, log_n = count(paper), count(log)
        if log_n > n_ctx // 2:
            log = self._cut(log, n_ctx // 2)
            log_n = count(log)
        if paper_n + log_n > n_ctx:
            log = self._cut(log, n_ctx - paper_n - LOG_MARGIN_TOKENS)
            log_n = count(log)
        if paper_n + log_n > n_ctx:
            paper = head(paper, n_ctx - log_n - LOG_MARGIN_TOKENS)
            paper_n = count(paper)
        info = sub.reproduction
        status = ""
        if info is not None:
            status = " (timed out" if info.timed_out else f" (exit code {info.exit_code}"
            status += f", {info.duration:.0f} s)"
        prep = _Prepared(sub, paper, addendum, MISSING if script is None else script, log, status)
        for category in CATEGORIES:
            reserved = paper_n + (0 if category == "Code Development" else log_n)
            avail = n_ctx - reserved - c.buffer_tokens
            files = sub.whitelisted(category, whitelist=c.whitelist)
            tree = file_tree([f.path for f in files])
            if count(tree) >= avail:
                files = sub.whitelisted(category, whitelist=c.whitelist, max_depth=c.max_file_depth)
                tree = file_tree([f.path for f in files])
                if count(tree) >= avail:
                    tree = head(tree, avail)
            prep.avail[category], prep.files[category], prep.trees[category] = avail, files, tree
        prep.touched = sub.reproduction_touched(prep.files["Result Analysis"])
        self._prepared[key] = prep
        while len(self._prepared) > 8:
            self._prepared.popitem(last=False)
        return prep

    def _cut(self, text: str, tokens: int) -> str:
        """The log cut to `tokens`: its head (PaperBench), or head and tail (`log_tail`)."""
        if tokens <= 0:
            return ""
        if not self.config.log_tail:
            return self.counter.head(text, tokens)
        first = self.counter.head(text, tokens // 2)
        room, tail = tokens - tokens // 2, []
        for line in reversed(text[len(first) :].splitlines()):
            room -= self.counter.count(line + "\n")
            if room < 0:
                break
            tail.append(line)
        tail = "\n".join(reversed(tail))
        return first + "\n[... log cut ...]\n" + tail

    # -- per leaf --------------------------------------------------------------------------------------------------
    async def _ask(self, system: str, prompt: str, usage: Usage, calls: list[int], *, json_mode: bool = False) -> str:
        reply = await self.model.generate([Message(role="system", content=system), Message(role="user", content=prompt)],
                                          json_mode=json_mode)  # fmt: skip
        calls[0] += 1
        if reply.usage is not None:
            add_usage(usage, self.model_name, reply.usage.prompt_tokens, reply.usage.completion_tokens)
        else:
            add_usage(usage, self.model_name, 0, 0)
        return reply.content or ""

    def _files(self, prep: _Prepared, order: list[str], budget: int) -> tuple[str, list[str]]:
        """The files in `order`, each as a `## File:` block, until `budget` tokens are used (the last one cut at a
        line boundary), as PaperBench concatenates them."""
        blocks, shown, used = [], [], 0
        for path in order[: self.config.max_ranked_files]:
            text = prep.submission.read_text(path, self.config.file_read_chars)
            if text is None:
                continue
            opening, closing = f"## File: {path}\n```\n", "\n```"
            block = opening + (text if text.strip() else "(FILE IS EMPTY)") + closing
            n = self.counter.count(block + "\n\n")
            if used + n > budget:
                room = budget - used - self.counter.count(opening + closing + "\n\n")
                cut = self.counter.head(text, room).rsplit("\n", 1)[0] if room > 0 else ""
                if cut:
                    blocks.append(opening + cut + closing)
                    shown.append(path)
                break
            blocks.append(block)
            shown.append(path)
            used += n
        return "\n\n".join(blocks), shown

    def _reproduction(self, prep: _Prepared, category: str, code_only: bool) -> str:
        if code_only:
            return ""
        out = (
            f"\nHere is the `reproduce.sh` of the submission, if any:\n# reproduce.sh\n```\n{prep.reproduce_sh}\n```\n"
        )
        if category != "Code Development":
            out += f"\nHere is the `reproduce.log` of the submission, if any:\n# reproduce.log{prep.log_status}\n```\n{prep.log}\n```\n"  # fmt: skip
        return out

    async def grade_leaf(self, ctx: LeafContext) -> LeafGrade:
        c = self.config
        category = ctx.node.task_category or "Code Development"
        prep = self._prepare(ctx)
        if category == "Result Analysis" and not prep.touched:
            return LeafGrade(0.0, True, NOT_TOUCHED, metadata={"klong": {"files_shown": []}})
        candidates = prep.files.get(category) or prep.files["Code Development"]
        usage: Usage = {}
        calls = [0]
        answer = ""
        try:
            order = [f.path for f in candidates]
            if c.rank_files and (len(candidates) > 1 or (c.rank_single_file and candidates)):
                ranking = await self._ask(P.RANK_SYSTEM, P.RANK.format(paper=prep.paper, addendum=prep.addendum,
                                                                   criterion=ctx.node.requirements,
                                                                   k=c.max_ranked_files, tree=prep.trees[category]),
                                          usage, calls)  # fmt: skip
                order = parse_file_ranking(ranking, order) or order  # none named: listing order (klong)
            files, shown = self._files(prep, order, prep.avail[category] - FILE_BUFFER_TOKENS)
            limit = c.max_prior_nodes or (PINN_PRIOR_NODES if ctx.task.id == "pinn" else None)
            ancestors = ctx.ancestors[-limit:] if limit else ctx.ancestors
            listing = f"\nThe submission's files:\n{prep.trees[category]}\n" if c.show_listing else ""
            prompt = P.GRADE.format(
                paper=prep.paper, addendum=prep.addendum, listing=listing,
                files_intro=P.FILES_INTRO_RESULTS if category == "Result Analysis" else P.FILES_INTRO,
                files=files or "(no files)", reproduction=self._reproduction(prep, category, ctx.code_only),
                ancestors="\n".join(f" -> {a}" for a in ancestors), category=category,
                criterion=ctx.node.requirements, question=P.CATEGORY_QUESTIONS.get(category, P.DEFAULT_QUESTION),
                answer=P.ANSWER_JSON if c.answer == "json" else P.ANSWER_TEXT,
            )  # fmt: skip
            answer = await self._ask(P.system_prompt(ctx.code_only), prompt, usage, calls, json_mode=c.answer == "json")
            parsed = parse_grade(answer)
            if not parsed.valid and c.reparse and answer.strip():
                extracted = parse_grade(await self._ask(P.system_prompt(ctx.code_only), P.REPARSE.format(answer=answer),
                                                        usage, calls, json_mode=True))  # fmt: skip
                if extracted.valid:
                    parsed = ParsedGrade(extracted.score, extracted.explanation or answer, "reparse")
        except ModelError as e:
            meta = {"full_judge_response": answer} if answer else {}
            return LeafGrade(0.0, False, f"the judge model failed: {e}", usage, calls[0], meta)
        meta: dict[str, Any] = {"full_judge_response": answer, "klong": {"files_shown": shown, "parsed_by": parsed.how}}
        if not parsed.valid:
            return LeafGrade(0.0, False, f"unreadable judge answer: {answer[:500]}", usage, calls[0], meta)
        return LeafGrade(parsed.score or 0.0, True, parsed.explanation, usage, calls[0], meta)
