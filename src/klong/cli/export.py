"""`klong export paperbench|openai`: klong's records in other tools' formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from klong.cli.common import JsonOpt, console, err_console, handle_errors, print_json, sub_app
from klong.exceptions import ConfigError

export_app = sub_app("export", "Export runs and trajectories for other tools: PaperBench, OpenAI chat fine-tuning.")


@export_app.command("paperbench")
@handle_errors
def paperbench_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A klong run dir (`klong run --out`).", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: submissions/ and runs/ inside.", show_default=False)
    ],
    run_group_id: Annotated[
        str | None,
        typer.Option("--run-group-id", help="PaperBench run-group id.", show_default="<run start>_run-group_klong"),
    ] = None,
    paper_id: Annotated[
        str | None,
        typer.Option("--paper-id", help="PaperBench paper id of every run.", show_default="each run's task id"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a run dir in PaperBench's layouts: OUT/submissions/<paper_id>/submission/ (what its
    PBDirectSubmissionSolver grades: paperbench.solver.submissions_dir=OUT/submissions) and the run group
    OUT/runs/<run_group_id>/<paper_id>_<uuid>/ (metadata.json, status.json, agent.log, the submission archive, and
    grade.json for runs graded into RUN_DIR/grades/)."""
    from klong.export.paperbench import export_paperbench
    from klong.factory.decontam import builtin_eval_set

    if paper_id is not None and (not paper_id or "/" in paper_id or paper_id.startswith(".")):
        raise ConfigError(f"--paper-id {paper_id!r} is not a folder name")
    manifest = export_paperbench(run_dir, out, run_group_id=run_group_id, paper_id=paper_id)
    known = {p.id for p in builtin_eval_set("paperbench").papers}
    unknown = sorted({r["paper_id"] for r in manifest["runs"]} - known)
    if as_json:
        print_json({**manifest, "out": str(out), "not_paperbench_papers": unknown})
    else:
        for r in manifest["runs"]:
            grade = f", grade {r['score']:.3f}" if r.get("grade") else ", not graded"
            sub = out / r["direct_submission"] if r["direct_submission"] else "no submission"
            console.print(f"{r['klong_run']} -> {out / r['run_dir']} ({sub}{grade})", highlight=False)
        console.print(f"exported {len(manifest['runs'])} runs into {out} (run group {manifest['run_group_id']})")
        for p in manifest["unfinished"]:
            err_console.print(f"[yellow]note[/yellow]: {escape(p)} is unfinished: not exported", highlight=False)
    if unknown:
        err_console.print(f"[yellow]note[/yellow]: not PaperBench paper ids: {escape(', '.join(unknown))}; its direct-"
                          "submission solver refuses folders of papers it does not have in data/papers/ "
                          "(--paper-id names the paper)", highlight=False)  # fmt: skip


@export_app.command("openai")
@handle_errors
def openai_cmd(
    targets: Annotated[
        list[Path], typer.Argument(help="klong trajectory files, folders of them, or run dirs.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file, one line per trajectory.", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Write OpenAI chat lines ({"messages", "tools", "parallel_tool_calls"}), the shape of an OpenAI chat
    fine-tuning file and of a chat-completions request without `model`. Nothing is written unless every
    trajectory converts."""
    import json

    from klong.data.stats import trajectory_files
    from klong.export.openai_chat import chat_line
    from klong.io import atomic_write_text
    from klong.schema import read_trajectory

    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name a .jsonl file")
    # a run dir's trajectories are in its trajectories/ (its own *.json are meta.json and the like)
    files = [f for t in targets for f in trajectory_files(t / "trajectories" if (t / "trajectories").is_dir() else t)]
    rows, lines = [], []
    for f in files:
        traj = read_trajectory(f)
        line = chat_line(traj, f)
        lines.append(json.dumps(line, ensure_ascii=False))
        calls = sum(len(m.get("tool_calls", [])) for m in line["messages"])
        rows.append({"file": str(f), "id": traj.id, "messages": len(line["messages"]), "tool_calls": calls,
                     "tools": len(line.get("tools", [])), "parallel_tool_calls": line.get("parallel_tool_calls")})  # fmt: skip
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    if as_json:
        print_json({"out": str(out), "lines": len(lines), "trajectories": rows})
        return
    for r in rows:
        console.print(f"{r['file']}: {r['messages']} messages, {r['tool_calls']} tool calls", highlight=False)
    console.print(f"wrote {len(lines)} lines to {out}")
