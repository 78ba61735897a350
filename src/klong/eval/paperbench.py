"""PaperBench as a `Benchmark`: its own data folder in, its per-paper grades and run-group layout out.

Data: PaperBench's `data/` folder, `DIR/papers/<id>/` each with `paper.md` (or only `paper.pdf`: converted with
klong's PDF reader), `addendum.md`, `blacklist.txt`, `config.yaml`, `rubric.json` and optionally `assets/` (copied
into the workspace's `paper/assets/`, with `paper.pdf`). Splits as PaperBench names them, one id per line in
`experiments/splits/<name>.txt` beside the data folder (PaperBench's repository layout), else `DIR/splits/<name>.txt`;
`test` is `all` (PaperBench's 20 evaluation papers; the `dev` ones are not among them) less any `dev` paper when
there is no `test.txt`; a path to a file of ids works too.

Each attempt: the agent's run (KLong's scaffold, 12 h by default, as the paper evaluates), then, for the full
benchmark, `reproduce.sh` in a fresh copy of the submission in a fresh sandbox (`submission.reproduced/`, with
`reproduce.log`; PaperBench's own limit, 100 h, by default), then the judge (klong's SimpleJudge, PaperBench's
judge: leaf prompts, file selection, weighted tree) into `grades/<run>.json` (PaperBench's judge output). Code-Dev
grades the Code Development leaves only and skips the reproduction. `finalize` exports the run as PaperBench's run
group (`paperbench/runs/<group>/<paper>_<uuid>/grade.json`, ...) and its direct-submission folder
(`paperbench/submissions/`), so PaperBench's own code can read or grade the runs again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from klong.eval.benchmark import Reference, TaskResult
from klong.exceptions import ConfigError, InputFileError, KlongError
from klong.judge.batch import blacklist_violation
from klong.judge.grade import grade_submission, write_grade
from klong.rollout.runner import RunSummary
from klong.sandbox import SandboxConfig
from klong.task import CONFIG_FILE, PAPER_FILE, RUBRIC_FILE, Task, read_task

SPLITS = ("dev", "test", "all", "lite", "debug", "human", "testing")
TIME_LIMIT = 12 * 3600.0
"""The KLong paper's evaluation limit (12 h)."""
REPRODUCE_TIMEOUT = 100 * 3600.0
"""PaperBench's own reproduction limit (`ReproductionConfig.timeout`)."""
KLONG = "KLong paper (arXiv 2602.17547), PaperBench"
REFERENCES = [
    Reference(label="KLong 106B, basic SFT", value=0.3863, source=KLONG, setting="full"),
    Reference(label="KLong 106B, trajectory-splitting SFT", value=0.5592, source=KLONG, setting="full"),
    Reference(label="KLong 106B, + RL stage 1", value=0.5729, source=KLONG, setting="full"),
    Reference(label="KLong 106B, + RL stage 2", value=0.5865, source=KLONG, setting="full"),
    Reference(label="KLong 106B, + RL stage 3", value=0.6259, source=KLONG, setting="full"),
]

CODE_DEV_TEMPLATE = """Your task is to replicate the research paper in `paper/` ({title}) as code. Paths are relative
to your workspace, the working directory of your commands.

- `paper/paper.md` is the paper and `paper/addendum.md` holds clarifications from the authors; read them with the
  `read_paper` tool (you must read every page before doing anything else).
- Put your implementation in `submission/`, with a `reproduce.sh` that would run it. Only the code is graded (whether
  it correctly implements the paper's method and experiments); it is not run, so spend your time on the code.
- Do not fetch the resources listed in `paper/blacklist.txt` (such as the authors' own code) by any means.
- You have {time_limit} in total. The time left is shown to you as you go.
"""


def _read_ids(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputFileError(path, f"cannot read the split: {e.strerror or e}") from None
    return [s.strip() for s in lines if s.strip() and not s.strip().startswith("#")]


def split_ids(data: Path, split: str) -> list[str]:
    """The paper ids of a split name (see the module doc) or of a file of ids."""
    if split not in SPLITS:
        path = Path(split)
        if not path.is_file():
            raise ConfigError(f"--split {split!r}: not a split name ({', '.join(SPLITS)}) nor a file of paper ids")
        return _read_ids(path)
    folders = [data.parent / "experiments" / "splits", data / "splits"]
    for folder in folders:
        if (folder / f"{split}.txt").is_file():
            return _read_ids(folder / f"{split}.txt")
        if split == "test" and (folder / "all.txt").is_file():
            dev = set(_read_ids(folder / "dev.txt")) if (folder / "dev.txt").is_file() else set()
            return [i for i in _read_ids(folder / "all.txt") if i not in dev]
    raise ConfigError(f"--split {split}: no {split}.txt in {' or '.join(str(f) for f in folders)}; pass a file of ids")


def _papers_dir(data: Path) -> Path:
    if (data / "papers").is_dir():
        return data / "papers"
    raise InputFileError(data, "--data: not PaperBench's data folder (no papers/ in it)")


def read_paper(folder: Path) -> Task:
    """A PaperBench paper folder as a klong task; a paper given only as `paper.pdf` is converted to markdown."""
    if not (folder / CONFIG_FILE).is_file() or not (folder / RUBRIC_FILE).is_file():
        raise InputFileError(folder, "not a PaperBench paper folder (config.yaml and rubric.json needed)")
    if (folder / PAPER_FILE).is_file():
        return read_task(folder)
    if not (folder / "paper.pdf").is_file():
        raise InputFileError(folder / PAPER_FILE, "missing (and no paper.pdf to read instead)")

    from klong.factory.pdf2md import pdf_to_markdown

    return read_task(folder, paper=pdf_to_markdown(folder / "paper.pdf").markdown)


class PaperBench:
    name = "paperbench"
    metric = "score"

    def __init__(self, data: Path, split: str, *, judge: Any, sandbox: str, code_dev: bool = False,
                 reproduce_timeout: float = REPRODUCE_TIMEOUT, cache: Any = None, judge_concurrency: int = 8,
                 ids: list[str] | None = None) -> None:  # fmt: skip
        self.data = Path(data)
        self.split = split
        self.judge = judge
        self.sandbox = sandbox
        self.code_dev = code_dev
        self.setting = "code-dev" if code_dev else "full"
        self.reproduce_timeout = reproduce_timeout
        self.cache = cache
        self.judge_concurrency = judge_concurrency
        self.references = REFERENCES
        self._ids = ids
        self._tasks: list[Task] | None = None
        self._sandbox = SandboxConfig()

    def setup(self, config: Any) -> None:
        """The reproduction's sandbox is the agent's (its env, network, limits), with the whole output kept."""
        self._sandbox = config.sandbox.model_copy(update={"output_head_bytes": 1_000_000,
                                                          "output_tail_bytes": 1_000_000})  # fmt: skip

    def tasks(self) -> list[Task]:
        if self._tasks is None:
            papers = _papers_dir(self.data)
            ids = self._ids or split_ids(self.data, self.split)
            missing = [i for i in ids if not (papers / i).is_dir()]
            if missing:
                raise InputFileError(papers, f"split {self.split}: no folder for {', '.join(missing)}")
            self._tasks = [read_paper(papers / i) for i in ids]
        return self._tasks

    def agent_defaults(self) -> dict[str, Any]:
        return {"time_limit": TIME_LIMIT, **({"task_template": CODE_DEV_TEMPLATE} if self.code_dev else {})}

    async def prepare(self, task: Task, workspace: Path) -> None:
        import shutil

        paper = workspace / "paper"
        paper.mkdir(parents=True, exist_ok=True)
        src = task.path
        if src is not None and (src / "assets").is_dir():
            shutil.copytree(src / "assets", paper / "assets", symlinks=False)
        if src is not None and (src / "paper.pdf").is_file():
            shutil.copy2(src / "paper.pdf", paper / "paper.pdf")

    def sandbox_config(self, task: Task, config: SandboxConfig) -> SandboxConfig:
        return config

    async def grade(self, run: RunSummary, task: Task, out_dir: Path) -> TaskResult:
        from klong.judge.reproduce import reproduce
        from klong.judge.submission import REPRODUCE_SCRIPT

        workspace = out_dir / run.workspace
        submission = workspace / "submission"
        if not submission.is_dir():
            raise KlongError(f"{submission}: the run left no submission folder")
        metrics: dict[str, Any] = {}
        graded = submission
        if not self.code_dev:
            metrics["reproduced"] = False
            if (submission / REPRODUCE_SCRIPT).is_file():
                hidden = [str(task.path.resolve())] if task.path else []
                config = self._sandbox.model_copy(update={"hide_paths": [*self._sandbox.hide_paths, *hidden]})
                info = await reproduce(submission, workspace / "submission.reproduced", sandbox=self.sandbox,
                                       timeout=self.reproduce_timeout, config=config, overwrite=True)  # fmt: skip
                graded = workspace / "submission.reproduced"
                metrics.update(reproduced=True, reproduce_exit=info.exit_code, reproduce_seconds=info.duration,
                               reproduce_timed_out=info.timed_out)  # fmt: skip
        disqualified = blacklist_violation(out_dir / run.trajectory)
        grade = await grade_submission(graded, task, self.judge, code_only_=self.code_dev, cache=self.cache,
                                       concurrency=self.judge_concurrency, disqualified=disqualified)  # fmt: skip
        grade["klong"]["run_id"] = run.run_id
        grade_file = out_dir / "grades" / f"{run.run_id}.json"
        grade_file.parent.mkdir(parents=True, exist_ok=True)
        write_grade(grade_file, grade)
        metrics.update(leaves=grade["num_leaf_nodes"], invalid_leaves=grade["num_invalid_leaf_nodes"],
                       disqualified=disqualified is not None)  # fmt: skip
        return TaskResult(run_id=run.run_id, task_id=run.task_id, attempt=run.attempt, score=grade["score"],
                          metrics=metrics, grader=f"klong SimpleJudge ({self.judge.name}; PaperBench's judge)",
                          official=False, files={"grade": str(grade_file.relative_to(out_dir))})  # fmt: skip

    async def close(self) -> None:
        model = getattr(self.judge, "model", None)
        if (close := getattr(model, "close", None)) is not None:
            await close()

    def finalize(self, out_dir: Path, results: list[TaskResult]) -> dict[str, str]:
        from klong.export.paperbench import export_paperbench

        if not results:
            return {}
        manifest = export_paperbench(out_dir, out_dir / "paperbench")
        return {"run_group": f"paperbench/runs/{manifest['run_group_id']}",
                "direct_submissions": "paperbench/submissions", "manifest": "paperbench/klong-export.json"}  # fmt: skip
