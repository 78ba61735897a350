"""The harness's own cost per turn, with an instant scripted model, for 1 and 64 concurrent runs.

Each episode makes `--turns` model calls to a scripted model that answers at once; every turn writes a small file
(a host-side tool, so no subprocess is timed). What is left is klong's own work per turn: the context policy's view,
two atomic trajectory saves, tool dispatch and bookkeeping. Measured with approximate token counting (an endpoint
without a local tokenizer) and with the real Qwen2.5 tokenizer (a local model).

Baseline, in the same run: one chat-completions round trip to a zero-latency OpenAI-compatible server on loopback
(the cheapest real model call there is). The ratio harness-per-turn / loopback-call is printed last.

    python benchmarks/runtime_overhead.py [--turns 200] [--tokenizer DIR]

`--bash`: every turn runs `echo hi` in the bash tool of a `local` sandbox instead (a real subprocess per turn), at 1,
64 and 256 concurrent episodes. Baseline in the same run: mini-swe-agent's own loop (PyPI `mini-swe-agent`: its
`DefaultAgent`, deterministic model and `LocalEnvironment`, saving its trajectory every step; concurrent episodes in
threads, as its batch mode runs them), in its own virtual environment (`--mini-python`, else one is made under
~/.cache/klong-bench). mini-swe-agent runs commands with `/bin/sh` (dash on Debian: about 0.8 ms cheaper to start
than bash here), klong's bash tool with bash, so it is measured both ways: as shipped, and with bash as its shell (the
same command in the same shell: the harness difference alone). Host time per turn (elapsed / all turns) for each; the
ratios klong / mini-swe-agent, worst over the concurrencies, are printed last (the aim: at most 0.5).

    python benchmarks/runtime_overhead.py --bash [--turns 200] [--concurrency 1 64 256]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.models.openai_compat import OpenAIModel
from klong.models.scripted import ScriptedCall, ScriptedModel, ScriptedTurn
from klong.models.tokenizer import load_tokenizer
from klong.rollout.runner import run_rollouts
from klong.schema import Message
from klong.task import Task, read_task, write_task


def make_task(root: Path) -> Task:
    rubric = {"id": "r", "requirements": "r", "weight": 1, "sub_tasks": [], "task_category": "Code Development",
              "finegrained_task_category": None}  # fmt: skip
    return read_task(write_task(root / "bench", Task(id="bench", title="bench", paper="# P\n\n" + "text " * 2000,
                                                     rubric=rubric)))  # fmt: skip


def turns(n: int) -> list[ScriptedTurn]:
    body = "result line\n" * 20
    return [ScriptedTurn(content=f"Step {i}: saving a result.",
                         tool_calls=[ScriptedCall(name="write_file", arguments={"path": f"submission/r{i % 10}.txt", "content": body})])
            for i in range(n)]  # fmt: skip


async def episodes(task: Task, n_turns: int, concurrency: int, tokenizer, out: Path) -> float:
    cfg = AgentConfig(clock="virtual", time_limit=10**9, mandatory_reading=False, max_turns=n_turns,
                      context=ContextConfig(max_context_tokens=32768))  # fmt: skip
    script = turns(n_turns)
    copies = [Task(**{**task.model_dump(), "id": f"bench{i}"}) for i in range(concurrency)]
    t0 = time.perf_counter()
    await run_rollouts(copies, model_factory=lambda: ScriptedModel(script), sandbox="local", config=cfg, out_dir=out,
                       concurrency=concurrency, tokenizer=tokenizer)  # fmt: skip
    return (time.perf_counter() - t0) / (n_turns * concurrency)


async def loopback_call(n: int) -> float:
    with FakeOpenAIServer(lambda body: {"content": "ok"}) as server:
        model = OpenAIModel("m", ModelConfig(base_url=server.base_url, max_retries=0))
        msgs = [Message(role="user", content="hello")]
        await model.generate(msgs)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            await model.generate(msgs)
            times.append(time.perf_counter() - t0)
        await model.close()
        return statistics.median(times)


def bash_turns(n: int) -> list[ScriptedTurn]:
    return [ScriptedTurn(content=f"Step {i}.", tool_calls=[ScriptedCall(name="bash", arguments={"command": "echo hi"})])
            for i in range(n)]  # fmt: skip


async def bash_episodes(task: Task, n_turns: int, concurrency: int, out: Path) -> float:
    cfg = AgentConfig(clock="virtual", time_limit=10**9, mandatory_reading=False, max_turns=n_turns,
                      context=ContextConfig(max_context_tokens=32768))  # fmt: skip
    script = bash_turns(n_turns)
    copies = [Task(**{**task.model_dump(), "id": f"bash{i}"}) for i in range(concurrency)]
    t0 = time.perf_counter()
    await run_rollouts(copies, model_factory=lambda: ScriptedModel(script), sandbox="local", config=cfg, out_dir=out,
                       concurrency=concurrency)  # fmt: skip
    return (time.perf_counter() - t0) / (n_turns * concurrency)


MINI_SCRIPT = """
import json, sys, time, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments.local import LocalEnvironment
from minisweagent.models.test_models import DeterministicModel, make_output

turns, concurrency, root, shell = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
if shell == "bash":  # the same shell as klong's bash tool (mini-swe-agent's own is /bin/sh)
    import functools, subprocess
    import minisweagent.environments.local as local
    local.subprocess = type("S", (), {**{k: getattr(subprocess, k) for k in dir(subprocess) if not k.startswith("__")},
                                      "Popen": functools.partial(subprocess.Popen, executable="/bin/bash")})
done = [make_output("Done.", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}])]

def one(i):
    outputs = [make_output(f"Step {k}.", [{"command": "echo hi"}]) for k in range(turns - 1)] + done
    agent = DefaultAgent(DeterministicModel(outputs=outputs), LocalEnvironment(cwd=str(root)),
                         system_template="You are an agent.", instance_template="{{task}}", step_limit=turns + 1,
                         cost_limit=1e9, output_path=root / f"traj{i}.json")
    return agent.run("Say hi.")["exit_status"]

t0 = time.perf_counter()
with ThreadPoolExecutor(concurrency) as pool:
    statuses = list(pool.map(one, range(concurrency)))
elapsed = time.perf_counter() - t0
assert all(s == "Submitted" for s in statuses), statuses
print(json.dumps({"per_turn": elapsed / (turns * concurrency)}))
"""


def mini_python(given: str | None) -> str:
    """A Python with mini-swe-agent: the one given, else a virtual environment made once under ~/.cache/klong-bench."""
    import subprocess
    import sys

    if given:
        return given
    venv = Path.home() / ".cache" / "klong-bench" / "mini-swe-agent"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "mini-swe-agent==2.4.6"], check=True)
    return str(python)


def mini_per_turn(python: str, turns: int, concurrency: int, root: Path, shell: str) -> float:
    import json
    import subprocess

    root.mkdir(parents=True, exist_ok=True)
    script = root / "mini_bench.py"
    script.write_text(MINI_SCRIPT)
    done = subprocess.run([python, str(script), str(turns), str(concurrency), str(root), shell], capture_output=True,
                          text=True, check=True, env={"MSWEA_SILENT_STARTUP": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])["per_turn"]


def bash_main(args) -> None:
    python = mini_python(args.mini_python)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = make_task(root)
        for conc in args.concurrency:
            turns_here = max(20, args.turns // max(1, conc // 32))  # long enough episodes at every level
            klong = asyncio.run(bash_episodes(task, turns_here, conc, root / f"klong{conc}"))
            mini_sh = mini_per_turn(python, turns_here, conc, root / f"mini{conc}", "sh")
            mini_bash = mini_per_turn(python, turns_here, conc, root / f"minib{conc}", "bash")
            rows.append((conc, turns_here, klong, mini_sh, mini_bash))
    print("bash-tool turns (`echo hi` in a local subprocess), host time per turn")
    for conc, n, klong, mini_sh, mini_bash in rows:
        print(f"concurrency {conc:3d} ({n} turns each): klong {klong * 1000:6.2f} ms, mini-swe-agent {mini_sh * 1000:6.2f} ms "
              f"with its /bin/sh (ratio {klong / mini_sh:.2f}), {mini_bash * 1000:6.2f} ms with bash as klong "
              f"(ratio {klong / mini_bash:.2f})")  # fmt: skip
    print(f"ratio klong / mini-swe-agent per turn, worst over concurrency: {max(r[2] / r[3] for r in rows):.2f} "
          f"(mini-swe-agent's /bin/sh), {max(r[2] / r[4] for r in rows):.2f} (same shell: bash)")  # fmt: skip


def main() -> None:
    default_tok = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tokenizers" / "qwen2.5"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=200)
    ap.add_argument("--tokenizer", type=Path, default=default_tok)
    ap.add_argument("--bash", action="store_true", help="bash-tool turns against mini-swe-agent's loop")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--mini-python", help="a Python with mini-swe-agent installed")
    args = ap.parse_args()
    if args.bash:
        bash_main(args)
        return
    tok = load_tokenizer(args.tokenizer) if args.tokenizer.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        task = make_task(root)
        call = asyncio.run(loopback_call(200))
        rows = []
        for label, tokenizer in [("approx counting", None), ("Qwen2.5 tokenizer", tok)]:
            if label != "approx counting" and tokenizer is None:
                continue
            for conc in (1, 64):
                per_turn = asyncio.run(episodes(task, args.turns, conc, tokenizer, root / f"{label[:5]}{conc}"))
                rows.append((label, conc, per_turn))
    print(f"episodes of {args.turns} turns (instant scripted model, one write_file per turn)")
    print(f"loopback chat-completions call (zero-latency server): {call * 1000:.2f} ms")
    for label, conc, per_turn in rows:
        print(
            f"{label:18s} concurrency {conc:3d}: {per_turn * 1000:7.2f} ms harness time per turn "
            f"({1 / per_turn:,.0f} turns/s on this host)"
        )
    worst = max(r[2] for r in rows if r[1] == 1)
    print(f"ratio harness-per-turn / loopback call (concurrency 1, worst): {worst / call:.2f}")


if __name__ == "__main__":
    main()
