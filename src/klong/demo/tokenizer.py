"""A small byte-level BPE tokenizer trained on the demo's own texts, with a Hermes-style chat template.

Nothing is downloaded: the vocabulary is learned from the teacher's trajectories. Text is pre-split into words and
numbers. A number never carries a space (`exp3.txt` is `exp`, `3`, `.txt`; ` --seed 45` is ` --seed `, `45`), so the
values the tasks turn on (a run index, a seed, a metric `0.71`) become single tokens that are the same in the paper, in
a command, in a log and in a record. A setting is then one token to copy rather than a run of digits, each of which
also occurs all over the logs: that is what lets a small model learn the copy within the demo's CPU budget.
The template renders tool calls as `<tool_call>{"name": ..., "arguments": ...}</tool_call>`,
which `klong.chat.parsing` reads back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content %}{{- message.content }}{%- endif %}"
    "{%- if message.tool_calls %}{%- for tc in message.tool_calls %}"
    "{%- if tc.function is defined %}{%- set tc = tc.function %}{%- endif %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + tc.name + '\", \"arguments\": ' + (tc.arguments | tojson) + '}\\n</tool_call>' }}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
PRE_SPLIT = r"\d+(?:\.\d+)?| ?[^\s\d]+(?: (?=\d))?|\s+"
"""Pre-tokenization: numbers (never with a space), words (with their leading space, and the space before a number
that follows them), runs of whitespace."""


def train_tokenizer(corpus: Iterable[str], out_dir: str | Path, vocab_size: int = 1024) -> Path:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PRE_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])  # fmt: skip
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    tok.train_from_iterator(list(corpus), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>"])  # fmt: skip
    fast.add_tokens(["<tool_call>", "</tool_call>"])
    fast.chat_template = CHAT_TEMPLATE
    out_dir = Path(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir
