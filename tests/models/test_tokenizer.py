"""`load_tokenizer`: the folder's tokenizer.json decides how text is split, also inside a model folder."""

from __future__ import annotations

import pytest

from klong.demo.tokenizer import train_tokenizer
from klong.exceptions import InputFileError
from klong.models.tiny import TinyModelConfig, build_tiny_model
from klong.models.tokenizer import load_tokenizer

CORPUS = ["python3 tools/run_exp.py --exp 4 --seed 43", "final metric 0.82", "The seeds of the runs: 17, 21, 35."] * 20


def test_a_custom_tokenizer_saved_in_a_qwen2_model_folder_splits_text_as_it_was_trained(tmp_path):
    # transformers >= 5 loads a qwen2 model folder's tokenizer as Qwen2Tokenizer, whose own pre-tokenizer would
    # split numbers into digits; the training data was made with the tokenizer as trained.
    tok_dir = train_tokenizer(CORPUS, tmp_path / "tok", vocab_size=300)  # keeps numbers whole, unlike Qwen2's
    model_dir = build_tiny_model(tmp_path / "model", tok_dir, TinyModelConfig(hidden_size=32, intermediate_size=64))
    original = load_tokenizer(tok_dir)
    in_model = load_tokenizer(model_dir)
    text = "--exp 4 --seed 43 final metric 0.82"
    assert in_model.tokenize(text) == original.tokenize(text)
    pieces = in_model.backend_tokenizer.pre_tokenizer.pre_tokenize_str(text)
    assert "0.82" in [p for p, _ in pieces]  # the trained pre-tokenizer keeps a number whole
    assert in_model.apply_chat_template([{"role": "user", "content": text}], tokenize=False) == (
        original.apply_chat_template([{"role": "user", "content": text}], tokenize=False)
    )


def test_a_real_tokenizer_keeps_its_own_class(qwen_tokenizer_dir):
    tok = load_tokenizer(qwen_tokenizer_dir)
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tok.tokenize(" 0.82") == ["Ġ", "0", ".", "8", "2"]


def test_a_folder_without_a_tokenizer_is_named_in_the_error(tmp_path):
    with pytest.raises(InputFileError, match="tokenizer folder not found"):
        load_tokenizer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFileError, match="empty"):
        load_tokenizer(tmp_path / "empty")
