"""A deterministic judge behind the fake OpenAI-compatible server: it reads klong's judge prompts and grades
PaperBench's hex-flag fixtures the way a perfect judge would (from the file contents the prompt shows). It ranks files
as PaperBench asks (full paths, one per line, read back from the tree drawing) and answers in PaperBench's three
parts (Expectations, Reality, Score)."""

from __future__ import annotations

import re

from klong.judge.submission import tree_paths

FLAG = re.compile(r"file named '(?P<name>[^']+)' (?:at the root of the directory|in the directory '(?P<dir>[^']+)') "
                  r"and has contents '(?P<content>[^']+)'")  # fmt: skip
FILE_BLOCK = re.compile(r"## File: (?P<path>\S+)\n```\n(?P<text>.*?)\n```", re.DOTALL)


def section(prompt: str, start: str, end: str) -> str:
    i = prompt.find(start)
    j = prompt.find(end, i + len(start))
    return prompt[i + len(start) : j if j >= 0 else None] if i >= 0 else ""


def judge_reply(body: dict) -> dict:
    prompt = body["messages"][-1]["content"]
    if "List the files most useful" in prompt:
        files = tree_paths(section(prompt, "Files:\n", "\n\nAnswer"))
        return {"content": "\n".join(files), "usage": {"prompt_tokens": 100, "completion_tokens": 10}}
    if "<answer>" in prompt:  # the parsing step: an answer with no score in it
        reply = '{"valid_score": false, "score": 0, "explanation": "no score given"}'
        return {"content": reply, "usage": {"prompt_tokens": 50, "completion_tokens": 20}}
    criterion = re.search(r"Criterion \([^)]*\): (.*)", prompt).group(1)
    ancestors = section(prompt, "<preceding_criteria>\n", "\n</preceding_criteria>")
    files = {m["path"]: m["text"].strip() for m in FILE_BLOCK.finditer(prompt)}
    if "always receive a score of 1.0" in criterion:
        score = 1
    elif "always receive a score of 0.0" in criterion:
        score = 0
    elif "The submission is empty" in criterion:
        score = int("<files>\n(no files)\n</files>" in prompt)
    else:
        m = FLAG.search(criterion) or FLAG.search(ancestors)
        if m is None:
            return {"content": "I cannot tell.", "usage": {"prompt_tokens": 100, "completion_tokens": 5}}
        path = f"{m['dir']}/{m['name']}" if m["dir"] else m["name"]
        score = int(files.get(path) == m["content"])
    answer = f"# Expectations\n{criterion}\n\n# Reality\nfiles seen: {sorted(files)}\n\n# Score\nScore: {score}"
    return {"content": answer, "usage": {"prompt_tokens": 1000, "completion_tokens": 50}}
