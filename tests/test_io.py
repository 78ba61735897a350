import json
import os
import subprocess
import sys

import pytest

from klong.exceptions import InputFileError
from klong.io import atomic_write_json, atomic_write_text, iter_jsonl, read_json, read_yaml


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"ok": True})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"ok": True}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "file is empty"),
        ('{"a": [1, 2', "looks truncated"),
        ('{"a": 1,, "b": 2}', "invalid JSON at line 1 column 9"),
        ('{"a": 1}\n{"b": 2}', "invalid JSON at line 2 column 1"),
    ],
)
def test_read_json_errors_name_file_and_problem(tmp_path, text, expected):
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(InputFileError) as err:
        read_json(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_read_json_missing_and_binary(tmp_path):
    with pytest.raises(InputFileError, match="file not found"):
        read_json(tmp_path / "nope.json")
    binary = tmp_path / "bin.json"
    binary.write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(InputFileError, match="not UTF-8"):
        read_json(binary)


def test_jsonl_truncated_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n{"c": ')
    with pytest.raises(InputFileError, match=r"line 3: .*truncated"):
        list(iter_jsonl(path))
    path.write_text('{"a": 1}\n\n{"b": 2}\n')
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"b": 2})]


def test_yaml_error_has_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    with pytest.raises(InputFileError, match=r"c.yaml: invalid YAML at line \d+"):
        read_yaml(path)


def test_sigkill_during_writes_never_leaves_partial_file(tmp_path):
    """A writer killed with SIGKILL at arbitrary moments leaves the last complete version, never a partial one."""
    target = tmp_path / "t.json"
    atomic_write_text(target, json.dumps({"n": -1, "pad": ""}))
    script = (
        "import sys, json\n"
        "from klong.io import atomic_write_text\n"
        "n = 0\n"
        "while True:\n"
        "    atomic_write_text(sys.argv[1], json.dumps({'n': n, 'pad': 'x' * 200000}))\n"
        "    n += 1\n"
    )
    for delay in (0.3, 0.45, 0.6):
        proc = subprocess.Popen([sys.executable, "-c", script, str(target)])
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait()
        data = read_json(target)  # must always parse
        assert set(data) == {"n", "pad"}
    leftovers = [p for p in tmp_path.iterdir() if p.name != "t.json"]
    # a temp file may remain from the killed writer, but the target itself is always whole
    assert all(p.name.startswith(".t.json.") for p in leftovers)
