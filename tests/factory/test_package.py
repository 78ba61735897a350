import json

from typer.testing import CliRunner

from klong.cli import app
from klong.factory.layout import papers_path, read_papers
from klong.factory.package import PackageConfig, split_of
from klong.task import find_tasks, read_task
from tests.factory.tiny_factory import REPO_URL, make_factory, tiny_record

runner = CliRunner()


def _run(tmp_path, *args):
    result = runner.invoke(app, ["factory", *args, "--dir", str(tmp_path), "-c", "draft.min_leaves=40",
                                 "-c", "check.gates.min_leaves=20"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output


def test_draft_check_package_cli_makes_paperbench_task_dirs(tmp_path):
    make_factory(tmp_path, [tiny_record(tmp_path, f"paper-{i}") for i in range(2)])
    _run(tmp_path, "draft", "--model", "fake")
    _run(tmp_path, "check")
    out = _run(tmp_path, "package")
    assert "DATASET_CARD.md" in out
    records = read_papers(papers_path(tmp_path, "package"))
    assert all(r.active and r.files["task_dir"] == f"package/papers/{r.slug}" for r in records)
    task_dir = tmp_path / "package" / "papers" / "paper-0"
    assert sorted(p.name for p in task_dir.iterdir()) == [
        "addendum.md",
        "blacklist.txt",
        "config.yaml",
        "paper.md",
        "rubric.json",
    ]
    task = read_task(task_dir)
    assert task.id == "paper-0" and task.blacklist == [REPO_URL] and "GateNorm" in task.paper
    assert len(find_tasks([tmp_path / "package" / "papers"])) == 2
    validate = runner.invoke(app, ["rubric", "validate", str(task_dir / "rubric.json")])
    assert validate.exit_code == 0 and "valid" in validate.output
    sidecar = tmp_path / "package" / "factory" / "paper-0"
    assert {"record.json", "quality.json", "draft"} <= {p.name for p in sidecar.iterdir()}
    assert (sidecar / "draft" / "steps" / "01_elements.json").exists()
    assert json.loads((sidecar / "record.json").read_text())["files"]["sidecar"] == "package/factory/paper-0"
    # the sidecar never reaches the task dir
    assert "quote" not in (task_dir / "rubric.json").read_text()
    # splits: PaperBench-style id lists, deterministic, covering every task once
    splits = {
        n: (tmp_path / "package" / "splits" / f"{n}.txt").read_text().split() for n in ("all", "train", "val", "test")
    }
    assert sorted(splits["all"]) == ["paper-0", "paper-1"]
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == splits["all"]
    card = (tmp_path / "package" / "DATASET_CARD.md").read_text()
    assert "- tasks packaged: 2" in card and "| Code Development leaves |" in card and "CC-BY-4.0" in card
    assert "| weight-1 nodes |" in card and "| 44% |" in card


def test_splits_are_stable_and_follow_the_shares():
    cfg = PackageConfig(splits={"train": 0.5, "test": 0.5}, seed="s")
    names = [f"paper-{i}" for i in range(400)]
    first = [split_of(n, cfg) for n in names]
    assert first == [split_of(n, cfg) for n in names]
    assert 150 < first.count("train") < 250
    assert [split_of(n, PackageConfig(seed="other", splits={"train": 0.5, "test": 0.5})) for n in names] != first


def test_dropped_papers_are_listed_in_the_card(tmp_path):
    make_factory(tmp_path, [tiny_record(tmp_path, "a")])
    _run(tmp_path, "draft", "--model", "fake")
    runner.invoke(app, ["factory", "check", "--dir", str(tmp_path), "-c", "check.gates.min_leaves=999"])
    _run(tmp_path, "package")
    card = (tmp_path / "package" / "DATASET_CARD.md").read_text()
    assert "- tasks packaged: 0" in card and "- dropped at check: 1" in card and "leaf-count" in card
