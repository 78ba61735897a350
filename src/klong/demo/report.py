"""The demo's report: a markdown table in the shape of the paper's ablation, PNG plots, and the raw numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from klong.demo.tasks import LEAF_NAMES
from klong.train.common import read_metrics


def write_report(out: Path, results: dict[str, Any]) -> Path:
    (out / "report.json").write_text(json.dumps(results, indent=2))
    plots = _plots(out, results)
    c = results["config"]
    lines = [
        "# klong demo report", "",
        f"Synthetic replication tasks: {c['train_tasks']} for training, {c['eval_tasks']} held out; {c['experiments']} "
        f"experiments each; student: {c['layers']} layers x {c['hidden_size']} wide, trained from random weights with a "
        f"{c['window']}-token context; seed {c['seed']}.", "",
        f"Teacher: {results['teacher']['rollouts']} rollouts, mean score {results['teacher']['score_mean']:.3f}, "
        f"{results['teacher']['kept']} kept by rejection sampling (score 1).", "",
        "| model | score (mean +- std over held-out tasks) | run / seed / result leaves | assistant turns | "
        "virtual run time (h) |",
        "|---|---|---|---|---|",
    ]  # fmt: skip
    for row in results["rows"]:
        leaves = " / ".join(f"{row['leaves'][k]:.2f}" for k in LEAF_NAMES.values())
        lines.append(f"| {row['label']} | {row['score_mean']:.3f} +- {row['score_std']:.3f} | {leaves} | "
                     f"{row['turns']:.1f} | {row['virtual_hours']:.2f} |")  # fmt: skip
    lines += ["", "Leaves: mean leaf score per rubric category over the held-out tasks: the experiment was run (Code "
              "Execution), with the paper's seed (Code Development), and its result recorded as the run printed it "
              "(Result Analysis).", ""]  # fmt: skip
    lines += ["Training windows per split policy (same window size):", "",
              "| policy | windows | tokens | trained tokens |", "|---|---|---|---|"]  # fmt: skip
    for policy, w in results["windows"].items():
        lines.append(f"| {policy} | {w['windows']} | {w['tokens']} | {w['trained_tokens']} |")
    lines += ["", "Plots: " + ", ".join(f"[{p.name}]({p.name})" for p in plots), "",
              "Phase timings (s): " + ", ".join(f"{k}: {v:.0f}" for k, v in results["timings"].items()), ""]  # fmt: skip
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _plots(out: Path, results: dict[str, Any]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(6, 4))
    for policy in ("truncate", "sliding", "epoch"):
        m = [r for r in read_metrics(out / "sft" / policy / "metrics.jsonl") if "loss" in r]
        if m:
            ax.plot([r["step"] for r in m], [r["loss"] for r in m], label=policy)
    ax.set(xlabel="optimizer step", ylabel="training loss (per trained token)", title="SFT on split windows")
    ax.legend()
    paths.append(_save(fig, out / "sft_loss.png"))

    rl = [r for r in read_metrics(out / "rl" / "metrics.jsonl") if "reward_mean" in r]
    if rl:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar([r["iteration"] for r in rl], [r["reward_mean"] for r in rl], yerr=[r["reward_std"] for r in rl],
                    marker="o")  # fmt: skip
        ax.set(xlabel="RL iteration", ylabel="rollout reward (judge score)", title="Progressive RL")
        paths.append(_save(fig, out / "rl_reward.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    rows = results["rows"]
    ax.bar(range(len(rows)), [r["score_mean"] for r in rows], yerr=[r["score_std"] for r in rows], capsize=4)
    ax.set_xticks(range(len(rows)), [r["label"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set(ylabel="held-out score", title="Ablation")
    paths.append(_save(fig, out / "scores.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
