"""Build a tiny random-weight causal LM from a transformers config, saved with a real tokenizer.

Nothing is downloaded: the architecture comes from a config and the tokenizer from a local folder. The saved folder loads
with `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` like any model, so `hf:PATH` works on it.
Tests use it, and the demo trains one from scratch.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class TinyModelConfig(BaseModel):
    """Shape of the tiny model (a Qwen2 architecture)."""

    model_config = ConfigDict(extra="forbid")

    hidden_size: int = 64
    """Width of the residual stream."""
    num_hidden_layers: int = 2
    """Number of transformer blocks."""
    num_attention_heads: int = 4
    """Query heads per layer."""
    num_key_value_heads: int = 2
    """Key/value heads per layer (grouped-query attention when fewer than query heads)."""
    intermediate_size: int = 128
    """Width of the MLP."""
    max_position_embeddings: int = 32768
    """Longest sequence the rotary embedding is configured for."""
    tie_word_embeddings: bool = True
    """Share the input embedding with the output head (keeps a 150K vocabulary cheap)."""
    seed: int = 0
    """Seed for the random weights."""


def build_tiny_model(
    out_dir: str | Path,
    tokenizer_dir: str | Path,
    config: TinyModelConfig | None = None,
    chat_template: str | Path | None = None,
) -> Path:
    """Create the model, save it with the tokenizer into `out_dir`, and return `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    from klong.models.tokenizer import load_tokenizer

    config = config or TinyModelConfig()
    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_dir, chat_template)
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token) if tokenizer.eos_token else None
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_id
    hf_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=config.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, bos_token_id=tokenizer.bos_token_id
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
