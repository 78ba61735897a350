"""`klong rubric validate|stats|show|score`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from klong.cli.common import JsonOpt, console, err_console, handle_errors, print_json, sub_app

rubric_app = sub_app("rubric", "PaperBench rubric trees: validate, statistics, show, re-score gradings.")

LenientOpt = Annotated[bool, typer.Option("--lenient", help="Allow nodes without the two category keys.")]


@rubric_app.command("validate")
@handle_errors
def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="rubric.json files.")],
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check rubric files; every problem is reported with its node path. Every file is checked; the exit status is 2
    when any is invalid."""
    from klong.exceptions import KlongError
    from klong.rubric.tree import load_rubric, rubric_stats

    results: list[dict[str, Any]] = []
    for f in files:
        try:
            stats = rubric_stats(load_rubric(f, strict=not lenient))
        except KlongError as e:
            results.append({"file": str(f), "valid": False, "error": str(e)})
            err_console.print(f"[red]error[/red]: {escape(str(e))}", highlight=False)
            continue
        results.append({"file": str(f), "valid": True, "nodes": stats["nodes"], "leaves": stats["leaves"],
                        "max_depth": stats["max_depth"]})  # fmt: skip
        if not as_json:
            console.print(f"{f}: valid ({stats['nodes']} nodes, {stats['leaves']} leaves, depth {stats['max_depth']})")
    if as_json:
        print_json(results)
    if not all(r["valid"] for r in results):
        raise typer.Exit(code=2)


@rubric_app.command("stats")
@handle_errors
def stats_cmd(
    file: Annotated[Path, typer.Argument(help="A rubric.json file.")],
    as_json: JsonOpt = False,
    lenient: LenientOpt = False,
) -> None:
    """Nodes, leaves, depth, leaves per task category and per fine-grained category."""
    from klong.rubric.tree import load_rubric, rubric_stats

    stats = rubric_stats(load_rubric(file, strict=not lenient))
    if as_json:
        print_json(stats)
        return
    table = Table(title=str(file))
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key in ("nodes", "leaves", "max_depth", "root_children", "single_child_inner_nodes"):
        table.add_row(key.replace("_", " "), str(stats[key]))
    table.add_row("weight-1 nodes", f"{stats['weight_one_share']:.0%}")
    for cat, n in stats["leaves_per_task_category"].items():
        table.add_row(f"leaves: {cat}", str(n))
    for cat, n in stats["leaves_per_finegrained_category"].items():
        table.add_row(f"leaves: {cat}", str(n))
    console.print(table)


@rubric_app.command("show")
@handle_errors
def show_cmd(
    file: Annotated[Path, typer.Argument(help="A rubric.json file (or a graded tree).")],
    depth: Annotated[int, typer.Option("--depth", help="Levels to show.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Print the tree: weight, category and requirements of each node (scores for a graded tree).

    With --json: the nodes down to --depth, as in the file; a cut node has `hidden_sub_tasks` (their count) instead
    of `sub_tasks`."""
    from klong.io import read_json

    data = read_json(file)
    data = data.get("graded_task_tree", data) if isinstance(data, dict) else data
    if as_json:
        print_json(_cut(data, depth))
        return

    def add(branch: Tree, node: dict, level: int) -> None:
        score = f"[bold]{node['score']:.2f}[/bold] " if "score" in node else ""
        cat = f"[dim]\\[{node.get('task_category')}][/dim] " if node.get("task_category") else ""
        label = branch.add(f"{score}w={node.get('weight')} {cat}{node.get('requirements', '')[:110]}")
        if level < depth:
            for child in node.get("sub_tasks", []):
                add(label, child, level + 1)
        elif node.get("sub_tasks"):
            label.add(f"[dim]... {len(node['sub_tasks'])} sub-tasks[/dim]")

    root = Tree(str(file))
    add(root, data, 1)
    console.print(root)


def _cut(node: dict, depth: int, level: int = 1) -> dict:
    """`node` with its sub-trees below `depth` levels replaced by their count."""
    kids = node.get("sub_tasks") or []
    out = {k: v for k, v in node.items() if k != "sub_tasks"}
    if level < depth:
        out["sub_tasks"] = [_cut(k, depth, level + 1) for k in kids]
    elif kids:
        out["hidden_sub_tasks"] = len(kids)
    else:
        out["sub_tasks"] = []
    return out


@rubric_app.command("score")
@handle_errors
def score_cmd(
    file: Annotated[Path, typer.Argument(help="A graded tree (PaperBench grader output or klong's).")],
    code_only: Annotated[bool, typer.Option("--code-only", help="Re-score on Code Development leaves only.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the aggregate score from the leaf scores of an existing graded tree."""
    from klong.rubric.graded import aggregate, category_scores, read_graded

    tree, extra = read_graded(file)
    recorded = extra.get("score", tree.score)
    if code_only:
        tree = _code_only_graded(tree)
    aggregate(tree)
    leaves = tree.leaves()
    out = {"score": tree.score, "leaves": len(leaves), "invalid_leaves": sum(1 for _, n in leaves if not n.valid_score),
           "recorded_score": recorded, "code_only": code_only, "per_category": category_scores(tree)}  # fmt: skip
    if as_json:
        print_json(out)
        return
    console.print(f"{file}: score {out['score']:.4f} over {out['leaves']} leaves ({out['invalid_leaves']} invalid)"
                  + ("" if out["recorded_score"] is None else f"; recorded {out['recorded_score']:.4f}"))  # fmt: skip
    for cat, v in out["per_category"].items():
        console.print(f"  {cat}: {v['leaves']} leaves, mean leaf score {v['mean_leaf_score']:.3f}")


def _code_only_graded(tree):
    from klong.exceptions import KlongError
    from klong.rubric.graded import GradedNode

    def go(node: GradedNode) -> GradedNode | None:
        if node.is_leaf:
            return node if node.task_category == "Code Development" else None
        kids = [k for k in (go(c) for c in node.sub_tasks) if k is not None]
        return node.model_copy(update={"sub_tasks": kids}) if kids else None

    out = go(tree)
    if out is None:
        raise KlongError("code-only: the graded tree has no Code Development leaf")
    return out
