"""Rebuild the example inputs in examples/data/ (all of them made for klong; nothing is copied from elsewhere).

    python examples/data/make_examples.py

- `trajectories/durations-fc.traj`: a SWE-agent run in its function-calling format (`history` with tool calls and
  tool results, `trajectory` with one step per action, `info` with the submitted patch) fixing a bug in a small
  `durations` package written for this example;
- `trajectories/csvtable-text.traj`: a SWE-agent run in its text format (a discussion and one command in a fenced
  block per turn) fixing a bug in a small `csvtable` package;
- `tokenizer/`: a byte-level BPE tokenizer (`klong.demo.tokenizer.train_tokenizer`, the demo's, with its chat template)
  trained on these trajectories and on klong's own docs. It stands in for a real model's tokenizer in the README's
  examples; pass your model's folder (e.g. a Qwen2.5 checkpoint) instead for real token counts.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

PARSE_PY = '''"""Parse human-written durations such as "1h30m", "90s" or "2 days 4 hours" into seconds."""

from __future__ import annotations

import re

from durations.units import UNIT_SECONDS, canonical_unit

__all__ = ["DurationError", "parse_duration", "format_duration"]

_PART = re.compile(r"\\s*(?P<value>\\d+(?:\\.\\d+)?)\\s*(?P<unit>[a-zA-Z]+)\\s*")


class DurationError(ValueError):
    """Raised when a duration string cannot be parsed."""


def _parts(text: str) -> list[tuple[float, str]]:
    """Split "1h30m" into [(1.0, "h"), (30.0, "m")]; raise DurationError on anything else."""
    parts = []
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise DurationError(f"cannot parse {text!r} at position {pos}")
        parts.append((float(match.group("value")), match.group("unit")))
        pos = match.end()
    if not parts:
        raise DurationError("empty duration")
    return parts


def parse_duration(text: str) -> float:
    """The number of seconds `text` stands for.

    >>> parse_duration("90s")
    90.0
    >>> parse_duration("2 days 4 hours")
    187200.0
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    text = text.strip().lower()
    if text.isdigit():
        return float(text)
    total = 0.0
    for value, unit in _parts(text):
        total = value * UNIT_SECONDS[canonical_unit(unit)]
    return total


def format_duration(seconds: float, *, largest: int = 2) -> str:
    """A short human form of `seconds`, with at most `largest` units ("1h 30m")."""
    if seconds < 0:
        return "-" + format_duration(-seconds, largest=largest)
    out = []
    remaining = int(round(seconds))
    for unit in ("d", "h", "m", "s"):
        size = int(UNIT_SECONDS[unit])
        count, remaining = divmod(remaining, size)
        if count:
            out.append(f"{count}{unit}")
        if len(out) == largest:
            break
    return " ".join(out) or "0s"
'''

UNITS_PY = '''"""Unit names and their length in seconds."""

from __future__ import annotations

UNIT_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}

ALIASES = {
    "weeks": "w", "week": "w", "wk": "w",
    "days": "d", "day": "d",
    "hours": "h", "hour": "h", "hr": "h", "hrs": "h",
    "minutes": "m", "minute": "m", "min": "m", "mins": "m",
    "seconds": "s", "second": "s", "sec": "s", "secs": "s",
    "milliseconds": "ms", "millisecond": "ms", "msec": "ms",
}


def canonical_unit(name: str) -> str:
    """The short name of a unit ("hours" -> "h"); KeyError for an unknown unit."""
    name = name.lower()
    if name in UNIT_SECONDS:
        return name
    try:
        return ALIASES[name]
    except KeyError:
        raise KeyError(f"unknown unit {name!r}") from None
'''

TEST_PY = """import pytest

from durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90.0),
    ("15m", 900.0),
    ("2h", 7200.0),
    ("3 days", 259200.0),
    ("1w", 604800.0),
    ("250ms", 0.25),
    ("42", 42.0),
])
def test_single_unit(text, seconds):
    assert parse_duration(text) == seconds


def test_rejects_garbage():
    with pytest.raises(DurationError):
        parse_duration("soon")


def test_rejects_empty():
    with pytest.raises(DurationError):
        parse_duration("   ")


def test_rejects_non_strings():
    with pytest.raises(TypeError):
        parse_duration(90)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59, "59s"), (5400, "1h 30m"), (90061, "1d 1h")])
def test_format(seconds, text):
    assert format_duration(seconds) == text
"""

ISSUE = """parse_duration ignores all but the last unit
`parse_duration("1h30m")` returns `1800.0`, but an hour and a half is 5400 seconds. The same happens with
`"2 days 4 hours"` (gives 14400.0, expected 187200.0). Single units such as `"90s"` work.

Version 0.4.1, Python 3.11.
"""

SYSTEM_FC = """You are a helpful assistant that can interact with a computer to solve tasks.
<IMPORTANT>
* If user provides a path, you should NOT assume it's relative to the current working directory. Instead, you should explore the file system to find the file before working on it.
</IMPORTANT>

You have access to the following functions:

---- BEGIN FUNCTION #1: bash ----
Description: Execute a bash command in the terminal.

Parameters:
  (1) command (string, required): The bash command to execute. Can be empty to view additional logs when previous exit code is `-1`. Can be `ctrl+c` to interrupt the currently running process.
---- END FUNCTION #1 ----

---- BEGIN FUNCTION #2: str_replace_editor ----
Description: Custom editing tool for viewing, creating and editing files
* State is persistent across command calls and discussions with the user
* If `path` is a file, `view` displays the result of applying `cat -n`. If `path` is a directory, `view` lists non-hidden files and directories up to 2 levels deep
* The `create` command cannot be used if the specified `path` already exists as a file
* If a `command` generates a long output, it will be truncated and marked with `<response clipped>`

Parameters:
  (1) command (string, required): The commands to run. Allowed options are: `view`, `create`, `str_replace`, `insert`.
  (2) path (string, required): Absolute path to file or directory, e.g. `/testbed/file.py` or `/testbed`.
  (3) file_text (string, optional): Required parameter of `create` command, with the content of the file to be created.
  (4) old_str (string, optional): Required parameter of `str_replace` command containing the string in `path` to replace.
  (5) new_str (string, optional): Optional parameter of `str_replace` command containing the new string.
  (6) view_range (array, optional): Optional parameter of `view` command when `path` points to a file.
---- END FUNCTION #2 ----

---- BEGIN FUNCTION #3: submit ----
Description: Submit the current changes as the solution.
No parameters are required for this function.
---- END FUNCTION #3 ----
"""

INSTANCE = f"""<uploaded_files>
/testbed
</uploaded_files>
I've uploaded a python code repository in the directory /testbed. Consider the following PR description:

<pr_description>
{ISSUE}</pr_description>

Can you help me implement the necessary changes to the repository so that the requirements specified in the
<pr_description> are met? I've already taken care of all changes to any of the test files described in the
<pr_description>. This means you DON'T have to modify the testing logic or any of the tests in any way!
Your task is to make the minimal changes to non-tests files in the /testbed directory to ensure the
<pr_description> is satisfied.
Follow these steps to resolve the issue:
1. As a first step, it might be a good idea to find and read code relevant to the <pr_description>
2. Create a script to reproduce the error and execute it with `python <filename.py>` using the bash tool, to confirm the error
3. Edit the source code of the repo to resolve the issue
4. Rerun your reproduce script and confirm that the error is fixed!
5. Think about edgecases and make sure your fix handles them as well
Your thinking should be thorough and so it's fine if it's very long."""


def numbered(text: str, path: str, start: int = 1) -> str:
    lines = text.splitlines()
    body = "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(lines, start))
    return f"Here's the result of running `cat -n` on {path}:\n{body}\n"


def pytest_output(passed: int, failures: list[str]) -> str:
    head = ("============================= test session starts ==============================\n"
            "platform linux -- Python 3.11.9, pytest-8.3.3, pluggy-1.5.0\nrootdir: /testbed\n"
            f"configfile: pyproject.toml\ncollected {passed + len(failures)} items\n\n")  # fmt: skip
    dots = "tests/test_parse.py " + "." * passed + "F" * len(failures)
    if not failures:
        return (
            head
            + dots
            + " [100%]\n\n"
            + f"============================== {passed} passed in 0.04s ===============================\n"
        )
    body = "\n".join(failures)
    return (head + dots + " [100%]\n\n=================================== FAILURES ===================================\n"
            + body + f"\n=========================== short test summary info ============================\n"
            f"========================= {len(failures)} failed, {passed} passed in 0.06s =========================\n")  # fmt: skip


FIXED_PARSE = PARSE_PY.replace("        total = value * UNIT_SECONDS", "        total += value * UNIT_SECONDS")
PATCH = (
    """diff --git a/src/durations/parse.py b/src/durations/parse.py
index 3c1f0a2..8e74d5b 100644
--- a/src/durations/parse.py
+++ b/src/durations/parse.py
@@ -46,7 +46,7 @@ def parse_duration(text: str) -> float:
         return float(text)
     total = 0.0
     for value, unit in _parts(text):
-        total = value * UNIT_SECONDS[canonical_unit(unit)]
+        total += value * UNIT_SECONDS[canonical_unit(unit)]
     return total
"""
    + " \n \n"
)  # two unchanged blank lines: a space is their diff prefix
REPRO = 'from durations import parse_duration\n\nfor text in ["90s", "1h30m", "2 days 4 hours", "1w 2d 3h 4m 5s"]:\n    print(text, "->", parse_duration(text))\n'


def fc_steps() -> list[dict]:
    """(thought, tool, arguments, action string, observation) for the function-calling run."""
    listing = ("/testbed/src/durations/__init__.py\n/testbed/src/durations/parse.py\n/testbed/src/durations/units.py\n"
               "/testbed/tests/test_parse.py\n/testbed/docs/conf.py\n/testbed/setup.py\n")  # fmt: skip
    init = '"""Parse and format human-written durations."""\n\nfrom durations.parse import DurationError, format_duration, parse_duration\n\n__version__ = "0.4.1"\n'
    failing_test = ('________________________ test_compound_units[1h30m-5400.0] ________________________\n\n'
                    'text = \'1h30m\', seconds = 5400.0\n\n    def test_compound_units(text, seconds):\n'
                    '>       assert parse_duration(text) == seconds\nE       AssertionError: assert 1800.0 == 5400.0\n'
                    "E        +  where 1800.0 = parse_duration('1h30m')\n\ntests/test_parse.py:44: AssertionError")  # fmt: skip
    compound_test = ('\n\n@pytest.mark.parametrize("text, seconds", [\n    ("1h30m", 5400.0),\n'
                     '    ("2 days 4 hours", 187200.0),\n    ("1w 2d 3h 4m 5s", 788645.0),\n])\n'
                     "def test_compound_units(text, seconds):\n    assert parse_duration(text) == seconds\n")  # fmt: skip
    return [
        ("Let me start by looking at the layout of the repository to find the parsing code.",
         "bash", {"command": "find /testbed -name '*.py' -not -path '*/.git/*' | sort"},
         "find /testbed -name '*.py' -not -path '*/.git/*' | sort", listing),
        ("The package lives in src/durations. parse.py is the obvious place for `parse_duration`; let me read it.",
         "str_replace_editor", {"command": "view", "path": "/testbed/src/durations/parse.py"},
         "str_replace_editor view /testbed/src/durations/parse.py", numbered(PARSE_PY, "/testbed/src/durations/parse.py")),
        ("`parse_duration` splits the text into (value, unit) parts and converts each with UNIT_SECONDS. The loop "
         "assigns `total = value * ...` instead of adding to it, so only the last part survives. That matches the "
         "report exactly: 1h30m gives 30 * 60 = 1800. Before changing anything let me look at the unit table, to be "
         "sure the aliases such as `days` and `hours` resolve as I think.",
         "str_replace_editor", {"command": "view", "path": "/testbed/src/durations/units.py"},
         "str_replace_editor view /testbed/src/durations/units.py", numbered(UNITS_PY, "/testbed/src/durations/units.py")),
        ("The aliases are fine. Let me check what the package exports, then write a reproduction script.",
         "str_replace_editor", {"command": "view", "path": "/testbed/src/durations/__init__.py"},
         "str_replace_editor view /testbed/src/durations/__init__.py", numbered(init, "/testbed/src/durations/__init__.py")),
        ("Now a script reproducing the issue with the examples from the report and one with every unit.",
         "str_replace_editor", {"command": "create", "path": "/testbed/reproduce.py", "file_text": REPRO},
         "str_replace_editor create /testbed/reproduce.py --file_text '" + REPRO + "'",
         "File created successfully at: /testbed/reproduce.py\n"),
        ("Run it.", "bash", {"command": "cd /testbed && python reproduce.py"}, "cd /testbed && python reproduce.py",
         "90s -> 90.0\n1h30m -> 1800.0\n2 days 4 hours -> 14400.0\n1w 2d 3h 4m 5s -> 5.0\n"),
        ("Confirmed: every compound duration keeps only its last part. The fix is to accumulate.",
         "str_replace_editor", {"command": "str_replace", "path": "/testbed/src/durations/parse.py",
                                "old_str": "        total = value * UNIT_SECONDS[canonical_unit(unit)]",
                                "new_str": "        total += value * UNIT_SECONDS[canonical_unit(unit)]"},
         "str_replace_editor str_replace /testbed/src/durations/parse.py --old_str '        total = value * "
         "UNIT_SECONDS[canonical_unit(unit)]' --new_str '        total += value * UNIT_SECONDS[canonical_unit(unit)]'",
         "The file /testbed/src/durations/parse.py has been edited. Here's the result of running `cat -n` on a snippet "
         "of /testbed/src/durations/parse.py:\n" + "\n".join(numbered(FIXED_PARSE, "x").splitlines()[44:52]) +
         "\nReview the changes and make sure they are as expected. Edit the file again if necessary.\n"),
        ("Rerun the reproduction script.", "bash", {"command": "cd /testbed && python reproduce.py"},
         "cd /testbed && python reproduce.py",
         "90s -> 90.0\n1h30m -> 5400.0\n2 days 4 hours -> 187200.0\n1w 2d 3h 4m 5s -> 788645.0\n"),
        ("All four are right now (1w 2d 3h 4m 5s = 604800 + 172800 + 10800 + 240 + 5 = 788645). Let me look at the "
         "existing tests and run them, to make sure nothing else relied on the old behaviour.",
         "str_replace_editor", {"command": "view", "path": "/testbed/tests/test_parse.py"},
         "str_replace_editor view /testbed/tests/test_parse.py", numbered(TEST_PY, "/testbed/tests/test_parse.py")),
        ("The tests only cover single units, which is why this slipped through. Run them.",
         "bash", {"command": "cd /testbed && python -m pytest tests -q 2>&1 | tail -20"},
         "cd /testbed && python -m pytest tests -q 2>&1 | tail -20", pytest_output(14, [])),
        ("They pass. To be sure the compound case is covered I will check a compound test against the old code "
         "first: stash the fix, add the test in a scratch copy, run it, restore.",
         "bash", {"command": "cd /testbed && git stash && cp tests/test_parse.py /tmp/test_compound.py && cat >> "
                             "/tmp/test_compound.py << 'EOF'" + compound_test + "EOF\npython -m pytest /tmp/test_compound.py -q "
                             "2>&1 | tail -15; git stash pop"},
         "cd /testbed && git stash && ... && git stash pop",
         "Saved working directory and index state WIP on main: 3c1f0a2 Release 0.4.1\n" + pytest_output(14, [failing_test])
         + "On branch main\nChanges not staged for commit:\n\tmodified:   src/durations/parse.py\n\n"
         "Untracked files:\n\treproduce.py\n\nDropped refs/stash@{0}\n"),
        ("The compound test fails without the fix, as expected. With the fix:",
         "bash", {"command": "cd /testbed && python -m pytest /tmp/test_compound.py -q 2>&1 | tail -3"},
         "cd /testbed && python -m pytest /tmp/test_compound.py -q 2>&1 | tail -3",
         "tests/test_parse.py ................. [100%]\n\n17 passed in 0.05s\n"),
        ("Edge cases: a bare number still returns early, an empty string still raises DurationError, and repeated "
         "units ('1h 1h') now add up, which is the natural reading. Clean up the scratch files.",
         "bash", {"command": "rm /testbed/reproduce.py /tmp/test_compound.py && cd /testbed && git status --short"},
         "rm /testbed/reproduce.py /tmp/test_compound.py && cd /testbed && git status --short",
         " M src/durations/parse.py\n"),
        ("The change is one character in parse.py; submitting.", "submit", {}, "submit", PATCH),
    ]  # fmt: skip


def fc_traj() -> dict:
    history = [{"role": "system", "content": SYSTEM_FC, "agent": "main", "message_type": "system_prompt"},
               {"role": "user", "content": [{"type": "text", "text": INSTANCE}], "agent": "main",
                "message_type": "observation"}]  # fmt: skip
    steps = []
    for i, (thought, tool, args, action, obs) in enumerate(fc_steps()):
        call_id = f"call_{i:02d}_durations"
        last = tool == "submit"
        history.append({"role": "assistant", "content": thought, "thought": thought, "action": action, "agent": "main",
                        "tool_calls": [{"id": call_id, "type": "function",
                                        "function": {"name": tool, "arguments": json.dumps(args)}}],
                        "message_type": "action"})  # fmt: skip
        if not last:  # SWE-agent ends the run on submit: that observation never reaches the history
            history.append({"role": "tool", "content": [{"type": "text", "text": f"OBSERVATION:\n{obs}"}],
                            "agent": "main", "message_type": "observation", "tool_call_ids": [call_id]})  # fmt: skip
        steps.append({"action": action, "observation": obs, "response": thought, "thought": thought,
                      "execution_time": round(0.08 + 0.37 * ((i * 7) % 5), 3),
                      "state": {"open_file": "n/a", "working_dir": "/testbed"}})  # fmt: skip
    return {
        "environment": "swe_main",
        "trajectory": steps,
        "history": history,
        "info": {"submission": PATCH, "exit_status": "submitted",
                 "model_stats": {"instance_cost": 0.0, "tokens_sent": 61234, "tokens_received": 1893,
                                 "api_calls": len(steps)}},
        "replay_config": {"agent": {"model": {"name": "example/agent-model"}}},
    }  # fmt: skip


CSV_PY = '''"""Read small CSV files into lists of dicts, with type guessing."""

import csv
import io

__all__ = ["read_table", "guess"]


def guess(value):
    """'3' -> 3, '2.5' -> 2.5, '' -> None, anything else unchanged."""
    if value == "":
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def read_table(path, delimiter=","):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader)
    return [{name: guess(cell) for name, cell in zip(header, row)} for row in reader if row]
'''

TEXT_SYSTEM = """SETTING: You are an autonomous programmer working in a command line with a file viewer that shows 100 lines
at a time. Besides ordinary bash commands you can use: open <path> [<line>], goto <line>, scroll_down, scroll_up,
search_file <term> [<file>], find_file <name> [<dir>], edit <start>:<end> followed by the replacement text and a
line `end_of_edit`, and submit.

RESPONSE FORMAT: first a DISCUSSION of what you will do next, then exactly ONE command in a fenced block:
DISCUSSION
First I'll look for the file that reads the tables.
```
find_file table.py
```
Wait for the result of each command before you send the next one."""

TEXT_ISSUE = """We're currently solving the following issue within our repository. Here's the issue text:
ISSUE:
read_table: first column name has a strange prefix for files saved by Excel
When a CSV is saved by Excel ("CSV UTF-8"), `read_table(path)[0]` has the key `'\\ufeffname'` instead of `'name'`,
so `row["name"]` raises KeyError. Files written by other programs are fine.

INSTRUCTIONS: solve this issue on your own, one command at a time, then run `submit`.
(Open file: n/a)
(Current directory: /csvtable)
bash-$"""


def text_traj() -> dict:
    view = "\n".join(f"{i}:{line}" for i, line in enumerate(CSV_PY.splitlines(), 1))
    fixed = CSV_PY.replace('encoding="utf-8"', 'encoding="utf-8-sig"')
    patch = ('diff --git a/csvtable/table.py b/csvtable/table.py\n--- a/csvtable/table.py\n+++ b/csvtable/table.py\n'
             '@@ -22,7 +22,7 @@ def guess(value):\n \n def read_table(path, delimiter=","):\n'
             '-    with open(path, encoding="utf-8", newline="") as f:\n'
             '+    with open(path, encoding="utf-8-sig", newline="") as f:\n         text = f.read()\n')  # fmt: skip
    turns = [
        ("The issue is about a byte order mark (U+FEFF) that Excel writes at the start of UTF-8 files. Let me find "
         "the code that opens the file.", "find_file table.py",
         'Found 1 matches for "table.py" in /csvtable:\n/csvtable/csvtable/table.py'),
        ("Open it.", "open csvtable/table.py",
         f"[File: /csvtable/csvtable/table.py ({len(CSV_PY.splitlines())} lines total)]\n{view}"),
        ("`read_table` opens the file with `encoding=\"utf-8\"`, which keeps the BOM as the first character of the "
         "text, so it ends up in the first header cell. Let me reproduce it with a file that starts with a BOM.",
         "printf '\\xef\\xbb\\xbfname,age\\nada,36\\n' > /tmp/bom.csv && python -c \"from csvtable.table import "
         "read_table; print(read_table('/tmp/bom.csv'))\"", "[{'\\ufeffname': 'ada', 'age': 36}]"),
        ("Reproduced. Python's `utf-8-sig` codec drops a leading BOM and reads files without one exactly like "
         "`utf-8`, so changing the encoding on line 24 fixes this without affecting other files.",
         'edit 24:24\n    with open(path, encoding="utf-8-sig", newline="") as f:\nend_of_edit',
         f"[File: /csvtable/csvtable/table.py ({len(fixed.splitlines())} lines total)]\n" + "\n".join(
             f"{i}:{line}" for i, line in enumerate(fixed.splitlines(), 1) if 20 <= i <= 27)
         + "\nFile updated. Please review the changes and make sure they are correct."),
        ("Check the BOM file again and a file without a BOM.",
         "python -c \"from csvtable.table import read_table; print(read_table('/tmp/bom.csv'))\" && printf "
         "'name,age\\nben,41\\n' > /tmp/plain.csv && python -c \"from csvtable.table import read_table; "
         "print(read_table('/tmp/plain.csv'))\"", "[{'name': 'ada', 'age': 36}]\n[{'name': 'ben', 'age': 41}]"),
        ("Both are right. Run the test suite.", "python -m pytest -q",
         "........                                                                 [100%]\n8 passed in 0.02s"),
        ("Tests pass; remove the scratch files and submit.", "rm /tmp/bom.csv /tmp/plain.csv", ""),
        ("Submitting.", "submit", patch),
    ]  # fmt: skip
    history = [{"role": "system", "content": TEXT_SYSTEM, "agent": "primary"},
               {"role": "user", "content": TEXT_ISSUE, "agent": "primary"}]  # fmt: skip
    steps = []
    for i, (thought, action, obs) in enumerate(turns):
        response = f"DISCUSSION\n{thought}\n\n```\n{action}\n```"
        history.append({"role": "assistant", "content": response, "thought": thought, "action": action,
                        "agent": "primary"})  # fmt: skip
        if action != "submit":
            shown = obs if obs else "Your command ran successfully and did not produce any output."
            history.append({"role": "user", "agent": "primary",
                            "content": f"{shown}\n(Open file: /csvtable/csvtable/table.py)\n(Current directory: /csvtable)\nbash-$"})  # fmt: skip
        steps.append({"action": action, "observation": obs, "response": response, "thought": thought,
                      "execution_time": round(0.05 + 0.11 * i, 3),
                      "state": '{"open_file": "/csvtable/csvtable/table.py", "working_dir": "/csvtable"}'})  # fmt: skip
    return {"environment": "swe_main", "trajectory": steps, "history": history,
            "info": {"submission": patch, "exit_status": "submitted",
                     "model_stats": {"instance_cost": 0.0, "tokens_sent": 18012, "tokens_received": 702,
                                     "api_calls": len(steps)}}}  # fmt: skip


def build_tokenizer(texts: list[str]) -> None:
    from klong.demo.tokenizer import train_tokenizer

    docs = [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))] + [(REPO / "README.md").read_text()]
    out = HERE / "tokenizer"
    train_tokenizer(texts * 3 + docs, out, vocab_size=2048)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # the name transformers 4.x knows too (5.x maps it)
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def main() -> None:
    trajs = {"durations-fc.traj": fc_traj(), "csvtable-text.traj": text_traj()}
    (HERE / "trajectories").mkdir(exist_ok=True)
    texts = []
    for name, data in trajs.items():
        text = json.dumps(data, indent=2) + "\n"
        (HERE / "trajectories" / name).write_text(text)
        texts.append(text)
    build_tokenizer(texts)


if __name__ == "__main__":
    main()
