"""SWE-bench (Verified): the agent resolves a GitHub issue in the repository at `base_commit`; the patch is the
repository's `git diff` against it, in SWE-bench's `preds.jsonl`, graded by the official harness or locally.

Instances: SWE-bench rows from a file or a `datasets` folder (`klong.eval.swebench_instances`). The agent's
repository is `repo/` of its workspace: a checkout of `base_commit` from a local clone (`--repo-dir`), or, with
`--sandbox docker`, the instance image's `/testbed`, mounted at `/testbed` in that image (`klong.eval.swebench_repo`).

Run dir, besides klong's own files:
- `preds.jsonl` (attempt 0; `preds.a<k>.jsonl` for attempt k): `{instance_id, model_name_or_path, model_patch}`, one
  line per instance, `model_patch` "" when the agent changed nothing;
- `swebench/patches/<run>.diff`, `swebench/git/<run>.git` (the pristine base commit, `klong.eval.swebench_repo`);
- `--evaluate`: `swebench/harness/` (the harness's cwd: `logs/run_evaluation/<run>/<model>/<id>/report.json`, its
  inputs under `inputs/<run>/`); `--local-eval`: `swebench/local_eval/<run>/{report.json,test_output.txt}`.

A run's score is 1 when resolved, else 0. Without `--evaluate` or `--local-eval` the runs are "not evaluated" (score
None): the patches are written for the harness to grade elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from klong.eval import swebench_repo as gitrepo
from klong.eval.benchmark import NOT_EVALUATED, Reference, TaskResult
from klong.eval.swebench_harness import HARNESS, check_harness, run_harness, score_report
from klong.eval.swebench_instances import Instance, load_instances
from klong.eval.swebench_local import GRADER, evaluate_locally
from klong.exceptions import ConfigError, InputFileError, KlongError
from klong.io import atomic_write_text
from klong.rollout.runner import RunSummary
from klong.sandbox import SandboxConfig
from klong.task import Task

TESTBED = "/testbed"
CONDA_PATH = (
    "/opt/miniconda3/envs/testbed/bin:/opt/miniconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)
"""PATH in an instance image: its `testbed` conda environment first (what the harness activates)."""
TIME_LIMIT = 3600.0
DEFAULT_TEST_CMD = "python -m pytest -rA"

SYSTEM_PROMPT = """You are an autonomous software engineer working in a sandboxed Linux machine, alone. You act only
through the tools you are given: one or more tool calls per reply. Nobody will answer questions; decide and act.
Reproduce the problem first, make a minimal, focused change, and check it before you stop. When the fix is done and
verified, call end_task."""

TASK_TEMPLATE = """Resolve the issue below in the repository checked out at `{repo}` ({{title}}): a git work tree at
the issue's base commit. Your commands run in `{{root}}`.

<issue>
{{paper}}
</issue>

- Change the repository's source files so that the issue is resolved. What is graded is the repository's `git diff`
  against the base commit when you end (new files included, binary files left out), tested with the project's own
  tests, some of them hidden: you need not write tests, and changes to the project's test files are replaced.
- Do not commit, and do not change the git history, branches or `.git`: only the files of the work tree count.
- The project's dependencies are installed; there is no network access.
- You have {{time_limit}} in total. Call end_task when the fix is done and checked.
"""


def image_name(instance_id: str, namespace: str | None) -> str:
    """The instance's image, named as the harness (4.x) names it: `NS/sweb.eval.x86_64.<id>:latest` lowercased with
    `__` as `_1776_`; no namespace (`none`): the locally built `sweb.eval.x86_64.<id>:latest`."""
    key = f"sweb.eval.x86_64.{instance_id.lower()}:latest"
    return key if namespace in (None, "", "none") else f"{namespace}/{key}".replace("__", "_1776_")


class SweBench:
    """The `Benchmark` (klong.eval.benchmark) of SWE-bench instances."""

    name = "swebench"
    metric = "resolved"

    def __init__(self, instances: Path, *, sandbox: str, model_name: str, repo_dir: Path | None = None,
                 ids: list[str] | None = None, split: str = "test", hints: bool = False, full_history: bool = False,
                 evaluate: bool = False, local_eval: bool = False, swebench_python: str | None = None,
                 namespace: str | None = "swebench", harness_timeout: int = 1800, harness_args: list[str] | None = None,
                 test_cmd: str | None = None, test_timeout: float = 1800.0):  # fmt: skip
        if evaluate and local_eval:
            raise ConfigError("--evaluate and --local-eval exclude each other")
        if repo_dir is None and sandbox != "docker":
            raise ConfigError(f"--sandbox {sandbox} needs --repo-dir DIR (local clones DIR/<owner>__<name>); "
                              "--sandbox docker takes the repository from the instance's image")  # fmt: skip
        if repo_dir is not None and not repo_dir.is_dir():
            raise InputFileError(repo_dir, "--repo-dir: not a folder")
        if evaluate and not swebench_python:
            raise ConfigError("--evaluate needs --swebench-python PYTHON (or $KLONG_SWEBENCH_PYTHON): a Python with "
                              "swebench>=4.1,<5")  # fmt: skip
        self.path, self.sandbox, self.model_name, self.split, self.ids = (
            Path(instances),
            sandbox,
            model_name,
            split,
            ids,
        )
        self.repo_dir = repo_dir.resolve() if repo_dir is not None else None
        self.hints, self.full_history, self.namespace = hints, full_history, namespace
        self.evaluate, self.local_eval, self.python = evaluate, local_eval, swebench_python
        self.harness_timeout, self.harness_args = harness_timeout, list(harness_args or [])
        self.test_cmd, self.test_timeout = test_cmd or DEFAULT_TEST_CMD, test_timeout
        self.references: list[Reference] = []  # none yet: a published figure measured this way can be added here
        self.setting = "harness" if evaluate else "local-tests" if local_eval else "patches"
        self._instances: dict[str, Instance] | None = None
        self._tasks: list[Task] = []

    def tasks(self) -> list[Task]:
        if self._instances is None:
            instances = load_instances(self.path, split=self.split, ids=self.ids)
            if self.repo_dir is not None:
                for inst in instances:
                    gitrepo.check_source(gitrepo.source_dir(self.repo_dir, inst.repo), inst.base_commit)
            if self.evaluate:
                check_harness(self.python or "")
            self._instances = {i.instance_id: i for i in instances}
            self._tasks = [self._task(i) for i in instances]
        return list(self._tasks)

    def _task(self, inst: Instance) -> Task:
        text = inst.problem_statement
        if self.hints and inst.hints_text.strip():
            text += f"\n\nHints (from the issue's discussion):\n\n{inst.hints_text}"
        return Task(id=inst.instance_id, title=inst.instance_id, paper=text, rubric={},
                    config=inst.model_dump(mode="json"))  # fmt: skip

    def instance(self, task: Task) -> Instance:
        self.tasks()
        assert self._instances is not None
        return self._instances[task.id]

    def agent_defaults(self) -> dict[str, Any]:
        repo = TESTBED if self.sandbox == "docker" else "repo/"
        return {"mandatory_reading": False, "time_limit": TIME_LIMIT, "system_prompt": SYSTEM_PROMPT,
                "task_template": TASK_TEMPLATE.format(repo=repo)}  # fmt: skip

    def _pristine(self, out_dir: Path, run_id: str) -> Path:
        return out_dir / "swebench" / "git" / f"{run_id}.git"

    def _make_repo(self, inst: Instance, dest: Path, pristine: Path, *, fresh: bool) -> None:
        """The instance's repository at `dest`: from the local clone, or the image's `/testbed`; `fresh`: make the
        pristine copy too (else it exists)."""
        if self.repo_dir is not None:
            if fresh:
                src = gitrepo.source_dir(self.repo_dir, inst.repo)
                gitrepo.make_pristine(pristine, src, inst.base_commit, full_history=self.full_history)
            gitrepo.install_repo(dest, pristine, inst.base_commit, checkout=True)
            return
        gitrepo.copy_from_image(image_name(inst.instance_id, self.namespace), dest)
        if fresh:
            gitrepo.make_pristine(pristine, dest / ".git", inst.base_commit, full_history=self.full_history)
        gitrepo.install_repo(dest, pristine, inst.base_commit, checkout=False)

    async def prepare(self, task: Task, workspace: Path) -> None:
        # the runtime's layout: OUT/workspaces/<run_id>/
        pristine = self._pristine(workspace.parent.parent, workspace.name)
        await asyncio.to_thread(self._make_repo, self.instance(task), workspace / "repo", pristine, fresh=True)

    def sandbox_config(self, task: Task, config: SandboxConfig) -> SandboxConfig:
        hide = [*config.hide_paths, *([str(self.repo_dir)] if self.repo_dir is not None else [])]
        update: dict[str, Any] = {"hide_paths": hide}
        if self.sandbox == "docker":
            update |= {"docker_image": image_name(task.id, self.namespace), "docker_build": False,
                       "docker_mounts": {"repo": TESTBED}, "docker_env": {"PATH": CONDA_PATH}}  # fmt: skip
        return config.model_copy(update=update)

    async def grade(self, run: RunSummary, task: Task, out_dir: Path) -> TaskResult:
        inst = self.instance(task)
        pristine = self._pristine(out_dir, run.run_id)
        if not (pristine / "HEAD").is_file():
            raise KlongError(f"{pristine}: the pristine copy of the base commit is missing (run again with --redo)")
        work_tree = out_dir / run.workspace / "repo"
        patch, binary = await asyncio.to_thread(gitrepo.extract_patch, pristine, work_tree, inst.base_commit)
        patch_file = out_dir / "swebench" / "patches" / f"{run.run_id}.diff"
        atomic_write_text(patch_file, patch)
        files = {"patch": patch_file}
        metrics: dict[str, Any] = {"empty_patch": not patch.strip(), "patch_lines": patch.count("\n"),
                                   "binary_files_left_out": len(binary)}  # fmt: skip
        score: float | None = None
        if self.local_eval:
            out = out_dir / "swebench" / "local_eval" / run.run_id
            entry = await evaluate_locally(
                instance_id=inst.instance_id, base_commit=inst.base_commit, patch=patch, test_patch=inst.test_patch,
                fail_to_pass=inst.FAIL_TO_PASS, pass_to_pass=inst.PASS_TO_PASS, test_cmd=inst.test_cmd or self.test_cmd,
                timeout=self.test_timeout, sandbox=self.sandbox, out=out,
                sandbox_config=self.sandbox_config(task, SandboxConfig(hide_paths=[str(out_dir)])),
                make_repo=lambda dest: self._make_repo(inst, dest, pristine, fresh=False),
                repo_in_sandbox=TESTBED if self.sandbox == "docker" else None,
            )  # fmt: skip
            score, found = score_report(entry)
            files |= {k: out / f for k, f in (("report", "report.json"), ("test_output", "test_output.txt"))}
        elif self.evaluate and patch.strip():
            entry, made = await run_harness(
                self.python or "", cwd=out_dir / "swebench" / "harness", run_id=run.run_id, row=self.instance_row(inst),
                prediction=self.prediction(inst.instance_id, patch), timeout=self.harness_timeout,
                namespace=self.namespace, extra=self.harness_args,
            )  # fmt: skip
            score, found = score_report(entry)
            files |= made
        elif self.evaluate:  # the harness does not run an empty patch: unresolved
            score, found = 0.0, {"patch_applied": False}
        else:
            found = {}
        result = TaskResult(run_id=run.run_id, task_id=run.task_id, attempt=run.attempt, score=score,
                            metrics={**metrics, **found}, grader=GRADER if self.local_eval else HARNESS,
                            official=self.evaluate,
                            files={k: str(v.relative_to(out_dir)) for k, v in files.items() if v.is_file()})  # fmt: skip
        if not (self.local_eval or self.evaluate):
            result.status, result.grader = (
                NOT_EVALUATED,
                "none (patches only: run the SWE-bench harness on preds.jsonl)",
            )
        return result

    def instance_row(self, inst: Instance) -> dict[str, Any]:
        """The row as the harness reads it (the instances file's own fields; klong's `test_cmd` left out)."""
        return inst.model_dump(mode="json", exclude={"test_cmd"} if inst.test_cmd is None else set())

    def prediction(self, instance_id: str, patch: str) -> dict[str, str]:
        return {"instance_id": instance_id, "model_name_or_path": self.model_name, "model_patch": patch}

    def finalize(self, out_dir: Path, results: list[TaskResult]) -> dict[str, str]:
        order = {t.id: k for k, t in enumerate(self.tasks())}
        by_attempt: dict[int, list[dict[str, str]]] = {}
        for r in sorted(results, key=lambda r: (r.attempt, order.get(r.task_id, len(order)), r.task_id)):
            patch_file = out_dir / "swebench" / "patches" / f"{r.run_id}.diff"
            if patch_file.is_file():
                by_attempt.setdefault(r.attempt, []).append(self.prediction(r.task_id, patch_file.read_text()))
        files = {}
        for attempt, rows in sorted(by_attempt.items()):
            name = "preds.jsonl" if attempt == 0 else f"preds.a{attempt}.jsonl"
            atomic_write_text(out_dir / name, "".join(json.dumps(row) + "\n" for row in rows))
            files[name] = name
        return files
