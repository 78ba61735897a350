import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def test_tiny_model_loads_and_generates(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) < 20_000_000
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hello"}],
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=5, do_sample=False)
    assert out.shape[1] == prompt["input_ids"].shape[1] + 5 or out[0, -1].item() == model.generation_config.eos_token_id
    assert isinstance(tokenizer.decode(out[0, prompt["input_ids"].shape[1] :]), str)


def test_tiny_model_is_deterministic(tmp_path, qwen_tokenizer_dir):
    from klong.models.tiny import TinyModelConfig, build_tiny_model

    a = build_tiny_model(tmp_path / "a", qwen_tokenizer_dir, TinyModelConfig(hidden_size=32, intermediate_size=64))
    b = build_tiny_model(tmp_path / "b", qwen_tokenizer_dir, TinyModelConfig(hidden_size=32, intermediate_size=64))
    ma = AutoModelForCausalLM.from_pretrained(a)
    mb = AutoModelForCausalLM.from_pretrained(b)
    for (na, pa), (_, pb) in zip(ma.named_parameters(), mb.named_parameters(), strict=True):
        assert torch.equal(pa, pb), na
