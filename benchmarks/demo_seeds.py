"""The demo's ablation over seeds: mean and spread of each row's held-out score across `klong demo` runs.

Runs `klong demo --seed S --out OUT/demo-S` for each seed whose run is not finished yet (a finished one is read back,
not rerun), then prints, per row of the report, the mean and sample standard deviation over seeds of the held-out
score and of the three leaf categories. The baseline is truncation SFT, measured in the same runs; the ratio
trajectory-splitting / truncation of the mean scores is printed last.

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--out runs]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from klong.demo.pipeline import DemoConfig, run_demo
from klong.demo.tasks import LEAF_NAMES


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs"))
    args = parser.parse_args()

    reports = []
    for seed in args.seeds:
        out = args.out / f"demo-{seed}"
        if not (out / "report.json").exists():
            t0 = time.monotonic()
            run_demo(out, DemoConfig(seed=seed))
            print(f"seed {seed}: ran in {time.monotonic() - t0:.0f} s")
        report = json.loads((out / "report.json").read_text())
        if report["config"] != DemoConfig(seed=seed).model_dump():
            raise SystemExit(f"{out / 'report.json'}: made with other settings than the defaults; use another --out")
        reports.append(report)

    def spread(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} +- {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"

    print(f"\n{len(reports)} seeds ({', '.join(map(str, args.seeds))}), default settings, 8 held-out tasks each\n")
    print("| model | held-out score, mean +- std over seeds | per seed | run / seed / result leaves (mean) |")
    print("|---|---|---|---|")
    means = {}
    for i, row in enumerate(reports[0]["rows"]):
        rows = [r["rows"][i] for r in reports]
        scores = [r["score_mean"] for r in rows]
        means[row["name"]] = statistics.mean(scores)
        leaves = " / ".join(f"{statistics.mean(r['leaves'][k] for r in rows):.2f}" for k in LEAF_NAMES.values())
        print(f"| {row['label']} | {spread(scores)} | {', '.join(f'{s:.3f}' for s in scores)} | {leaves} |")
    print(f"\ntrajectory-splitting / truncation SFT, mean held-out score: {means['epoch'] / means['truncate']:.2f}x")


if __name__ == "__main__":
    main()
