"""The JSON files of a PaperBench run dir, built from a klong run: `metadata.json`, `status.json`, the submission's
`log.json` and `grade.json`.

Shapes, as PaperBench (openai/frontier-evals, `project/paperbench`) writes and reads them:

- `metadata.json`: its `AgentOutput` (`run_id`, `time_start`, `time_end`, `error_msg`, `runtime_in_seconds`,
  `status_exists`), written by its solvers after the rollout;
- `status.json`: `status`, `created_at`, `agent_finished_at`, `last_updated` (Unix seconds); with a submission archive
  beside it, PaperBench takes the rollout as done and does not run it again when the run group is resumed;
- `submissions/<timestamp>/log.json`: `created_at`, `num_messages`, `runtime`, `productive_runtime`, `retry_time`;
- `grade.json`: its `PaperBenchGrade` (`paperbench_result`, `score`, `grader_log`), `paperbench_result` holding the
  judge output (`judge_type`, `score`, `num_leaf_nodes`, `num_invalid_leaf_nodes`, `graded_at`, `graded_task_tree`,
  `completer_config`, `token_usage`). klong's grade files are that judge output already; token usage is rewritten to
  PaperBench's per-model `{model: {"in": .., "out": ..}}`, and a grade file that is a whole `PaperBenchGrade` is kept
  as it is.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from klong.exceptions import InputFileError
from klong.io import read_json
from klong.rubric.graded import read_graded
from klong.schema import Trajectory

JUDGE_OUTPUT_KEYS = ("judge_type", "score", "num_leaf_nodes", "num_invalid_leaf_nodes", "graded_at",
                     "graded_task_tree", "completer_config", "token_usage")  # fmt: skip


def agent_output(traj: Trajectory, run_id: str) -> dict[str, Any]:
    """`metadata.json`. An infrastructure stop is the run's `error_msg`."""
    start, end = traj.created_at.timestamp(), traj.updated_at.timestamp()
    error = None
    if traj.stop_reason is not None and traj.stop_reason.is_infrastructure:
        error = f"{traj.stop_reason.value}: {traj.stop_detail}" if traj.stop_detail else traj.stop_reason.value
    return {"run_id": run_id, "time_start": start, "time_end": end, "error_msg": error,
            "runtime_in_seconds": traj.wall_time, "status_exists": True}  # fmt: skip


def status(traj: Trajectory) -> dict[str, Any]:
    """`status.json` of a finished rollout."""
    start, end = int(traj.created_at.timestamp()), int(traj.updated_at.timestamp())
    return {"status": "done", "created_at": start, "agent_finished_at": end, "last_updated": end}


def submission_log(traj: Trajectory) -> dict[str, Any]:
    """`submissions/<timestamp>/log.json`."""
    return {"created_at": int(traj.created_at.timestamp()), "num_messages": len(traj.messages),
            "runtime": traj.wall_time, "productive_runtime": None, "retry_time": None}  # fmt: skip


def _usage(value: Any, model: str) -> Any:
    """klong's flat `{prompt_tokens, completion_tokens}` as PaperBench's `{model: {"in": .., "out": ..}}`."""
    if isinstance(value, dict) and isinstance(value.get("prompt_tokens"), int):
        return {model: {"in": value["prompt_tokens"], "out": int(value.get("completion_tokens") or 0)}}
    return value


def _tree_usage(node: Any, model: str) -> None:
    stack = [node]
    while stack:
        n = stack.pop()
        if not isinstance(n, dict):
            continue
        meta = n.get("judge_metadata")
        if isinstance(meta, dict) and "token_usage" in meta:
            meta["token_usage"] = _usage(meta["token_usage"], model)
        stack.extend(n.get("sub_tasks") or [])


def judge_output(grade_path: Path) -> dict[str, Any]:
    """PaperBench's judge output from a klong grade file (or a bare graded tree). Errors name the file."""
    tree, rest = read_graded(grade_path)  # validates the tree: every leaf scored
    data = read_json(grade_path)
    raw_tree = copy.deepcopy(data.get("graded_task_tree", data))
    leaves = tree.leaves()
    model = str(rest.get("model_name") or rest.get("judge_type") or "unknown")
    _tree_usage(raw_tree, model)
    out = {
        "judge_type": rest.get("judge_type", "simple"),
        "score": rest.get("score", tree.score),
        "num_leaf_nodes": rest.get("num_leaf_nodes", len(leaves)),
        "num_invalid_leaf_nodes": rest.get("num_invalid_leaf_nodes", sum(1 for _, n in leaves if not n.valid_score)),
        "graded_at": rest.get("graded_at"),
        "graded_task_tree": raw_tree,
        "completer_config": rest.get("completer_config"),
        "token_usage": _usage(rest.get("token_usage"), model),
    }
    if out["graded_at"] is None:
        raise InputFileError(grade_path, "judge output without `graded_at`")
    out.update({k: v for k, v in rest.items() if k not in JUDGE_OUTPUT_KEYS})  # model_name, klong's own record
    return out


def monitor_result(traj: Trajectory, log_lines: list[str]) -> dict[str, Any] | None:
    """klong's blacklist check (same rule as PaperBench's monitor) in PaperBench's `MonitorResult` shape, with line
    numbers in the exported `agent.log`; None when the run was not checked."""
    monitor = traj.meta.get("monitor")
    if not isinstance(monitor, dict):
        return None
    violations = []
    for v in monitor.get("blacklist_violations") or []:
        needle = str(v.get("line") or "").strip()
        number = next((i for i, line in enumerate(log_lines, 1) if needle and needle in line), 1)
        start = max(1, number - 3)
        violations.append({"line_number": number, "violation": str(v.get("resource") or ""),
                           "context": log_lines[start - 1 : number + 3], "context_start": start})  # fmt: skip
    explanation = (f"Found {len(violations)} violations of blacklist with git clone/curl/wget commands" if violations
                   else "No violations found with git clone/curl/wget commands")  # fmt: skip
    return {"violations": violations, "explanation": explanation, "log_file": "agent.log"}


def _reproduced(klong_extra: dict[str, Any]) -> bool:
    """Whether the graded folder was a reproduced submission (`klong reproduce` leaves its record there)."""
    from klong.judge.submission import REPRODUCE_META

    graded = klong_extra.get("submission")
    return isinstance(graded, str) and (Path(graded) / REPRODUCE_META).is_file()


def reproduction_metadata(klong_extra: dict[str, Any]) -> dict[str, Any] | None:
    """PaperBench's `ReproductionMetadata` of a graded reproduced submission (`reproduce.json`, `reproduce.log` and
    the folder's listing after the run; PaperBench's listing before it and its git fields have no klong record: the
    original submission's listing and empty values), None when the graded folder was not reproduced."""
    from klong.judge.submission import REPRODUCE_LOG, REPRODUCE_META

    if not _reproduced(klong_extra):
        return None
    graded = Path(klong_extra["submission"])
    info = read_json(graded / REPRODUCE_META)
    original = graded.with_name(graded.name.removesuffix(".reproduced"))

    def listing(root: Path) -> str:
        if not root.is_dir():
            return ""
        return "\n".join(sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()))

    log = graded / REPRODUCE_LOG
    return {"is_valid_git_repo": (original / ".git").is_dir(), "git_log": "", "repro_script_exists": True,
            "files_before_reproduce": listing(original), "files_after_reproduce": listing(graded),
            "timedout": bool(info.get("timed_out")), "repro_log": log.read_text(errors="replace") if log.is_file() else "",
            "retried_results": [], "repro_execution_time": info.get("duration"), "git_status_after_reproduce": None,
            "executed_submission": str(graded)}  # fmt: skip


def paperbench_grade(grade_path: Path, *, paper_id: str, run_id: str, traj: Trajectory, metadata: dict[str, Any],
                     submission_exists: bool, log_lines: list[str]) -> dict[str, Any]:  # fmt: skip
    """`grade.json` for one run (see the module doc)."""
    data = read_json(grade_path)
    if isinstance(data, dict) and isinstance(data.get("paperbench_result"), dict):
        return data  # already PaperBench's own record
    judge = judge_output(grade_path)
    extra = judge.get("klong") if isinstance(judge.get("klong"), dict) else {}
    mon = monitor_result(traj, log_lines)
    result = {
        "paper_id": paper_id,
        "run_id": run_id,
        "submission_exists": submission_exists,
        "skipped_reproduction": not _reproduced(extra),
        "code_only": bool(extra.get("code_only", False)),
        "resources_provided": bool(extra.get("resources_provided", False)),
        "agent_output": metadata,
        "judge_output": judge,
        "reproduction_metadata": reproduction_metadata(extra),
        "monitor_result": mon,
        "monitor_ran": mon is not None,
    }
    note = f"graded by klong ({judge['judge_type']} judge, {judge.get('model_name') or 'unknown model'})"
    if extra.get("disqualified"):
        note += f"; disqualified: {extra['disqualified']}"
    return {"paperbench_result": result, "score": judge["score"], "grader_log": note}
