"""Research-Factory end to end, offline: a shipped paper with a tiny "official" repository goes through every stage
(`collect -> ... -> package`), the packaged task is solved by scripted teachers through `klong run`, graded through the
openai backend by a judge served on 127.0.0.1 (the same deterministic server answers the drafting steps), and
`klong select` keeps the good trajectory with reasons for every decision."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from klong.cli import app
from klong.factory.fake_drafter import FakeDrafter
from klong.factory.layout import read_papers
from klong.models.fake_openai import FakeOpenAIServer
from klong.task import read_task

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "factory"
STAGES = ("enrich", "select", "decontam", "fetch", "convert", "blacklist", "draft", "check", "package")


def klong(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"klong {' '.join(map(str, args))}:\n{result.output}"
    return result.output


def _teacher_script(path: Path, files: dict[str, str]) -> Path:
    turns = [{"content": "Reading the paper.", "tool_calls": [{"name": "read_paper", "arguments": {"page": 1}}]}]
    turns += [{"content": f"Writing {name}.", "tool_calls": [{"name": "write_file", "arguments": {"path": f"submission/{name}", "content": text}}]}
              for name, text in files.items()]  # fmt: skip
    turns.append({"content": "Done.", "tool_calls": [{"name": "end_task", "arguments": {"summary": "done"}}]})
    path.write_text(yaml.safe_dump({"turns": turns}))
    return path


def test_papers_in_graded_tasks_and_selected_trajectories_out(tmp_path):
    factory = tmp_path / "factory"
    config = ["-c", str(EXAMPLE / "factory.yaml")]
    with FakeOpenAIServer(FakeDrafter(None), model="fake") as server:
        endpoint = ["--base-url", server.base_url]
        klong("factory", "collect", "--dir", factory, "--local", EXAMPLE, *config)
        for stage in STAGES:
            extra = []
            if stage == "draft":
                extra = ["--model", "openai:fake", *endpoint]
            elif stage == "check":
                extra = ["--judge", "openai:fake", *endpoint]
            klong("factory", stage, "--dir", factory, *config, *extra)
        drafting_calls = len(server.requests)
        assert drafting_calls > 5

        papers = [p for p in read_papers(factory / "package" / "papers.jsonl") if p.active]
        assert [p.slug for p in papers] == ["tiny-paper"]
        task_dir = factory / papers[0].files["task_dir"]
        task = read_task(task_dir)
        assert "github.com" not in task.addendum and "0.05" in task.addendum  # the code's fact, not its address
        assert any("github.com" in entry for entry in task.blacklist)
        klong("rubric", "validate", task_dir / "rubric.json")
        assert (factory / "package" / "DATASET_CARD.md").read_text().count("tiny-paper") >= 1

        # distillation: a teacher that implements the method, and one that only writes a README
        code = {p.name: p.read_text() for p in sorted((EXAMPLE / "tiny-paper" / "code").glob("*.py"))}
        code["reproduce.sh"] = "#!/bin/bash\npython train.py\n"
        teachers = {"good": _teacher_script(tmp_path / "good.yaml", code),
                    "lazy": _teacher_script(tmp_path / "lazy.yaml", {"README.md": "Work in progress.\n"})}  # fmt: skip
        tasks = factory / "package" / "papers"
        for name, script in teachers.items():
            runs = tmp_path / "runs" / name
            klong("run", tasks, "--model", f"scripted:{script}", "--out", runs, "--time-limit", "1h",
                  "-c", "page_chars=100000")  # fmt: skip
            for traj in sorted((runs / "trajectories").glob("*.json")):
                run_id = traj.stem
                klong("grade", runs / "workspaces" / run_id / "submission", "--task", task_dir, "--judge", "openai:fake",
                      *endpoint, "--code-only", "--no-cache", "--trajectory", traj,
                      "--out", runs / "grades" / f"{run_id}.json")  # fmt: skip
        assert len(server.requests) > drafting_calls  # the judge was asked through the openai backend

    selected = tmp_path / "selected"
    klong("select", tmp_path / "runs" / "good", tmp_path / "runs" / "lazy", "--out", selected, "--threshold", "0.5")
    decisions = [json.loads(line) for line in (selected / "selection.jsonl").read_text().splitlines()]
    assert len(decisions) == 2
    by_teacher = {Path(d["run_dir"]).name: d for d in decisions}
    assert by_teacher["good"]["decision"] == "selected"
    assert by_teacher["lazy"]["decision"] == "rejected" and by_teacher["lazy"]["kind"] == "threshold"
    assert all(d["reason"] for d in decisions)
    assert len(list((selected / "trajectories").glob("*.json"))) == 1
    good = json.loads(next((tmp_path / "runs" / "good" / "grades").glob("*.json")).read_text())
    lazy = json.loads(next((tmp_path / "runs" / "lazy" / "grades").glob("*.json")).read_text())
    assert good["score"] >= 0.5 > lazy["score"]
