"""The windows file (`klong split` output) as others read it: `datasets` loads it with the column names and types
Hugging Face tools expect, its schema metadata says what made it, `klong sft` refuses windows made with another
tokenizer, reads files from before the rename, and the split report says which turns were dropped and why."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from klong import __version__
from klong.chat.context import ContextConfig
from klong.data.split import read_metadata, read_samples, vocab_sha256
from klong.exceptions import ConfigError, InputFileError
from klong.schema import Message, Trajectory, write_trajectory
from klong.train.data import epoch_steps, load_windows, read_windows
from tests.conversations import random_conversation
from tests.data.windows import SPLIT_FLAGS, klong, split_real


@pytest.fixture(scope="module")
def windows_file(tmp_path_factory, qwen_tokenizer_dir):
    return split_real(tmp_path_factory.mktemp("windows"), qwen_tokenizer_dir)


def test_datasets_reads_the_columns_and_pyarrow_the_metadata(
    windows_file, qwen_tokenizer, qwen_tokenizer_dir, tmp_path
):
    import datasets

    path, report = windows_file
    rows = read_samples(path)
    for dataset in (datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path)),
                    datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path))):  # fmt: skip
        assert {"input_ids", "assistant_masks", "trajectory_id", "window", "logprobs"} <= set(dataset.column_names)
        assert "loss_mask" not in dataset.column_names and "labels" not in dataset.column_names
        assert dataset.features["input_ids"] == datasets.List(datasets.Value("int32"))
        assert dataset.features["assistant_masks"] == datasets.List(datasets.Value("int8"))
        assert dataset.features["trajectory_id"] == datasets.Value("string")
        assert dataset["input_ids"] == [r["input_ids"] for r in rows]
        assert dataset["assistant_masks"] == [r["assistant_masks"] for r in rows]
        assert sum(map(sum, dataset["assistant_masks"])) == report["trained_tokens"] > 0

    # what made the file: the schema metadata pyarrow (and anything reading Parquet metadata) sees
    meta = json.loads(pq.read_schema(path).metadata[b"klong"])
    assert meta["format"] == "klong.windows" and meta["format_version"] == 2
    assert meta["klong_version"] == __version__
    tok = meta["tokenizer"]
    assert tok["path"] == str(qwen_tokenizer_dir) and tok["vocab_size"] == len(qwen_tokenizer)
    assert tok["vocab_sha256"] == vocab_sha256(qwen_tokenizer)
    assert tok["files"] == ["merges.txt", "tokenizer_config.json", "vocab.json"] and len(tok["files_sha256"]) == 64
    assert meta["chat_template"]["source"] == "tokenizer" and len(meta["chat_template"]["sha256"]) == 64
    flags = dict(zip(SPLIT_FLAGS[::2], SPLIT_FLAGS[1::2], strict=True))
    expected = ContextConfig(max_context_tokens=int(flags["--max-len"]), overlap_tokens=int(flags["--overlap"]),
                             pin_turns=int(flags["--pin-turns"]), max_prefix_tokens=int(flags["--max-prefix"]))  # fmt: skip
    assert meta["context"]["settings"] == [expected.model_dump(mode="json")]
    assert meta["context"]["overrides"]["max_context_tokens"] == expected.max_context_tokens
    assert meta["inputs"]["trajectories"] == report["trajectories"] == 2 and len(meta["inputs"]["sha256"]) == 64
    assert {"transformers", "tokenizers", "jinja2"} <= set(meta["packages"])
    # the split report in the footer; read_metadata returns both
    assert json.loads(pq.read_metadata(path).metadata[b"klong.report"]) == report
    assert read_metadata(path) == {**meta, "report": report}


def test_a_file_datasets_wrote_back_still_trains(windows_file, tmp_path):
    """`datasets` drops our metadata on the way through, but the file it writes is still training data for klong."""
    import datasets

    path, _ = windows_file
    dataset = datasets.Dataset.from_parquet(str(path), cache_dir=str(tmp_path)).filter(lambda r: r["window"] > 0)
    dataset.to_parquet(str(tmp_path / "subset.parquet"))
    windows = read_windows(tmp_path / "subset.parquet")
    assert [w.input_ids for w in windows] == dataset["input_ids"] and windows[0].loss_mask == dataset[0][
        "assistant_masks"
    ]


def test_files_from_before_the_rename_still_load(windows_file, tmp_path):
    """Files written before `assistant_masks` have `loss_mask`: `klong sft` and `read_samples` read them as they are."""
    path, _ = windows_file
    table = pq.read_table(path)
    old = table.rename_columns(["loss_mask" if c == "assistant_masks" else c for c in table.column_names])
    pq.write_table(old.replace_schema_metadata(None), tmp_path / "old.parquet")
    new, legacy = read_windows(path), load_windows([str(tmp_path / "old.parquet")])
    assert [(w.input_ids, w.loss_mask, w.trajectory_id) for w in legacy] == [
        (w.input_ids, w.loss_mask, w.trajectory_id) for w in new
    ]
    assert read_samples(tmp_path / "old.parquet")[0]["assistant_masks"] == new[0].loss_mask
    assert read_metadata(tmp_path / "old.parquet") == {}

    pq.write_table(pa.table({"input_ids": [[1, 2]], "mask": [[0, 1]]}), tmp_path / "bad.parquet")
    with pytest.raises(InputFileError, match=r"bad\.parquet: missing column\(s\) assistant_masks .*loss_mask"):
        read_windows(tmp_path / "bad.parquet")


def test_sft_refuses_windows_of_another_tokenizer(windows_file, tiny_model_dir, tmp_path):
    from klong.demo.tokenizer import train_tokenizer
    from klong.models.tokenizer import load_tokenizer

    path, _ = windows_file
    # the same tokenizer saved into a model folder (other files, same vocabulary): accepted
    assert len(load_windows([str(path)], load_tokenizer(tiny_model_dir))) == len(read_windows(path))
    other = load_tokenizer(train_tokenizer(["the model reads the paper", "def main(): return 0"], tmp_path / "tok",
                                           vocab_size=300))  # fmt: skip
    with pytest.raises(InputFileError) as err:
        load_windows([str(path)], other)
    message = str(err.value)
    assert message.startswith(f"{path}: made with the tokenizer ") and "re-split with --tokenizer" in message
    assert "\n" not in message
    # same vocabulary, another chat template: trained on one format, prompted with another
    retemplated = load_tokenizer(tiny_model_dir, "{% for m in messages %}{{ m.content }}{% endfor %}")
    with pytest.warns(UserWarning, match="another chat template"):
        load_windows([str(path)], retemplated)


def test_dropped_turns_say_which_and_why(qwen_tokenizer_dir, tmp_path):
    rng = random.Random(0)
    msgs = random_conversation(rng, 8, max_output=200)
    long_turn = next(i for i, m in enumerate(msgs) if m.role == "assistant" and i > 4)
    msgs[long_turn] = Message(role="assistant", content=" ".join(["experiment"] * 1500))
    traj = Trajectory(id="long", messages=msgs)
    write_trajectory(tmp_path / "long.json", traj)
    out = tmp_path / "w.parquet"
    args = ["split", str(tmp_path / "long.json"), "--tokenizer", str(qwen_tokenizer_dir), "--max-len", "1200",
            "--overlap", "200", "--out", str(out)]  # fmt: skip
    result = klong(*args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    turn = sum(m.role == "assistant" for m in msgs[:long_turn])
    assert report["dropped_turns"] == 1
    (dropped,) = report["dropped"]
    assert dropped["trajectory_id"] == "long" and dropped["turn"] == turn and dropped["message"] == long_turn
    assert dropped["generated_tokens"] > 1200 and "longer than the 1200-token window" in dropped["reason"]
    assert json.loads(pq.read_metadata(out).metadata[b"klong.report"])["dropped"] == [dropped]
    table = klong(*args)  # the human-readable report names them too
    assert table.exit_code == 0
    assert f"long: turn {turn}: the turn's generation is longer than the 1200-token window" in table.stderr

    result = klong(*args, "--policy", "truncate", "--json")
    assert result.exit_code == 0, result.output
    truncated = json.loads(result.stdout)["dropped"]
    assert [d["turn"] for d in truncated] == list(range(truncated[0]["turn"], 8))
    assert all(d["reason"].startswith(f"truncate policy: the window is full from turn {truncated[0]['turn']} on")
               for d in truncated)  # fmt: skip


def test_no_window_at_all_says_why(qwen_tokenizer_dir, tmp_path):
    traj = Trajectory(id="big-task", messages=random_conversation(random.Random(1), 3, max_output=100))
    traj.messages[1] = Message(role="user", content=" ".join(["paper"] * 3000))
    write_trajectory(tmp_path / "t.json", traj)
    result = klong("split", str(tmp_path / "t.json"), "--tokenizer", str(qwen_tokenizer_dir), "--max-len", "1000",
                   "--out", str(tmp_path / "w.parquet"))  # fmt: skip
    assert result.exit_code == 2
    assert (
        "big-task: turns 0-2: the task prompt alone" in result.output and "fills the 1000-token window" in result.output
    )
    assert not (tmp_path / "w.parquet").exists()


def test_a_window_longer_than_a_packed_row_says_what_to_change(windows_file):
    path, _ = windows_file
    windows = read_windows(path)
    longest = max(len(w) for w in windows)
    with pytest.raises(
        ConfigError, match=rf"pack_length=100: raise it \(-c pack_length={longest} or more\) or re-split"
    ):
        epoch_steps(sorted(windows, key=len)[::-1], seed=0, epoch=0, pack_length=100, rows_per_step=2, shuffle=False)
