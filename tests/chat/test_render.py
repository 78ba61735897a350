"""Rendering: parity with apply_chat_template on the real templates, masks, recorded ids, linear cost."""

import time

import pytest

from klong.chat.render import ChatRenderer, RenderError, render_ids
from klong.chat.turns import split_turns
from klong.importers import import_trajectory_file
from klong.models.tokenizer import load_tokenizer
from klong.schema import Message
from tests.conversations import TEMPLATE_SPECIALS, TOOLS, conversation
from tests.shared import shared_path


def template_tokenizer(name: str):
    tok = load_tokenizer(shared_path("tokenizers", "qwen2.5"), shared_path("chat_templates", f"{name}.jinja"))
    if TEMPLATE_SPECIALS[name]:
        tok.add_special_tokens({"additional_special_tokens": TEMPLATE_SPECIALS[name]})
    return tok


def renderer_for(tok, messages, tools=None):
    return ChatRenderer(tok, tools, messages[0] if messages[0].role == "system" else None)


@pytest.mark.parametrize("template", ["qwen2.5-instruct", "qwen3", "llama-3.1-instruct", "glm-4.5"])
@pytest.mark.parametrize("with_tools", [False, True])
def test_parity_with_apply_chat_template(template, with_tools):
    tok = template_tokenizer(template)
    tools = TOOLS if with_tools else None
    # Llama 3.1 supports one tool call per message; Qwen3 keeps reasoning only when every turn has some (see below).
    msgs = conversation(reasoning=template in ("qwen3", "glm-4.5"), parallel=template != "llama-3.1-instruct")
    r = renderer_for(tok, msgs, tools)
    for upto in range(3, len(msgs) + 1):
        seq = r.render(msgs[:upto])
        assert seq.input_ids == render_ids(tok, msgs[:upto], tools), upto
        gp = r.render(msgs[:upto], add_generation_prompt=True)
        assert gp.input_ids == render_ids(tok, msgs[:upto], tools, add_generation_prompt=True)


@pytest.mark.parametrize("template", ["qwen2.5-instruct", "qwen3", "llama-3.1-instruct", "glm-4.5"])
def test_mask_covers_exactly_the_generated_tokens(template):
    tok = template_tokenizer(template)
    msgs = conversation(reasoning=template in ("qwen3", "glm-4.5"), parallel=template != "llama-3.1-instruct")
    r = renderer_for(tok, msgs)
    seq = r.render(msgs)
    trained = tok.decode([i for i, m in zip(seq.input_ids, seq.loss_mask, strict=True) if m])
    untrained = tok.decode([i for i, m in zip(seq.input_ids, seq.loss_mask, strict=True) if not m])
    for m in msgs:
        if m.role == "assistant":
            if m.content in seq.text:  # Llama 3.1's template drops the text of a message that calls a tool
                assert m.content in trained and m.content not in untrained
            for call in m.tool_calls or []:
                assert call.function.name in trained
        elif m.role in ("tool", "user", "system"):
            assert m.content not in trained
    role_header = {"qwen2.5-instruct": "<|im_start|>assistant", "qwen3": "<|im_start|>assistant",
                   "llama-3.1-instruct": "<|start_header_id|>assistant", "glm-4.5": "<|assistant|>"}[template]  # fmt: skip
    assert role_header not in trained
    end = {"qwen2.5-instruct": "<|im_end|>", "qwen3": "<|im_end|>", "llama-3.1-instruct": "<|eot_id|>",
           "glm-4.5": "<|observation|>"}[template]  # fmt: skip
    assert trained.count(end) >= 4  # every turn ends with the token that stops generation


def test_qwen3_without_reasoning_is_not_prefix_stable_and_is_detected():
    tok = template_tokenizer("qwen3")
    msgs = conversation(reasoning=False)
    r = renderer_for(tok, msgs)
    with pytest.raises(RenderError, match="not prefix-stable"):
        r.render(msgs)
    # the prompt for one call still equals the template's own rendering of that view
    view = msgs[:-1]
    prompt = r.render_prompt(view)
    assert not prompt.exact_template
    assert prompt.input_ids == render_ids(tok, view, add_generation_prompt=True)
    # with reasoning on every turn it is prefix-stable and the composed prompt is used
    msgs = conversation(reasoning=True)
    assert renderer_for(tok, msgs).render_prompt(msgs[:-1]).exact_template


def _piece_boundaries(r: ChatRenderer, msgs) -> set[int]:
    conv = split_turns(msgs)
    pos = len(r.head_piece(conv.head).text)
    bounds = set()
    for p in r.turn_pieces(conv.turns):
        for part in (p.header, p.gen, p.rest):
            pos += len(part.text)
            bounds.add(pos)
    return bounds


def test_real_trajectories_parity_except_boundary_merges(qwen_tokenizer):
    """Ids equal apply_chat_template's unless the template's text lets one BPE token straddle a prompt/generation
    boundary (an assistant message starting with a newline after `assistant\\n`); the text is identical always."""
    files = sorted(shared_path("trajectories", "swe-agent").glob("*.traj"))
    files += sorted(shared_path("trajectories", "mini-swe-agent").glob("*.json"))
    straddled = 0
    for f in files:
        traj = import_trajectory_file(f, "mini-swe-agent" if f.name.endswith(".traj.json") else "swe-agent")
        r = renderer_for(qwen_tokenizer, traj.messages, traj.tools)
        seq = r.render(traj.messages)
        ref = render_ids(qwen_tokenizer, traj.messages, traj.tools)
        assert seq.text == qwen_tokenizer.decode(ref)
        enc = qwen_tokenizer(seq.text, add_special_tokens=False, return_offsets_mapping=True)
        bounds = _piece_boundaries(r, traj.messages)
        straddle = any(any(s < b < e for b in bounds) for s, e in enc["offset_mapping"])
        assert (seq.input_ids == ref) == (not straddle), f.name
        straddled += straddle
    assert straddled == 4  # the four CTF trajectories whose replies start with "\n```"


def test_recorded_token_ids_are_used_as_sampled(qwen_tokenizer):
    msgs = conversation(turns=2, final=False)
    # a non-canonical tokenisation of the first reply: one id per character of "Step 0: looking."
    text_ids = [qwen_tokenizer.convert_tokens_to_ids(c) for c in "Step"] + qwen_tokenizer.encode(" 0: looking.")
    call = '\n<tool_call>\n{"name": "bash", "arguments": {"cmd": "ls 0"}}\n</tool_call><|im_end|>'
    sampled = text_ids + qwen_tokenizer.encode(call)
    msgs[2] = msgs[2].model_copy(update={"token_ids": sampled, "logprobs": [-0.5] * len(sampled)})
    r = renderer_for(qwen_tokenizer, msgs)
    seq = r.render(msgs)
    start = next(i for i in range(len(seq.input_ids)) if seq.input_ids[i : i + len(sampled)] == sampled)
    assert seq.loss_mask[start : start + len(sampled)] == [1] * len(sampled)
    assert seq.logprobs[start : start + len(sampled)] == [-0.5] * len(sampled)
    # a generation cut short: the template's end-of-turn token is added but not trained
    short = qwen_tokenizer.encode("Step 0: looking.")
    msgs[2] = msgs[2].model_copy(update={"token_ids": short, "logprobs": [-0.1] * len(short)})
    seq = renderer_for(qwen_tokenizer, msgs).render(msgs)
    end_id = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    i = next(i for i in range(len(seq.input_ids)) if seq.input_ids[i : i + len(short)] == short) + len(short)
    assert seq.input_ids[i] == end_id and seq.loss_mask[i] == 0


def test_rendering_cost_is_linear(qwen_tokenizer):
    import random

    from tests.conversations import random_conversation

    def cost(turns: int) -> float:
        msgs = random_conversation(random.Random(0), turns, max_output=600)
        r = renderer_for(qwen_tokenizer, msgs)
        t0 = time.perf_counter()
        r.render(msgs)
        return time.perf_counter() - t0

    cost(20)  # warm up
    small, large = min(cost(100) for _ in range(2)), min(cost(700) for _ in range(2))
    # linear would be 7x; quadratic 49x. Allow noise on a shared machine.
    assert large / small < 20, (small, large)


def test_template_without_generation_prompt_is_refused(qwen_tokenizer):
    import copy

    tok = copy.deepcopy(qwen_tokenizer)
    tok.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    with pytest.raises(RenderError, match="no generation prompt"):
        ChatRenderer(tok)
    assert Message(role="user", content="x")


def test_a_generation_cut_short_is_exactly_what_was_sampled(qwen_tokenizer):
    """A generation stopped by `max_tokens` has no end-of-turn token; the template closes the turn with one. That token
    belongs to what follows (untrained), so the generated piece is exactly the sampled ids and a window ending with
    this turn ends where sampling ended. The same for a text-only turn whose `finish_reason` is `length`."""
    msgs = conversation(turns=2, final=False)
    sampled = qwen_tokenizer.encode("Step 0: lookin")
    msgs[2] = msgs[2].model_copy(update={"token_ids": sampled, "logprobs": [-0.2] * len(sampled), "tool_calls": None,
                                         "content": "Step 0: lookin"})  # fmt: skip
    msgs = [m for m in msgs if not (m.role == "tool" and m.tool_call_id == "c0a")]
    r = renderer_for(qwen_tokenizer, msgs)
    conv = split_turns(msgs)
    piece = r.turn_piece(conv.turns[0])
    end_id = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert piece.gen.ids == sampled and piece.gen.mask == [1] * len(sampled)
    assert piece.rest.ids[0] == end_id and set(piece.rest.mask) == {0}
    assert r.render(msgs).text == r.template_text(msgs)  # the composed text is still the template's
    text_only = conv.turns[0][0].model_copy(update={"token_ids": None, "logprobs": None, "finish_reason": "length"})
    cut = r.turn_piece([text_only, *conv.turns[0][1:]])
    assert end_id not in cut.gen.ids and cut.rest.ids[0] == end_id
    finished = r.turn_piece([text_only.model_copy(update={"finish_reason": "stop"}), *conv.turns[0][1:]])
    assert finished.gen.ids[-1] == end_id and finished.gen.mask[-1] == 1
