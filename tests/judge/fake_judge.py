"""A deterministic judge behind the fake OpenAI-compatible server: it reads klong's judge prompts and grades
PaperBench's hex-flag fixtures the way a perfect judge would (from the file contents the prompt shows)."""

from __future__ import annotations

import json
import re

FLAG = re.compile(r"file named '(?P<name>[^']+)' (?:at the root of the directory|in the directory '(?P<dir>[^']+)') "
                  r"and has contents '(?P<content>[^']+)'")  # fmt: skip
FILE_BLOCK = re.compile(r"## File: (?P<path>\S+)\n```\n(?P<text>.*?)\n```", re.DOTALL)


def _section(prompt: str, start: str, end: str) -> str:
    i = prompt.find(start)
    j = prompt.find(end, i + len(start))
    return prompt[i + len(start) : j if j >= 0 else None] if i >= 0 else ""


def judge_reply(body: dict) -> dict:
    prompt = body["messages"][-1]["content"]
    if "List the files most useful" in prompt:
        files = [line.rsplit(" (", 1)[0] for line in _section(prompt, "Files:\n", "\n\nAnswer").splitlines() if line]
        return {"content": json.dumps({"files": files}), "usage": {"prompt_tokens": 100, "completion_tokens": 10}}
    criterion = re.search(r"Criterion \([^)]*\): (.*)", prompt).group(1)
    ancestors = _section(prompt, "Criteria above this one in the rubric (context, from the top):\n", "\n\nCriterion")
    files = {m["path"]: m["text"].strip() for m in FILE_BLOCK.finditer(prompt)}
    if "always receive a score of 1.0" in criterion:
        score = 1
    elif "always receive a score of 0.0" in criterion:
        score = 0
    elif "The submission is empty" in criterion:
        score = int("(the submission folder is empty)" in prompt)
    else:
        m = FLAG.search(criterion) or FLAG.search(ancestors)
        if m is None:
            return {"content": "I cannot tell.", "usage": {"prompt_tokens": 100, "completion_tokens": 5}}
        path = f"{m['dir']}/{m['name']}" if m["dir"] else m["name"]
        score = int(files.get(path) == m["content"])
    answer = {"expectations": criterion, "reality": f"files seen: {sorted(files)}", "score": score}
    return {"content": json.dumps(answer), "usage": {"prompt_tokens": 1000, "completion_tokens": 50}}
