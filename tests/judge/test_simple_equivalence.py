"""SimpleJudge equivalence, row by row (docs/judge.md): PaperBench's file whitelist and result-file selection, paper
and addendum in the ranking call, token budgets measured with the judge's tokenizer, reproduce.sh for Code Development
leaves, dotfiles kept, answers parsed into a non-empty explanation. Every grade goes through a real HTTP server."""

import asyncio
import json
import os
import time

import pytest

from klong.judge.base import JudgeConfig
from klong.judge.grade import grade_submission, make_judge
from klong.judge.parse import parse_file_ranking, parse_grade
from klong.judge.submission import Submission, reduce_log, relative_path
from klong.judge.tokens import EstimateCounter, HFCounter, context_window, make_counter
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from klong.task import Task, read_task, write_task


def _task(tmp_path, leaves, paper="# P\n\nThe paper.\n", addendum="", judge_addendum=None):
    rubric = {"id": "r", "requirements": "paper", "weight": 1, "task_category": None, "finegrained_task_category": None,
              "sub_tasks": [{"id": f"l{i}", "requirements": req, "weight": 1, "sub_tasks": [], "task_category": cat,
                             "finegrained_task_category": None} for i, (cat, req) in enumerate(leaves)]}  # fmt: skip
    path = write_task(tmp_path / "task", Task(id="t", paper=paper, addendum=addendum, rubric=rubric))
    if judge_addendum is not None:
        (path / "judge.addendum.md").write_text(judge_addendum)
    return read_task(path)


def _write(root, files, mtime=None):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if mtime is not None:
            os.utime(p, (mtime, mtime))


class Recorder:
    """A judge server: ranks with `ranking`, answers `Score: 1`, keeps every prompt by kind."""

    def __init__(self, ranking=None):
        self.ranking = ranking
        self.rank_prompts, self.grade_prompts, self.systems = [], [], []

    def __call__(self, body):
        system, prompt = body["messages"][0]["content"], body["messages"][-1]["content"]
        if "List the files most useful" in prompt:
            self.rank_prompts.append(prompt)
            return {"content": self.ranking or ""}
        self.grade_prompts.append(prompt)
        self.systems.append(system)
        return {"content": "# Expectations\nx\n# Reality\ny\n# Score\nThe criterion is met.\nScore: 1"}


def _grade(server, task, sub, config=None, **kw):
    judge = make_judge("openai:gpt-4o", ModelConfig(base_url=server.base_url, max_retries=1, temperature=0.0), config)
    return asyncio.run(grade_submission(sub, task, judge, **kw)), judge


def test_paperbench_whitelist_per_category(tmp_path):
    sub = tmp_path / "sub"
    before = time.time() - 100
    _write(sub, {"model.py": "m", "train.sh": "t", ".hydra/config.yaml": "lr: 1", "README.md": "r", "notes.txt": "n",
                 "fig.png": "p", "stale.csv": "a,b", "Results.JSON": "{}", ".env": "KEY=1", "venv/lib/x.py": "v",
                 "my_venv/x.py": "v", "wandb/run/log.txt": "w", "pkg.egg-info/PKG-INFO.txt": "e",
                 ".github/workflows/ci.yml": "c", "node_modules/a.js": "j", "a/b/c/d/ok.py": "4 folders deep",
                 "a/b/c/d/e/deep.py": "5 folders deep", "reproduce.sh": "s"}, mtime=before)  # fmt: skip
    # a reproduction as PaperBench records it: reproduce.log and its creation time (Unix seconds)
    started = int(time.time()) - 10
    _write(sub, {"reproduce.log": "ran", "reproduce.log.creation_time": str(started), "out/new.csv": "1,2",
                 "out/new.png": "img", "out/new.py": "generated code"})  # fmt: skip
    s = Submission(sub)
    assert s.reproduced_at == started

    def paths(category, **kw):
        return {f.path for f in s.whitelisted(category, **kw)}

    code = {"model.py", "train.sh", ".hydra/config.yaml", "README.md", "notes.txt", "a/b/c/d/ok.py",
            "a/b/c/d/e/deep.py", "reproduce.sh", "out/new.py"}  # fmt: skip
    assert paths("Code Development") == paths("Code Execution") == code
    assert paths("Code Development", max_depth=4) == code - {"a/b/c/d/e/deep.py"}
    # result leaves: docs always, tables only when the reproduction wrote them
    assert paths("Result Analysis") == {"README.md", "notes.txt", "out/new.csv"}
    assert s.reproduction_touched(s.whitelisted("Result Analysis"))
    assert {"fig.png", ".env", "Results.JSON"} <= paths("Code Development", whitelist=False)


def test_ranking_answers_keep_dotfiles_and_full_paths():
    candidates = [".hydra/config.yaml", "src/model.py", "README.md", "1.txt"]
    answer = "./.hydra/config.yaml\n- src/model.py\n2. README.md\n1.txt\nunknown.py\n/src/model.py"
    assert parse_file_ranking(answer, candidates) == [".hydra/config.yaml", "src/model.py", "README.md", "1.txt"]
    assert parse_file_ranking('{"files": ["./.hydra/config.yaml"]}', candidates) == [".hydra/config.yaml"]
    assert relative_path("  ./.hydra/config.yaml ") == ".hydra/config.yaml"
    assert relative_path("..hidden/x") == "..hidden/x"


def test_dotfolder_files_reach_the_judge(tmp_path):
    task = _task(tmp_path, [("Code Development", "the config sets lr 0.1")])
    sub = tmp_path / "sub"
    _write(sub, {".hydra/config.yaml": "lr: 0.1\n", "model.py": "pass\n"})
    recorder = Recorder(ranking="./.hydra/config.yaml\nmodel.py")
    with FakeOpenAIServer(recorder) as server:
        result, _ = _grade(server, task, sub)
    assert "├── .hydra\n│   └── config.yaml\n└── model.py" in recorder.rank_prompts[0]
    prompt = recorder.grade_prompts[0]
    assert prompt.index("## File: .hydra/config.yaml\n```\nlr: 0.1") < prompt.index("## File: model.py")
    assert result["graded_task_tree"]["sub_tasks"][0]["judge_metadata"]["klong"]["files_shown"] == [
        ".hydra/config.yaml", "model.py"]  # fmt: skip


def test_ranking_call_sees_paper_and_addendum(tmp_path):
    task = _task(tmp_path, [("Code Development", "model.py defines the model")], paper="# The FRE paper\n\nBody.\n",
                 addendum="Use 3 seeds.", judge_addendum="Grade leniently on plots.")  # fmt: skip
    sub = tmp_path / "sub"
    _write(sub, {"model.py": "class M: ...\n", "util.py": "x = 1\n"})
    recorder = Recorder(ranking="model.py")
    with FakeOpenAIServer(recorder) as server:
        _grade(server, task, sub)
    rank = recorder.rank_prompts[0]
    assert "<paper>\n# The FRE paper" in rank and "Use 3 seeds.\nGrade leniently on plots." in rank
    assert "<criterion>\nmodel.py defines the model\n</criterion>" in rank
    assert "Use 3 seeds.\nGrade leniently on plots." in recorder.grade_prompts[0]


def test_reproduce_sh_for_code_development_and_none_for_code_only(tmp_path):
    task = _task(tmp_path, [("Code Development", "the model is implemented")])
    sub = tmp_path / "sub"
    _write(sub, {"model.py": "class M: ...\n", "reproduce.sh": "python model.py\n"})
    recorder = Recorder(ranking="model.py")
    with FakeOpenAIServer(recorder) as server:
        _grade(server, task, sub)
        _grade(server, task, sub, code_only_=True)
    full, code_only = recorder.grade_prompts
    assert "# reproduce.sh\n```\npython model.py\n" in full and "reproduce.log" not in full
    assert "# reproduce.sh" not in code_only
    assert "reproduce.sh" in recorder.systems[0] and "reproduce.sh" not in recorder.systems[1]


def test_result_leaves_without_reproduced_files_score_zero_without_a_call(tmp_path):
    task = _task(tmp_path, [("Result Analysis", "accuracy is 0.9"), ("Code Execution", "training ran")])
    sub = tmp_path / "sub"
    _write(sub, {"README.md": "accuracy 0.9\n", "reproduce.sh": "echo accuracy 0.9\n"}, mtime=time.time() - 100)
    _write(sub, {"reproduce.log": "accuracy 0.9\n", "reproduce.log.creation_time": str(int(time.time()) - 10)})
    recorder = Recorder()
    with FakeOpenAIServer(recorder) as server:
        result, _ = _grade(server, task, sub)
    ra, ce = result["graded_task_tree"]["sub_tasks"]
    assert ra["score"] == 0.0 and ra["valid_score"] and ra["explanation"].startswith("Reproduce.sh did not touch")
    assert ce["score"] == 1.0 and len(recorder.grade_prompts) == 1
    assert "# reproduce.log\n```\naccuracy 0.9\n```" in recorder.grade_prompts[0]


def _between(text, start, end):
    i = text.index(start) + len(start)
    return text[i : text.index(end, i)]


def test_budgets_in_tokens_of_the_judges_tokenizer(tmp_path, qwen_tokenizer_dir):
    """Paper and log measured in tokens; the log cut to half the context; the files' budget is the context minus
    the paper (minus the log for execution leaves) minus the buffer, minus 2,000 tokens; the last file is cut on a
    line boundary."""
    counter = HFCounter(str(qwen_tokenizer_dir))
    paper = "# Paper\n\n" + "The method trains a network on the data and reports accuracy. " * 150
    task = _task(tmp_path, [("Code Development", "train.py trains"), ("Code Execution", "training ran")], paper=paper)
    sub = tmp_path / "sub"
    big = "".join(f"def step_{i}(x):\n    return x * {i} + {i * 7}\n" for i in range(3000))
    _write(sub, {"train.py": big, "reproduce.sh": "python train.py\n"}, mtime=time.time() - 100)
    log = "".join(
        f"epoch {i}: loss {1 / (i + 1):.6f}, accuracy {i % 97}, lr {0.1 / (i + 1):.2e}\n" for i in range(6000)
    )
    _write(sub, {"reproduce.log": log})
    config = JudgeConfig(context_tokens=40_000, buffer_tokens=1000, tokenizer=str(qwen_tokenizer_dir),
                         reduce_log=False)  # fmt: skip
    recorder = Recorder(ranking="train.py")
    with FakeOpenAIServer(recorder) as server:
        result, judge = _grade(server, task, sub, config)
    assert judge.counter.name.startswith("hf:") and result["klong"]["judge"]["counter"].startswith("hf:")
    # the two leaves are graded concurrently: tell their prompts apart by the criterion (the execution leaf's comes
    # second, so only its prompt names it)
    (ce,) = [p for p in recorder.grade_prompts if "training ran" in p]
    (cd,) = [p for p in recorder.grade_prompts if p is not ce]
    paper_tokens = counter.count(paper)
    shown_log = _between(ce, "# reproduce.log\n```\n", "\n```")
    assert counter.count(log) > 20_000 and 19_900 <= counter.count(shown_log) <= 20_000  # half the context
    assert log.startswith(shown_log[:-50])  # the head is kept
    cd_files = _between(cd, "<files>\n", "\n</files>")
    cd_budget = 40_000 - paper_tokens - 1000 - 2000
    assert cd_budget - 100 <= counter.count(cd_files) <= cd_budget
    assert cd_files.endswith("\n```")
    last_line = cd_files[: -len("\n```")].rsplit("\n", 1)[-1]
    assert last_line in big.splitlines()  # cut on a line boundary
    ce_budget = 40_000 - paper_tokens - counter.count(shown_log) - 1000 - 2000
    assert ce_budget - 100 <= counter.count(_between(ce, "<files>\n", "\n</files>")) <= ce_budget + 5


def test_counters():
    assert context_window("gpt-4o-2024-08-06") == 128_000 and context_window("gpt-4.1") == 1_047_576
    assert context_window("Qwen/Qwen3-8B") is None
    estimate = EstimateCounter(3.5)
    assert estimate.count("x" * 35) == 10 and estimate.head("x" * 100, 10) == "x" * 35 and estimate.head("abc", 0) == ""
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        assert make_counter("auto", "gpt-4o", None, 3.5).name == "estimate:3.5"


def test_reduce_log_collapses_repeated_lines():
    log = "start\n" + "".join(f"step {i} loss {1 / (i + 1):.4f}\n" for i in range(500)) + "done\n"
    reduced = reduce_log(log).splitlines()
    assert reduced[:2] == ["start", "step 0 loss 1.0000"] and reduced[-2:] == ["  (repeated 500 times)", "done"]


@pytest.mark.parametrize(
    ("answer", "score", "explanation"),
    [
        ('{"expectations": "E", "reality": "R", "score": 1}', 1.0, "Expectations: E\nReality: R"),
        ('{"Expectations": "E", "Reality": "R", "Score": 0}', 0.0, "Expectations: E\nReality: R"),
        ('{"score": 1, "explanation": "the code is there"}', 1.0, "Explanation: the code is there"),
        ('The file implements it.\n{"score": 1}', 1.0, "The file implements it."),
        ('{"expectations": "", "reality": "", "score": 1}', 1.0, '{"expectations": "", "reality": "", "score": 1}'),
        ("# Expectations\nA\n# Reality\nB\n# Score\nMet.\n\n1", 1.0, "# Reality\nB\n# Score\nMet.\n\n1"),
        ("## Expectations\nA\n## Reality\nB\n## Score\n**Score: 0**", 0.0, "## Reality\nB\n## Score\n**Score: 0**"),
        ("**Expectations**: A\n**Reality**: B\n**Score**: 1", 1.0, "**Reality**: B\n**Score**: 1"),
        ("Looks fine to me.", None, "Looks fine to me."),
    ],
)  # fmt: skip
def test_answers_give_a_score_and_a_nonempty_explanation(answer, score, explanation):
    parsed = parse_grade(answer)
    assert parsed.score == score and parsed.explanation == explanation


def test_reparse_step_reads_a_free_form_answer(tmp_path):
    task = _task(tmp_path, [("Code Development", "it is implemented")])
    sub = tmp_path / "sub"
    _write(sub, {"model.py": "pass\n"})

    def replies(body):
        prompt = body["messages"][-1]["content"]
        if "<answer>" in prompt:
            assert "I would say it passes" in prompt
            return {"content": json.dumps({"valid_score": True, "score": 1, "explanation": "passes"})}
        return {"content": "I would say it passes."}

    with FakeOpenAIServer(replies) as server:
        result, _ = _grade(server, task, sub)
    leaf = result["graded_task_tree"]["sub_tasks"][0]
    assert leaf["score"] == 1.0 and leaf["valid_score"] and leaf["explanation"] == "Explanation: passes"
    assert leaf["judge_metadata"]["full_judge_response"] == "I would say it passes."
    assert leaf["judge_metadata"]["klong"] == {"calls": 2, "files_shown": ["model.py"], "parsed_by": "reparse"}
