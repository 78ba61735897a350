"""What the scaffold says to the model: system prompt, task message, corrections and notices."""

from __future__ import annotations

from klong.agent.clock import format_duration
from klong.task import Task

SYSTEM_PROMPT = """You are an autonomous research engineer working in a sandboxed Linux workspace, alone, for a long time.
You act only through the tools you are given: one or more tool calls per reply. Nobody will answer questions; decide
and act. Work in small verified steps, save your work to files often, and check results before you rely on them.
When the submission is complete and verified, or when you can improve it no further, call end_task."""

TASK_TEMPLATE = """Your task is to replicate the results of the research paper in `paper/` ({title}). Paths are
relative to your workspace, the working directory of your commands.

- `paper/paper.md` is the paper and `paper/addendum.md` holds clarifications from the authors; read them with the
  `read_paper` tool (you must read every page before doing anything else).
- Put everything you produce in `submission/`: code, results, and a `reproduce.sh` that regenerates the
  results from scratch. Only that folder is graded: how much of the paper's method and results you reproduced.
- Do not fetch the resources listed in `paper/blacklist.txt` (such as the authors' own code) by any means.
- You have {time_limit} in total. The time left is shown to you as you go. Use all of it well: stopping early with an
  incomplete replication scores less.
"""

READING_REQUIRED = (
    "Refused: read the whole paper first. Call read_paper with page={page} (pages {page} to {pages} remain), then "
    "continue with the task."
)
END_REFUSED = (
    "end_task refused: it is too early to stop ({why}). Keep improving and verifying the submission; you have "
    "{left} left."
)
NO_TOOL_CALL = (
    "Your reply contained no tool call. Continue the task by calling a tool, or call end_task if the submission is "
    "complete."
)
TIME_NOTICE = "[time] {used} used, {left} left of {limit}."
INTERRUPTED = (
    "[interrupted: the run was stopped while this call was running, and resumed. It may have partly run: check its "
    "effects (files, processes) before running it again.]"
)
NOT_RUN_AFTER_END = "[not run: an earlier call of this reply ended the task]"


def task_message(task: Task, root: str, time_limit: float, template: str | None = None) -> str:
    """The first user message. `root` (the workspace as the agent sees it) is kept for templates that name it;
    `{paper}` puts the task's text itself in the message (a benchmark whose task is an issue, not a paper to read)."""
    return (template or TASK_TEMPLATE).format(
        title=task.title or task.id, time_limit=format_duration(time_limit), root=root, paper=task.paper
    )
