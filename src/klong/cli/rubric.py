"""`klong rubric validate|stats|show|score`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.tree import Tree

from klong.cli.common import app, console, handle_errors

rubric_app = typer.Typer(
    help="PaperBench rubric trees: validate, statistics, show, re-score gradings.", no_args_is_help=True
)
app.add_typer(rubric_app, name="rubric")


@rubric_app.command("validate")
@handle_errors
def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="rubric.json files.")],
    lenient: Annotated[bool, typer.Option("--lenient", help="Allow nodes without the two category keys.")] = False,
) -> None:
    """Check rubric files; every problem is reported with its node path."""
    from klong.rubric.tree import load_rubric, rubric_stats

    for f in files:
        stats = rubric_stats(load_rubric(f, strict=not lenient))
        console.print(f"{f}: valid ({stats['nodes']} nodes, {stats['leaves']} leaves, depth {stats['max_depth']})")


@rubric_app.command("stats")
@handle_errors
def stats_cmd(
    file: Annotated[Path, typer.Argument(help="A rubric.json file.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    lenient: Annotated[bool, typer.Option("--lenient")] = False,
) -> None:
    """Nodes, leaves, depth, leaves per task category and per fine-grained category."""
    from klong.rubric.tree import load_rubric, rubric_stats

    stats = rubric_stats(load_rubric(file, strict=not lenient))
    if as_json:
        print(json.dumps(stats, indent=2))
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
) -> None:
    """Print the tree: weight, category and requirements of each node (scores for a graded tree)."""
    from klong.io import read_json

    data = read_json(file)
    data = data.get("graded_task_tree", data) if isinstance(data, dict) else data

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


@rubric_app.command("score")
@handle_errors
def score_cmd(
    file: Annotated[Path, typer.Argument(help="A graded tree (PaperBench grader output or klong's).")],
    code_only: Annotated[bool, typer.Option("--code-only", help="Re-score on Code Development leaves only.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
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
        print(json.dumps(out, indent=2))
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
