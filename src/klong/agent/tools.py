"""The agent's tools: bash, python, read/write/edit/search files, read the paper in pages, end the task.

Each tool has a pydantic argument model (its JSON schema is what the model is offered) and an async handler. Bad
arguments, unknown tools and refused paths come back as tool results that say what to fix: the model sees its own
format errors. Sandbox failures raise `SandboxError` and end the episode: the model never sees infrastructure errors.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from klong.agent.clock import Clock, format_duration
from klong.agent.config import PAPER_END_MARKER, AgentConfig
from klong.agent.prompts import END_REFUSED, READING_REQUIRED
from klong.agent.workspace import PathRefused, Workspace
from klong.io import format_validation_error
from klong.sandbox import Sandbox
from klong.schema import Message, ToolCall
from klong.task import Task


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BashArgs(_Args):
    command: str = Field(description="A bash command, run in the workspace folder in a fresh shell.")
    timeout: float | None = Field(
        None, description="Seconds before the command is killed (default and maximum set by the run)."
    )


class PythonArgs(_Args):
    code: str = Field(description="Python source, run with python3 in the workspace folder.")
    timeout: float | None = Field(None, description="Seconds before it is killed.")


class ReadFileArgs(_Args):
    path: str = Field(description="File path, relative to the workspace or absolute inside it.")
    start_line: int = Field(1, ge=1, description="First line to show (1-based).")
    end_line: int | None = Field(None, ge=1, description="Last line to show (inclusive); default: as many as fit.")
    start_char: int = Field(1, ge=1, description="Within start_line, the first character to show (for long lines).")


class WriteFileArgs(_Args):
    path: str = Field(description="File path inside the workspace; folders are created.")
    content: str = Field(description="The whole new content of the file.")


class EditFileArgs(_Args):
    path: str = Field(description="File path inside the workspace.")
    old_text: str = Field(description="Exact text to replace; must occur exactly once unless replace_all is true.")
    new_text: str = Field(description="Replacement text.")
    replace_all: bool = Field(False, description="Replace every occurrence.")


class SearchFilesArgs(_Args):
    pattern: str = Field(description="Regular expression searched line by line.")
    path: str = Field(".", description="Folder (or file) to search, inside the workspace.")
    glob: str | None = Field(None, description="Only files whose name matches this glob, e.g. *.py.")


class ReadPaperArgs(_Args):
    page: int = Field(ge=1, description="Page number, from 1.")


class EndTaskArgs(_Args):
    summary: str = Field("", description="What the submission contains and how complete it is.")


@dataclass
class ToolOutcome:
    text: str
    end_task: bool = False
    cost_key: str = ""
    """Text matched against `command_costs` (the command or code run), empty for other tools."""
    refused: bool = False
    """The scaffold refused the call (reading not done, `end_task` too early)."""


@dataclass
class ToolSpec:
    name: str
    description: str
    args: type[_Args]
    handler: Callable[[Any], Awaitable[ToolOutcome]]

    def schema(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": copy.deepcopy(_parameters(self.args))}}  # fmt: skip


@functools.cache
def _parameters(args: type[_Args]) -> dict[str, Any]:
    """The JSON schema of a tool's arguments, made once per argument model (pydantic's generation is slow)."""
    params = args.model_json_schema()
    params.pop("title", None)
    params.pop("additionalProperties", None)
    for prop in params.get("properties", {}).values():
        prop.pop("title", None)
        if "anyOf" in prop:  # Optional[...] -> the non-null type
            types = [t for t in prop.pop("anyOf") if t.get("type") != "null"]
            prop.update(types[0] if types else {})
            prop.pop("default", None)
    return params


def paginate(text: str, page_chars: int) -> list[str]:
    """Split at paragraph (else line) boundaries into pages of at most about `page_chars` characters."""
    pages, start = [], 0
    while start < len(text):
        end = min(len(text), start + page_chars)
        if end < len(text):
            cut = text.rfind("\n\n", start + page_chars // 2, end)
            if cut < 0:
                cut = text.rfind("\n", start + page_chars // 2, end)
            end = cut + 1 if cut >= 0 else end
        pages.append(text[start:end])
        start = end
    return pages or [""]


SIDE_EFFECTS = ("bash", "python", "write_file", "edit_file")
"""Tools whose call may have done something even if klong was killed before saving its result."""


class Toolbox:
    """The tools of one episode, bound to its workspace, sandbox, clock and paper."""

    def __init__(self, task: Task, workspace: Workspace, sandbox: Sandbox, config: AgentConfig, clock: Clock):
        self.workspace = workspace
        self.sandbox = sandbox
        self.config = config
        self.clock = clock
        document = task.paper.rstrip() + ("\n\n# Addendum\n\n" + task.addendum.strip() if task.addendum.strip() else "")
        self.pages = paginate(document + "\n", config.page_chars)
        self.pages_read: set[int] = set()
        self.specs = {
            s.name: s
            for s in [
                ToolSpec("bash", "Run a bash command in the workspace. Output is cut to its start and end when long.", BashArgs, self._bash),
                ToolSpec("python", "Run Python code in the workspace.", PythonArgs, self._python),
                ToolSpec("read_file", "Read a file by line range, with line numbers.", ReadFileArgs, self._read_file),
                ToolSpec("write_file", "Create or overwrite a file.", WriteFileArgs, self._write_file),
                ToolSpec("edit_file", "Replace exact text in a file.", EditFileArgs, self._edit_file),
                ToolSpec("search_files", "Search files for a regular expression.", SearchFilesArgs, self._search),
                ToolSpec("read_paper", f"Read the paper and addendum, one page at a time ({len(self.pages)} pages).", ReadPaperArgs, self._read_paper),
                ToolSpec("end_task", "Finish the task: the submission folder is graded as it is.", EndTaskArgs, self._end_task),
            ]
        }  # fmt: skip
        self.turns = 0

    def schemas(self) -> list[dict[str, Any]]:
        return [s.schema() for s in self.specs.values()]

    @property
    def reading_done(self) -> bool:
        return not self.config.mandatory_reading or len(self.pages_read) == len(self.pages)

    def restore(self, messages: list[Message]) -> None:
        """Rebuild the reading progress from a resumed trajectory."""
        answered = {m.tool_call_id for m in messages if m.role == "tool"}
        for m in messages:
            for call in m.tool_calls or []:
                args = call.function.parsed_arguments() or {}
                page = args.get("page")
                if (
                    call.function.name == "read_paper"
                    and call.id in answered
                    and isinstance(page, int)
                    and 1 <= page <= len(self.pages)
                ):
                    self.pages_read.add(page)

    def cost(self, name: str, outcome: ToolOutcome) -> float:
        for rule in self.config.command_costs:
            if outcome.cost_key and re.search(rule.pattern, outcome.cost_key):
                return rule.seconds
        return self.config.tool_costs.get(name, self.config.default_tool_cost)

    async def execute(self, call: ToolCall) -> ToolOutcome:
        spec = self.specs.get(call.function.name)
        if spec is None:
            return ToolOutcome(f"Error: unknown tool {call.function.name!r}. Available tools: {', '.join(self.specs)}.")
        raw = call.function.parsed_arguments()
        if raw is None:
            return ToolOutcome(
                f"Error: the arguments of {spec.name} are not a JSON object ({call.function.arguments[:200]!r}). "
                f"Call it again with arguments matching its schema: {json.dumps(spec.schema()['function']['parameters'])}"
            )
        try:
            args = spec.args.model_validate(raw)
        except ValidationError as e:
            return ToolOutcome(f"Error: invalid arguments for {spec.name}: {format_validation_error(e)}")
        if spec.name != "read_paper" and not self.reading_done:
            page = min(set(range(1, len(self.pages) + 1)) - self.pages_read)
            return ToolOutcome(READING_REQUIRED.format(page=page, pages=len(self.pages)), refused=True)
        try:
            return await spec.handler(args)
        except PathRefused as e:
            return ToolOutcome(f"Error: path refused: {e}")

    # -- handlers --------------------------------------------------------------------------------------------------
    def _timeout(self, requested: float | None) -> float:
        limit = min(requested or self.config.bash_timeout, self.config.bash_timeout)
        if self.clock.kind == "wall":
            limit = min(limit, max(1.0, self.config.time_limit - self.clock.elapsed()))
        return max(1.0, limit)

    @staticmethod
    def _format_result(result) -> str:
        if result.killed_reason == "timeout":
            status = f"[killed: timed out after {result.duration:.0f}s]"
        elif result.killed_reason:
            status = f"[killed: {result.killed_reason}]"
        else:
            status = f"[exit code {result.exit_code}]"
        output = result.output if result.output.endswith("\n") or not result.output else result.output + "\n"
        return f"{output}{status}"

    async def _bash(self, args: BashArgs) -> ToolOutcome:
        result = await self.sandbox.run(["bash", "-c", args.command], timeout=self._timeout(args.timeout))
        return ToolOutcome(self._format_result(result), cost_key=args.command)

    async def _python(self, args: PythonArgs) -> ToolOutcome:
        result = await self.sandbox.run(["python3", "-"], timeout=self._timeout(args.timeout), stdin=args.code)
        return ToolOutcome(self._format_result(result), cost_key=args.code)

    async def _read_file(self, args: ReadFileArgs) -> ToolOutcome:
        path = self.workspace.resolve(args.path)
        if not path.is_file():
            return ToolOutcome(f"Error: {args.path}: no such file")
        self.workspace.check_readable(path, args.path)
        return ToolOutcome(await asyncio.to_thread(read_lines, path, self.workspace.display(path), args,
                                                   self.config.read_chars))  # fmt: skip

    async def _write_file(self, args: WriteFileArgs) -> ToolOutcome:
        path = self.workspace.resolve(args.path)
        if path.is_dir():
            return ToolOutcome(f"Error: {args.path} is a folder")
        self.workspace.write_text(path, args.content)
        return ToolOutcome(f"Wrote {len(args.content.encode())} bytes to {self.workspace.display(path)}")

    async def _edit_file(self, args: EditFileArgs) -> ToolOutcome:
        path = self.workspace.resolve(args.path)
        if not path.is_file():
            return ToolOutcome(f"Error: {args.path}: no such file")
        self.workspace.check_readable(path, args.path)
        text = path.read_text(encoding="utf-8", errors="replace")
        count = text.count(args.old_text) if args.old_text else 0
        if count == 0:
            return ToolOutcome(f"Error: old_text not found in {args.path}; read the file and copy the text exactly")
        if count > 1 and not args.replace_all:
            return ToolOutcome(f"Error: old_text occurs {count} times in {args.path}; add context or set replace_all")
        self.workspace.write_text(path, text.replace(args.old_text, args.new_text))
        return ToolOutcome(f"Replaced {count} occurrence(s) in {self.workspace.display(path)}")

    async def _search(self, args: SearchFilesArgs) -> ToolOutcome:
        try:
            regex = re.compile(args.pattern)
        except re.error as e:
            return ToolOutcome(f"Error: invalid regular expression: {e}")
        base = self.workspace.resolve(args.path)
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink())
        out, used = [], 0
        for f in files:
            if args.glob and not fnmatch.fnmatch(f.name, args.glob):
                continue
            if f.stat().st_size > 5_000_000 or f.stat().st_nlink > 1:
                continue
            try:
                text = f.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if regex.search(line):
                    hit = f"{self.workspace.display(f)}:{n}: {line[:300]}"
                    if used + len(hit) > self.config.read_chars:
                        out.append("[... more matches cut: narrow the search ...]")
                        return ToolOutcome("\n".join(out))
                    out.append(hit)
                    used += len(hit) + 1
        return ToolOutcome("\n".join(out) if out else "No matches.")

    async def _read_paper(self, args: ReadPaperArgs) -> ToolOutcome:
        n = len(self.pages)
        if args.page > n:
            return ToolOutcome(f"Error: the paper has {n} pages")
        self.pages_read.add(args.page)
        text = f"[page {args.page} of {n}]\n{self.pages[args.page - 1]}"
        if len(self.pages_read) == n:
            text += f"\n{PAPER_END_MARKER}"
        return ToolOutcome(text)

    async def _end_task(self, args: EndTaskArgs) -> ToolOutcome:
        elapsed = self.clock.elapsed()
        reasons = []
        if elapsed < self.config.min_end_time:
            reasons.append(
                f"only {format_duration(elapsed)} of the {format_duration(self.config.min_end_time)} minimum used"
            )
        if self.turns < self.config.min_end_turns:
            reasons.append(f"only {self.turns} of the {self.config.min_end_turns} minimum turns")
        if reasons:
            left = format_duration(self.config.time_limit - elapsed)
            return ToolOutcome(END_REFUSED.format(why="; ".join(reasons), left=left), refused=True)
        return ToolOutcome("Task ended. The submission folder will be graded.", end_task=True)


def count_lines(path) -> int:
    """Lines of a file, counted in blocks (never the whole file in memory)."""
    lines, last = 0, b"\n"
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def read_lines(path, shown: str, args: ReadFileArgs, budget: int) -> str:
    """Lines `start_line`.. (from character `start_char` of the first), numbered, within `budget` characters, read as a
    stream: memory stays bounded by the budget whatever the file (a 300 MB one-line file included), and every
    character can be reached, since a line longer than the budget is shown in parts (`start_char`)."""
    total = count_lines(path)
    out: list[str] = []
    used = 0
    with open(path, encoding="utf-8", errors="replace", newline=None) as f:
        n = 1
        while n < args.start_line:  # skip whole lines, in bounded pieces
            piece = f.readline(1 << 16)
            if not piece:
                return f"{shown} ({total} lines)\n[the file has {total} lines; start_line {args.start_line} is past its end]"
            n += piece.endswith("\n")
        col = 1
        while col < args.start_char:  # skip within the line
            piece = f.readline(min(args.start_char - col, 1 << 16))
            if not piece or piece.endswith("\n"):
                return f"{shown} ({total} lines)\n[line {n} is shorter than {args.start_char} characters]"
            col += len(piece)
        while args.end_line is None or n <= args.end_line:
            prefix = f"{n:6d}| " if col == 1 else f"{n:6d}|+{col - 1}: "
            room = budget - used - len(prefix)
            if room <= 0:
                out.append(f"[... stopped before line {n} of {total}: read on with start_line={n} ...]")
                break
            piece = f.readline(room + 1)
            if not piece:
                break
            if piece.endswith("\n"):
                out.append(prefix + piece[:-1])
                used += len(prefix) + len(piece)
                n, col = n + 1, 1
                continue
            if len(piece) <= room:  # the last line, without a newline
                out.append(prefix + piece)
                break
            out.append(prefix + piece[:room])
            col += room
            out.append(
                f"[... line {n} continues at character {col}: read on with start_line={n}, start_char={col} ...]"
            )
            break
    return f"{shown} ({total} lines)\n" + "\n".join(out)


def submission_files(workspace: Workspace) -> list[str]:
    """Relative paths of the files in `submission/` (for summaries)."""
    root = workspace.submission_dir
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
