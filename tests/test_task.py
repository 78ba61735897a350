import pytest

from klong.exceptions import InputFileError
from klong.io import read_json
from klong.task import Task, parse_blacklist, read_task, write_task
from tests.shared import shared_path


def test_write_and_read_task(tmp_path):
    rubric = read_json(shared_path("paperbench", "fixtures", "rubrics", "hex_flags.json"))
    task = Task(
        id="hex",
        title="Hex flags",
        paper="# Paper\n",
        addendum="Use Python.",
        blacklist=["https://github.com/x/y"],
        config={"extra": 1},
        rubric=rubric,
    )
    write_task(tmp_path / "hex", task)
    assert sorted(p.name for p in (tmp_path / "hex").iterdir()) == [
        "addendum.md",
        "blacklist.txt",
        "config.yaml",
        "paper.md",
        "rubric.json",
    ]
    back = read_task(tmp_path / "hex")
    assert back.model_dump(exclude={"path", "config"}) == task.model_dump(exclude={"path", "config"})
    assert back.config == {"extra": 1, "id": "hex", "title": "Hex flags"}


def test_paperbench_blacklists_parse():
    papers = shared_path("paperbench", "papers")
    for paper in sorted(papers.iterdir()):
        text = (paper / "blacklist.txt").read_text()
        entries = parse_blacklist(text)
        raw = [line.strip() for line in text.splitlines() if line.strip()]
        assert entries == ([] if raw == ["none"] else raw)


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(InputFileError, match="task dir not found"):
        read_task(tmp_path / "nope")
    d = tmp_path / "t"
    d.mkdir()
    (d / "config.yaml").write_text("title: no id\n")
    with pytest.raises(InputFileError, match=r"config.yaml: missing the task `id`"):
        read_task(d)
    (d / "config.yaml").write_text("id: t\n")
    with pytest.raises(InputFileError, match=r"rubric.json: file not found"):
        read_task(d)
    (d / "rubric.json").write_text("[]")
    with pytest.raises(InputFileError, match=r"rubric.json: expected a JSON object"):
        read_task(d)
    (d / "rubric.json").write_text('{"id": "r"}')
    with pytest.raises(InputFileError, match=r"paper.md: file not found"):
        read_task(d)
