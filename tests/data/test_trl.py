"""TRL reads `klong split` output as it is: its own `SFTTrainer`, given the Parquet file through `datasets` with no
option but `max_length`, puts loss on exactly the tokens klong trains, and computes the same loss.

Tier `trl`: skipped (saying so) where TRL is not installed. With the mask column named `loss_mask` (as before) TRL
trains every token and these tests fail.
"""

from __future__ import annotations

import itertools

import pytest

from tests.data.windows import split_real

pytestmark = [
    pytest.mark.trl,
    # TRL's own SFTConfig default, deprecated by transformers 5: not ours to fix
    pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning"),
]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """TRL's trainer makes an `Accelerator`, whose settings are process-wide: they must not reach later tests (a
    later `Accelerator` with other settings is refused, or silently inherits them)."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(scope="module")
def windows_file(tmp_path_factory, qwen_tokenizer_dir):
    return split_real(tmp_path_factory.mktemp("trl"), qwen_tokenizer_dir)


def _segments(batch):
    """(row, start, end) of every sequence in a collated batch: padded rows, or packed rows whose position ids restart
    at every sequence."""
    ids = batch["input_ids"]
    if "position_ids" in batch:
        out = []
        for b in range(ids.shape[0]):
            starts = [*(batch["position_ids"][b] == 0).nonzero().flatten().tolist(), ids.shape[1]]
            out += [(b, a, z) for a, z in itertools.pairwise(starts)]
        return out
    return [(b, 0, int(batch["attention_mask"][b].sum())) for b in range(ids.shape[0])]


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_trl_trains_exactly_klongs_tokens(windows_file, tiny_model_dir, tmp_path, packing):
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from klong.train.common import row_tensors
    from klong.train.data import pack, read_windows
    from klong.train.loss import TokenLoss

    path, report = windows_file
    dataset = load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    longest = max(dataset["num_tokens"])
    # what docs/sft.md tells users: nothing but a max_length that truncates no window (TRL's default is 1024)
    args = SFTConfig(output_dir=str(tmp_path / "trl"), report_to="none", use_cpu=True, per_device_train_batch_size=1 if packing else 2,
                     max_length=2 * longest if packing else None, packing=packing)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset,
                         processing_class=AutoTokenizer.from_pretrained(tiny_model_dir))  # fmt: skip

    klong_windows = {tuple(w.input_ids): w for w in read_windows(path)}
    token_loss = TokenLoss(trainer.model, impl="full")
    trainer.model.eval()
    seen, trained, loss_checked, most_per_row = [], 0, False, 0
    for batch in trainer.get_train_dataloader():
        ids, labels = batch["input_ids"], batch["labels"]
        klong_sum, klong_count = 0.0, 0
        segments = _segments(batch)
        most_per_row = max(most_per_row, len(segments))
        for b, a, z in segments:
            w = klong_windows[tuple(ids[b, a:z].tolist())]
            # the model predicts labels[j] from position j - 1 (transformers shifts): the loss is on every j >= 1
            # whose label is not -100, and there the label is the token
            trl_targets = {j for j in range(1, z - a) if labels[b, a + j] != -100}
            row = pack([w], len(w), {(w.trajectory_id, w.window): 1.0})[0]  # klong's own training row
            assert trl_targets == {p + 1 for p in row.loss_positions}, f"window {w.trajectory_id}#{w.window}"
            assert [int(labels[b, a + j]) for j in sorted(trl_targets)] == row.targets
            if packing:  # no loss on a window's first token, which the packed row would predict from another window
                assert int(labels[b, a]) == -100
            seen.append((w.trajectory_id, w.window))
            trained += len(trl_targets)
            if not loss_checked:
                t = row_tensors(row, "cpu")
                with torch.no_grad():
                    loss_sum, _ = token_loss(t["input_ids"], t["position_ids"], t["positions"], t["targets"],
                                             weights=t["weights"], need_logprobs=False)  # fmt: skip
                klong_sum += float(loss_sum)
                klong_count += len(row.targets)
        if not loss_checked:  # TRL's loss on its batch = klong's loss on the same windows (fp32)
            with torch.no_grad():
                trl_loss = float(trainer.compute_loss(trainer.model, batch))
            assert trl_loss == pytest.approx(klong_sum / klong_count, rel=1e-5)
            loss_checked = True
    assert sorted(seen) == sorted((w.trajectory_id, w.window) for w in klong_windows.values())  # each window once
    assert loss_checked and most_per_row >= (2 if packing else 1)
    assert trained == report["trained_tokens"] < sum(dataset["num_tokens"]) // 5
