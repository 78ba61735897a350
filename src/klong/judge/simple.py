"""An LLM leaf judge equivalent to PaperBench's SimpleJudge.

For each leaf: (1) the model ranks the submission's files by relevance to the criterion; (2) the top files are read
under a character budget; (3) the model sees the paper, the addendum, the file listing, those files, `reproduce.sh` and
`reproduce.log` for execution and result leaves (result leaves see only files changed after reproduction started),
the criteria above the leaf, the criterion and its category's question, and answers with expectations, reality and a
0/1 score, parsed robustly. A leaf whose answer cannot be read, or whose calls fail, scores 0 with `valid_score: false`.
"""

from __future__ import annotations

from klong.exceptions import ModelError
from klong.judge.base import JudgeConfig, LeafContext, LeafGrade
from klong.judge.parse import parse_file_ranking, parse_grade
from klong.judge.prompts import CATEGORY_QUESTIONS, GRADE, RANK_FILES, SYSTEM
from klong.judge.submission import REPRODUCE_LOG, REPRODUCE_META, REPRODUCE_SCRIPT, SubmissionFile
from klong.protocols import Model
from klong.schema import Message


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return text[:head] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[len(text) - (limit - head) :]


class SimpleJudge:
    cacheable = True

    def __init__(self, model: Model, config: JudgeConfig | None = None):
        self.model = model
        self.config = config or JudgeConfig()
        self.name = model.name

    async def _ask(self, prompt: str, usage: dict[str, int]) -> str:
        reply = await self.model.generate([Message(role="system", content=SYSTEM), Message(role="user", content=prompt)],
                                          json_mode=True)  # fmt: skip
        usage["calls"] += 1
        if reply.usage is not None:
            usage["prompt_tokens"] += reply.usage.prompt_tokens
            usage["completion_tokens"] += reply.usage.completion_tokens
        return reply.content or ""

    def _candidates(self, ctx: LeafContext) -> list[SubmissionFile]:
        skip = {REPRODUCE_LOG, REPRODUCE_META}
        if ctx.node.task_category == "Result Analysis" and ctx.submission.reproduction is not None:
            return ctx.submission.changed_after_reproduction()
        return [f for f in ctx.submission.files if f.path not in skip]

    async def grade_leaf(self, ctx: LeafContext) -> LeafGrade:
        c = self.config
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0}
        category = ctx.node.task_category or "Code Development"
        candidates = self._candidates(ctx)
        try:
            order = [f.path for f in candidates]
            if c.rank_files and len(candidates) > 1:
                answer = await self._ask(RANK_FILES.format(k=c.max_ranked_files, criterion=ctx.node.requirements,
                                                           tree=ctx.submission.tree(candidates)), usage)  # fmt: skip
                ranked = parse_file_ranking(answer, order)
                order = ranked or order  # the model's picks; all files (listing order) if it named none
            files_text, used, shown = [], 0, []
            for path in order[: c.max_ranked_files]:
                if path == REPRODUCE_SCRIPT and category != "Code Development":
                    continue  # shown in the reproduction section
                text = ctx.submission.read(path, min(c.file_chars, c.files_chars - used))
                if text is None or used >= c.files_chars:
                    continue
                files_text.append(f"## File: {path}\n```\n{text}\n```")
                used += len(text)
                shown.append(path)
            prompt = GRADE.format(
                paper=_cut(ctx.task.paper, c.paper_chars), addendum=ctx.task.addendum or "(none)",
                tree=ctx.submission.tree(candidates), files="\n\n".join(files_text) or "(no file content shown)",
                reproduction=self._reproduction(ctx, category),
                ancestors="\n".join(f"- {a}" for a in ctx.ancestors) or "- (this is the top criterion)",
                category=category, criterion=ctx.node.requirements, question=CATEGORY_QUESTIONS.get(category, ""),
            )  # fmt: skip
            answer = await self._ask(prompt, usage)
        except ModelError as e:
            return LeafGrade(0.0, False, f"the judge model failed: {e}", usage)
        parsed = parse_grade(answer)
        if not parsed.valid:
            return LeafGrade(0.0, False, f"unreadable judge answer: {answer[:500]}", usage)
        explanation = f"Expectations: {parsed.expectations}\nReality: {parsed.reality}".strip()
        return LeafGrade(parsed.score or 0.0, True, explanation, usage, {"files_shown": shown})

    def _reproduction(self, ctx: LeafContext, category: str) -> str:
        if category == "Code Development":
            return ""
        sub = ctx.submission
        script = sub.read(REPRODUCE_SCRIPT, self.config.file_chars) or "(no reproduce.sh)"
        if sub.reproduction is None:
            return f"# reproduce.sh\n```\n{script}\n```\n\n(The submission was not reproduced: there is no reproduce.log.)\n"
        info = sub.reproduction
        log = sub.read(REPRODUCE_LOG, self.config.log_chars) or "(empty log)"
        status = "timed out" if info.timed_out else f"exit code {info.exit_code}"
        return (f"# reproduce.sh\n```\n{script}\n```\n\n# reproduce.log ({status}, {info.duration:.0f} s)\n```\n{log}\n```\n"
                f"Files created or changed by the reproduction:\n{sub.tree(sub.changed_after_reproduction())}\n")  # fmt: skip
