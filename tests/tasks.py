"""A small task dir for runtime tests (PaperBench layout)."""

from __future__ import annotations

from pathlib import Path

from klong.task import Task, read_task, write_task

RUBRIC = {
    "id": "root", "requirements": "The paper is replicated.", "weight": 1, "task_category": None,
    "finegrained_task_category": None,
    "sub_tasks": [{"id": "leaf", "requirements": "result.txt holds 42", "weight": 1, "sub_tasks": [],
                   "task_category": "Result Analysis", "finegrained_task_category": "Logging, Analysis & Presentation"}],
}  # fmt: skip


def make_task(root: Path, *, task_id: str = "toy", paragraphs: int = 12, blacklist=("https://github.com/authors/toy",),
              extra_config: dict | None = None) -> Task:  # fmt: skip
    paper = "# Toy paper\n\n" + "\n\n".join(
        f"Section {i}. The answer to experiment {i} is {40 + i}. " * 6 for i in range(paragraphs)
    )
    task = Task(id=task_id, title="A toy paper", paper=paper + "\n", addendum="Report the answer in result.txt.",
                blacklist=list(blacklist), rubric=RUBRIC, config=extra_config or {})  # fmt: skip
    return read_task(write_task(root / task_id, task))
