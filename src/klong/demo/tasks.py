"""A family of synthetic long-horizon "replication" tasks, generated from a seed, in the standard task-dir format.

The paper specifies E experiments and the exact settings of each (a learning rate and a seed). The workspace holds a
deterministic experiment script, `tools/run_exp.py`, which prints a long, noisy training log and records the run in
`submission/runs/exp<k>.json`; its final metric depends on the settings. The rubric grades, for each experiment, with
programmatic checks: the experiment was run (Code Execution), with the settings of the paper (Code Development), and
its result was recorded in `submission/results/exp<k>.txt` consistently with the run (Result Analysis). The settings
appear only in the paper, so an agent must keep the paper in view (the pinned prefix) to get them right late in the
task, when the context has long overflowed. Running an experiment costs 30 virtual minutes.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from klong.task import Task, write_task

LEARNING_RATES = ("0.1", "0.03", "0.01", "0.003", "0.001")
EXPERIMENT_SECONDS = 1800.0
TOPICS = ("sparse adapters", "curriculum schedules", "noisy labels", "weight averaging", "token dropping",
          "label smoothing", "warmup length", "batch scaling")  # fmt: skip
RUN_SCRIPT = '''"""Deterministic stand-in for a training run: a long, noisy log; the run is recorded for grading."""
import argparse, hashlib, json, os, random

p = argparse.ArgumentParser()
p.add_argument("--exp", type=int, required=True)
p.add_argument("--lr", required=True)
p.add_argument("--seed", type=int, required=True)
a = p.parse_args()
key = f"{a.exp}|{a.lr}|{a.seed}"
rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16))
metric = round(0.5 + 0.45 * rng.random(), 4)
steps = %(steps)d
print(f"config: exp={a.exp} lr={a.lr} seed={a.seed}")
for step in range(1, steps + 1):
    loss = 2.5 * (1 - step / (steps + 1)) + 0.1 * rng.random()
    print(f"step {step} loss {loss:.2f}")
print(f"final_metric={metric}")
os.makedirs("submission/runs", exist_ok=True)
with open(f"submission/runs/exp{a.exp}.json", "w") as f:
    json.dump({"exp": a.exp, "lr": a.lr, "seed": a.seed, "metric": metric}, f)
'''


@dataclass(frozen=True)
class Experiment:
    index: int
    lr: str
    seed: int

    @property
    def line(self) -> str:
        """How the paper states this experiment's settings (the teacher repeats it verbatim when it runs it)."""
        return f"Experiment {self.index}: learning rate {self.lr}, seed {self.seed}."


def experiment_metric(exp: int, lr: str, seed: int) -> float:
    """The metric `run_exp.py` reports for these settings (same formula)."""
    import hashlib

    rng = random.Random(int(hashlib.sha256(f"{exp}|{lr}|{seed}".encode()).hexdigest()[:12], 16))
    return round(0.5 + 0.45 * rng.random(), 4)


EXPERIMENT_LINE = re.compile(r"Experiment (\d+): learning rate ([0-9.]+), seed (\d+)\.")


def parse_experiments(paper: str) -> list[Experiment]:
    """The experiments a paper (or the pages of it read so far) states, in order."""
    return [Experiment(int(k), lr, int(seed)) for k, lr, seed in EXPERIMENT_LINE.findall(paper)]


def make_experiments(rng: random.Random, n: int) -> list[Experiment]:
    return [Experiment(k, rng.choice(LEARNING_RATES), rng.randint(1, 9)) for k in range(1, n + 1)]


def paper_text(task_id: str, experiments: list[Experiment], rng: random.Random) -> str:
    topic = rng.choice(TOPICS)
    lines = [f"# A study of {topic} ({task_id})", "",
             f"We study {topic} with {len(experiments)} training runs. Run each one with "
             "`python3 tools/run_exp.py --exp K --lr LR --seed S` using exactly the settings below, then write its "
             "final metric to `submission/results/expK.txt`.", ""]  # fmt: skip
    lines += [e.line for e in experiments]
    return "\n".join(lines) + "\n"


def rubric_for(task_id: str, experiments: list[Experiment]) -> dict:
    def leaf(node_id, text, category, command):
        return {"id": node_id, "requirements": text, "weight": 1, "sub_tasks": [], "task_category": category,
                "finegrained_task_category": None, "check": {"command": command, "timeout": 30}}  # fmt: skip

    nodes = []
    for e in experiments:
        run_json = f"runs/exp{e.index}.json"
        load = f"import json; d = json.load(open('{run_json}'))"
        nodes.append({
            "id": f"exp{e.index}", "requirements": f"Experiment {e.index} is replicated.", "weight": 1,
            "task_category": None, "finegrained_task_category": None,
            "sub_tasks": [
                leaf(f"exp{e.index}-run", f"Experiment {e.index} was run.", "Code Execution", f"test -f {run_json}"),
                leaf(f"exp{e.index}-config", f"Experiment {e.index} used learning rate {e.lr} and seed {e.seed}.",
                     "Code Development", f"python3 -c \"{load}; assert d['lr'] == '{e.lr}' and d['seed'] == {e.seed}\""),
                leaf(f"exp{e.index}-result", f"The result of experiment {e.index} is recorded and matches its run.",
                     "Result Analysis",
                     f"python3 -c \"{load}; assert abs(float(open('results/exp{e.index}.txt').read()) - d['metric']) < 1e-9\""),
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
    task = Task(id=task_id, title=f"Synthetic replication {task_id}", paper=paper_text(task_id, exps, rng),
                addendum="", blacklist=[], config=config, rubric=rubric_for(task_id, exps))  # fmt: skip
    write_task(root / task_id, task)
    (root / task_id / "assets").mkdir(exist_ok=True)
    (root / task_id / "assets" / "run_exp.py").write_text(RUN_SCRIPT % {"steps": log_steps})
    from klong.task import read_task

    return read_task(root / task_id), exps


def make_tasks(root: Path, *, prefix: str, count: int, seed: int, experiments: int, log_steps: int) -> list[Task]:
    return [make_task(root, f"{prefix}{i:03d}", seed * 100_003 + i, experiments, log_steps)[0] for i in range(count)]
