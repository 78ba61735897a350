"""ContextPolicy: epochs, pinned prefix, overlap, notice, baselines, oversized turns."""

import itertools

import pytest
from pydantic import ValidationError

from klong.chat.context import CUT_NOTE, ContextConfig, ContextExhaustedError, ContextPolicy
from klong.chat.render import ChatRenderer
from klong.chat.turns import split_turns
from klong.schema import Message, ToolCall, ToolFunction


def _turn(i: int, output_words: int) -> list[Message]:
    call = ToolCall(id=f"c{i}", function=ToolFunction(name="bash", arguments={"cmd": f"step {i}"}))
    return [
        Message(role="assistant", content=f"Turn {i}.", tool_calls=[call]),
        Message(role="tool", content=" ".join(["word"] * output_words) + f" end{i}", tool_call_id=f"c{i}"),
    ]


def _history(n: int, output_words: int = 60, reading_words: int = 60) -> list[Message]:
    msgs = [Message(role="system", content="You are an agent."), Message(role="user", content="Do the task.")]
    for i in range(n):
        msgs += _turn(i, reading_words if i < 2 else output_words)
    return msgs


def _policy(tok, msgs, **kw) -> ContextPolicy:
    return ContextPolicy(ContextConfig(**kw), ChatRenderer(tok, None, msgs[0]))


def _views(policy, msgs):
    conv = split_turns(msgs)
    return [policy.view(conv.head + [m for turn in conv.turns[:t] for m in turn]) for t in range(len(conv.turns) + 1)]


def test_config_validation():
    with pytest.raises(ValidationError, match="exceed the window"):
        ContextConfig(max_context_tokens=1000, overlap_tokens=800)
    with pytest.raises(ValidationError, match="reserve_tokens must be smaller"):
        ContextConfig(max_context_tokens=1000, reserve_tokens=1000, overlap_tokens=0)
    assert ContextConfig(max_context_tokens=1000, reserve_tokens=200, overlap_tokens=100).prefix_budget == 400


def test_epochs_grow_append_only_then_restart_with_prefix_notice_and_overlap(qwen_tokenizer):
    msgs = _history(30)
    policy = _policy(qwen_tokenizer, msgs, max_context_tokens=1200, overlap_tokens=300, pin_turns=2)
    views = _views(policy, msgs)
    assert views[0].epoch == 0 and [p.kind for p in views[0].parts] == ["head"]
    epochs = [v.epoch for v in views]
    assert epochs == sorted(epochs) and epochs[-1] >= 3
    for prev, cur in itertools.pairwise(views):
        assert cur.prompt_tokens <= 1200
        if not cur.new_epoch:  # same epoch: the previous view's messages are a prefix of this one's
            assert cur.messages[: len(prev.messages)] == prev.messages
    for v in views:
        if v.epoch == 0:
            continue
        kinds = [p.kind for p in v.parts]
        assert kinds[:3] == ["head", "turn", "turn"] and kinds[3] == "notice" and kinds.count("notice") == 1
        assert [p.turn for p in v.parts[1:3]] == [0, 1]  # the pinned reading, always
        if v.new_epoch:  # the carried turns are the most recent ones and fit the overlap budget
            carried = [p.turn for p in v.parts[4:]]
            assert carried == list(range(v.call - len(carried), v.call)) and len(carried) >= 1
            lengths = [len(policy.renderer.turn_piece(p.messages)) for p in v.parts[4:]]
            assert sum(lengths) <= 300 or len(carried) == 1


def test_prompt_tokens_are_the_rendered_length(qwen_tokenizer):
    msgs = _history(12)
    policy = _policy(qwen_tokenizer, msgs, max_context_tokens=1000, overlap_tokens=200, pin_turns=1)
    for v in _views(policy, msgs):
        assert v.prompt_tokens == len(policy.renderer.render_prompt(v.messages))


def test_pinned_reading_is_limited_by_its_budget(qwen_tokenizer):
    msgs = _history(10, reading_words=400)  # each reading turn ~420 tokens
    policy = _policy(
        qwen_tokenizer, msgs, max_context_tokens=1400, overlap_tokens=200, pin_turns=2, max_prefix_tokens=600
    )
    views = _views(policy, msgs)
    assert max(v.pinned for v in views) == 1


def test_pin_marker(qwen_tokenizer):
    msgs = _history(10)
    msgs[2 + 2 * 2 + 1] = msgs[2 + 2 * 2 + 1].model_copy(update={"content": "paper read. [END OF PAPER]"})
    policy = _policy(qwen_tokenizer, msgs, max_context_tokens=900, overlap_tokens=100, pin_marker="[END OF PAPER]")
    assert max(v.pinned for v in _views(policy, msgs)) == 3


def test_baselines(qwen_tokenizer):
    msgs = _history(20)
    full = _views(_policy(qwen_tokenizer, msgs, policy="full", max_context_tokens=500, overlap_tokens=0), msgs)
    assert full[-1].messages == msgs and full[-1].prompt_tokens > 500
    sliding = _views(_policy(qwen_tokenizer, msgs, policy="sliding", max_context_tokens=900, overlap_tokens=200,
                             pin_turns=2), msgs)  # fmt: skip
    assert all(v.pinned == 0 for v in sliding) and sliding[-1].epoch > 0
    assert sliding[-1].parts[0].messages == msgs[:2] and sliding[-1].parts[1].kind == "notice"
    trunc = _policy(qwen_tokenizer, msgs, policy="truncate", max_context_tokens=900, overlap_tokens=0)
    conv = split_turns(msgs)
    with pytest.raises(ContextExhaustedError, match="truncate policy"):
        for t in range(len(conv.turns) + 1):
            trunc.select(conv.head, conv.turns[:t])


def test_huge_tool_output_is_cut_deterministically_and_kept_cut(qwen_tokenizer):
    msgs = _history(6)
    msgs += _turn(6, 20000)  # ~20K tokens of output
    msgs += _turn(7, 30)
    conv = split_turns(msgs)
    cfg = dict(max_context_tokens=1500, overlap_tokens=300, pin_turns=1)
    a, b = _policy(qwen_tokenizer, msgs, **cfg), _policy(qwen_tokenizer, msgs, **cfg)
    for t in range(len(conv.turns) + 1):
        va, vb = a.select(conv.head, conv.turns[:t]), b.select(conv.head, conv.turns[:t])
        assert va.messages == vb.messages and va.prompt_tokens <= 1500
    view7 = _policy(qwen_tokenizer, msgs, **cfg)
    views = [view7.select(conv.head, conv.turns[:t]) for t in range(len(conv.turns) + 1)]
    cut = [p for v in views for p in v.parts if p.cut]
    assert cut and all(p.turn == 6 for p in cut)
    assert "characters cut to fit the context window" in cut[0].messages[1].content
    assert CUT_NOTE.split("{n}")[0] in cut[0].messages[1].content
    # the next call in the same epoch shows the same cut turn (append-only)
    assert not views[8].new_epoch and views[8].messages[: len(views[7].messages)] == views[7].messages


def test_force_new_epoch_and_exhaustion(qwen_tokenizer):
    msgs = _history(8)
    conv = split_turns(msgs)
    policy = _policy(qwen_tokenizer, msgs, max_context_tokens=4000, overlap_tokens=200, pin_turns=1)
    v = policy.select(conv.head, conv.turns[:8])
    assert v.epoch == 0
    forced = policy.select(conv.head, conv.turns[:8], force_new_epoch=True)
    assert forced.epoch == 1 and forced.new_epoch and forced.prompt_tokens < v.prompt_tokens
    tiny = _policy(qwen_tokenizer, msgs, max_context_tokens=60, overlap_tokens=0, max_prefix_tokens=0)
    with pytest.raises(ContextExhaustedError, match="no room"):
        tiny.select(conv.head, conv.turns[:3])


def test_pin_marker_found_late(qwen_tokenizer):
    """The marker is looked for incrementally (only turns not seen yet, and the last one again since its tool results
    may have grown; the cost is measured in benchmarks/runtime_overhead.py): a marker in a late turn is still found."""
    msgs = _history(40)
    conv = split_turns(msgs)
    late = list(conv.turns)
    late[30] = [late[30][0], late[30][1].model_copy(update={"content": "read. [END]"})]
    found = _policy(qwen_tokenizer, msgs, max_context_tokens=30000, pin_marker="[END]", max_prefix_tokens=20000)
    views = [found.select(conv.head, late[:t]) for t in range(len(late) + 1)]
    assert views[30].pinned == 0 and views[31].pinned == 31 and views[-1].pinned == 31


def test_notice_role_follows_the_template(qwen_tokenizer):
    """`auto`: `system` where a user message would make the template rewrite earlier turns (Qwen3, GLM-4.5 drop the
    reasoning before the last user query), `user` elsewhere; the resolved role is the notice's and the reminders'."""
    from tests.chat.test_render import template_tokenizer

    expected = {"qwen2.5-instruct": "user", "qwen3": "system", "llama-3.1-instruct": "user", "glm-4.5": "system"}
    msgs = _history(2)
    for template, role in expected.items():
        policy = _policy(template_tokenizer(template), msgs, max_context_tokens=4000)
        assert policy.notice_role == role, template
    assert _policy(qwen_tokenizer, msgs, notice_role="system").notice_role == "system"
    from klong.chat.approx import ApproxRenderer

    assert (
        ContextPolicy(ContextConfig(), ApproxRenderer()).notice_role == "user"
    )  # no template: what every server takes


def test_a_refused_view_is_undone_and_retries_shrink(qwen_tokenizer):
    msgs = _history(12)
    conv = split_turns(msgs)
    policy = _policy(qwen_tokenizer, msgs, max_context_tokens=4000, overlap_tokens=1200, pin_turns=1)
    before = policy.state()
    sizes = []
    for attempt in (1, 2, 3):
        view = policy.select(conv.head, conv.turns, force_new_epoch=attempt)
        assert view.new_epoch and view.epoch == 1
        sizes.append(view.prompt_tokens)
        policy.restore(before)
    assert sizes[0] > sizes[1] > sizes[2]
    assert policy.select(conv.head, conv.turns).epoch == 0  # nothing of the refused attempts stayed
    trunc = _policy(qwen_tokenizer, msgs, policy="truncate", max_context_tokens=4000, overlap_tokens=0)
    with pytest.raises(ContextExhaustedError, match="cannot shrink"):
        trunc.select(conv.head, conv.turns, force_new_epoch=1)
