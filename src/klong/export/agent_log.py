"""A plain-text log of what the agent did, for PaperBench's `agent.log`.

PaperBench runs its monitor on a run's `agent.log` when the file exists: a blacklisted resource on a line within 3 lines
of `git clone`, `curl` or `wget` disqualifies the run. The log therefore shows each message under a `== role ==`
header, with every tool call's arguments written out, string values as their own lines (a multi-line command keeps
its lines, so the monitor sees it as the agent ran it). Pages of the paper (`read_paper` results) are noted, not
copied: the paper is the task's text, not something the agent did, and may itself cite the blacklisted code.
"""

from __future__ import annotations

import json

from klong.schema import Message, Trajectory


def _call_lines(m: Message) -> list[str]:
    lines = []
    for call in m.tool_calls or []:
        lines.append(f"-- tool call {call.function.name} (id {call.id}) --")
        args = call.function.parsed_arguments()
        if args is None:
            lines.extend(call.function.arguments.splitlines() or [""])
            continue
        for key, value in args.items():
            if isinstance(value, str):
                lines.append(f"{key}:")
                lines.extend(value.splitlines() or [""])
            else:
                lines.append(f"{key}: {json.dumps(value, ensure_ascii=False)}")
    return lines


def agent_log_lines(traj: Trajectory) -> list[str]:
    """The log's lines (without line ends)."""
    lines: list[str] = []
    for m in traj.messages:
        header = f"== {m.role} =="
        if m.role == "tool":
            header = f"== tool result {m.name or ''} (call {m.tool_call_id}) ==".replace("  ", " ")
        lines.append(header)
        if m.role == "tool" and m.name == "read_paper":
            lines.append(f"[a page of the paper, {len(m.content or '')} characters, not copied into this log]")
        elif m.content:
            lines.extend(m.content.splitlines())
        lines.extend(_call_lines(m))
        lines.append("")
    return lines


def agent_log(traj: Trajectory) -> str:
    return "\n".join(agent_log_lines(traj)) + "\n"
