"""A family of synthetic long-horizon "replication" tasks, generated from a seed, in the standard task-dir format.

The paper specifies E experiments and the exact seed of each. The workspace holds a deterministic experiment script,
`tools/run_exp.py`, which prints a long, noisy training log and records the run in `submission/runs/exp<k>.json`;
its final metric depends on the settings. The rubric grades, for each experiment, with programmatic checks: the
experiment was run (Code Execution), with the seed of the paper (Code Development), and its result was recorded in
`submission/results/exp<k>.txt` consistently with the run (Result Analysis). The seeds appear only in the paper, so an
agent must keep the paper in view (the pinned prefix) to get them right late in the task, when the context has long
overflowed. Running an experiment costs 30 virtual minutes.

Experiment k's seed is drawn from the k-th block of ten (run 4 has a seed in 41..49): each run's seed is then a token
of its own class that a small model can find in the pinned paper by its content. Finding the k-th entry of a list of
look-alike numbers needs an induction-style lookup that a two-layer model does not learn in the demo's CPU budget
(docs/demo.md has the measurements).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from klong.task import Task, read_task, write_task

MAX_EXPERIMENTS = 9
LEAF_NAMES = {"Code Execution": "run", "Code Development": "seed", "Result Analysis": "result"}
"""The three leaves of every experiment, by task category, as the demo's report names them."""
EXPERIMENT_SECONDS = 1800.0
TOPICS = ("sparse adapters", "curriculum schedules", "noisy labels", "weight averaging", "token dropping",
          "label smoothing", "warmup length", "batch scaling")  # fmt: skip
WARNINGS = ("warning: dataloader worker restarted", "warning: loss scale reduced", "warning: slow step",
            "info: checkpoint saved", "info: evaluation skipped")  # fmt: skip
RUN_SCRIPT = '''#!/usr/bin/env python3
"""Deterministic stand-in for a training run: a long, noisy log; the run is recorded for grading."""
import argparse, hashlib, json, os, random

p = argparse.ArgumentParser()
p.add_argument("--exp", type=int, required=True)
p.add_argument("--seed", type=int, required=True)
a = p.parse_args()
rng = random.Random(int(hashlib.sha256(f"{a.exp}|{a.seed}".encode()).hexdigest()[:12], 16))
metric = "%%.2f" %% (0.5 + 0.45 * rng.random())
steps = %(steps)d
warnings = %(warnings)r
print(f"config: exp {a.exp} seed {a.seed}")
for step in range(1, steps + 1):
    print(f"train loss {1.2 + 1.6 * (1 - step / steps) + 0.1 * rng.random():.2f}")
    if rng.random() < 0.25:
        print(rng.choice(warnings))
print(f"final metric {metric}")
os.makedirs("submission/runs", exist_ok=True)
with open(f"submission/runs/exp{a.exp}.json", "w") as f:
    json.dump({"exp": a.exp, "seed": a.seed, "metric": metric}, f)
'''


@dataclass(frozen=True)
class Experiment:
    index: int
    seed: int


SEEDS_LINE = re.compile(r"The seeds of the runs, in order: ([0-9, ]+)\.")


def parse_experiments(paper: str) -> list[Experiment]:
    """The experiments a paper (or the pages of it read so far) states, in order."""
    found = SEEDS_LINE.search(paper)
    if not found:
        return []
    return [Experiment(k, int(s)) for k, s in enumerate(found.group(1).split(","), start=1)]


def make_experiments(rng: random.Random, n: int) -> list[Experiment]:
    if not 1 <= n <= MAX_EXPERIMENTS:
        raise ValueError(f"a synthetic task has 1 to {MAX_EXPERIMENTS} experiments, not {n}")
    return [Experiment(k, 10 * k + rng.randint(1, 9)) for k in range(1, n + 1)]


def paper_text(experiments: list[Experiment], rng: random.Random) -> str:
    topic = rng.choice(TOPICS)
    seeds = ", ".join(str(e.seed) for e in experiments)
    return (f"# A study of {topic}\n\nWe study {topic}: run `tools/run_exp.py --exp K --seed S` for each run K "
            f"and write its final metric to `submission/results/expK.txt`.\n\nThe seeds of the runs, in order: {seeds}.\n")  # fmt: skip


def rubric_for(task_id: str, experiments: list[Experiment]) -> dict:
    def leaf(node_id, text, category, command):
        return {"id": node_id, "requirements": text, "weight": 1, "sub_tasks": [], "task_category": category,
                "finegrained_task_category": None, "check": {"command": command, "timeout": 30}}  # fmt: skip

    nodes = []
    for e in experiments:
        run_json = f"runs/exp{e.index}.json"
        # Shell checks (no interpreter start-up per leaf); run_exp.py writes the JSON in one fixed layout.
        config_check = f"grep -qF '\"seed\": {e.seed},' {run_json}"
        result_check = (f"read -r got < results/exp{e.index}.txt && [ -n \"$got\" ] && "
                        f"grep -qF \"\\\"metric\\\": \\\"$got\\\"\" {run_json}")  # fmt: skip
        nodes.append({
            "id": f"exp{e.index}", "requirements": f"Experiment {e.index} is replicated.", "weight": 1,
            "task_category": None, "finegrained_task_category": None,
            "sub_tasks": [
                leaf(f"exp{e.index}-run", f"Experiment {e.index} was run.", "Code Execution", f"test -f {run_json}"),
                leaf(f"exp{e.index}-config", f"Experiment {e.index} used seed {e.seed}.", "Code Development",
                     config_check),
                leaf(f"exp{e.index}-result", f"The result of experiment {e.index} is recorded and matches its run.",
                     "Result Analysis", result_check),
            ],
        })  # fmt: skip
    return {"id": f"{task_id}-root", "requirements": f"The paper {task_id} is replicated.", "weight": 1,
            "task_category": None, "finegrained_task_category": None, "sub_tasks": nodes}  # fmt: skip


def make_task(root: Path, task_id: str, seed: int, experiments: int, log_steps: int) -> tuple[Task, list[Experiment]]:
    rng = random.Random(seed)
    exps = make_experiments(rng, experiments)
    config = {"klong": {"workspace": {"tools/run_exp.py": "assets/run_exp.py"},
                        "agent": {"clock": "virtual",
                                  "command_costs": [{"pattern": "run_exp", "seconds": EXPERIMENT_SECONDS}]}}}  # fmt: skip
    task = Task(id=task_id, title=f"Synthetic replication {task_id}", paper=paper_text(exps, rng), addendum="",
                blacklist=[], config=config, rubric=rubric_for(task_id, exps))  # fmt: skip
    write_task(root / task_id, task)
    (root / task_id / "assets").mkdir(exist_ok=True)
    script = root / task_id / "assets" / "run_exp.py"
    script.write_text(RUN_SCRIPT % {"steps": log_steps, "warnings": WARNINGS})
    script.chmod(0o755)  # run as `tools/run_exp.py ...`: no interpreter name (and no digit) in the command
    return read_task(root / task_id), exps


def make_tasks(root: Path, *, prefix: str, count: int, seed: int, experiments: int, log_steps: int) -> list[Task]:
    return [make_task(root, f"{prefix}{i:03d}", seed * 100_003 + i, experiments, log_steps)[0] for i in range(count)]
