"""Splitting invariants, on random trajectories (hypothesis) and on the real ones, for every policy:

1. every window has at most N tokens (all policies but `full`);
2. every assistant turn is trained in exactly one window (`epoch`, `sliding`, `full`), tokens and all;
3. every window starts with the pinned prefix;
4. each window equals, token for token, the prompt the runtime gets from the policy at each of its calls (a fresh
   policy, asked through the runtime's API with the full history), followed by what that call generated.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from klong.chat.context import ContextConfig, ContextExhaustedError, ContextPolicy
from klong.chat.render import ChatRenderer
from klong.chat.turns import split_turns
from klong.data.split import SampleWriter, read_samples, split_trajectory
from klong.importers import import_trajectory_file
from klong.schema import Trajectory
from tests.conversations import random_conversation
from tests.shared import shared_path


def check_invariants(traj: Trajectory, tok, cfg: ContextConfig, *, tools=None):
    result = split_trajectory(traj, tok, cfg)
    n = cfg.max_context_tokens
    conv = split_turns(traj.messages)
    system = conv.head[0] if conv.head and conv.head[0].role == "system" else None
    renderer = ChatRenderer(tok, traj.tools, system)
    policy = ContextPolicy(cfg, renderer)  # a fresh policy, used the way the runtime uses it
    windows = result.samples

    if cfg.policy != "full":
        assert all(w.num_tokens <= n for w in windows)

    owner: dict[int, int] = {}
    for w in windows:
        for t in range(w.first_turn, w.last_turn + 1):
            assert t not in owner, f"turn {t} in two windows"
            owner[t] = w.window
    expected_positions: dict[int, set[int]] = {w.window: set() for w in windows}
    for t in range(len(conv.turns)):
        history = conv.head + [m for turn in conv.turns[:t] for m in turn]
        gen = renderer.turn_piece(conv.turns[t]).gen
        try:
            view = policy.view(history, gen_tokens=len(gen))
        except ContextExhaustedError:
            assert t in result.dropped_turns and t not in owner
            if cfg.policy == "truncate":
                break
            continue
        assert t in owner, f"turn {t} trained nowhere"
        w = windows[owner[t]]
        prompt = renderer.render_prompt(view.messages)
        assert prompt.text == renderer.template_text(view.messages, add_generation_prompt=True)
        k = len(prompt)
        assert w.input_ids[:k] == prompt.input_ids, f"window {w.window} differs from the view of call {t}"
        assert w.input_ids[k : k + len(gen)] == gen.ids
        expected_positions[w.window] |= {k + i for i, m in enumerate(gen.mask) if m}
        if t == w.last_turn:
            assert w.num_tokens == k + len(gen)
        # 3: the pinned prefix (head + pinned turns) starts every window
        prefix = renderer.template_text(conv.head + [m for turn in conv.turns[: view.pinned] for m in turn])
        assert tok.decode(w.input_ids).startswith(prefix) or prefix.startswith(tok.decode(w.input_ids))
    for w in windows:
        assert {i for i, m in enumerate(w.loss_mask) if m} == expected_positions[w.window]
    if cfg.policy in ("epoch", "sliding", "full"):
        trained_turns = set(owner)
        assert trained_turns == set(range(len(conv.turns))) - set(result.dropped_turns)
        gen_tokens = sum(sum(renderer.turn_piece(conv.turns[t]).gen.mask) for t in trained_turns)
        assert sum(w.num_trained for w in windows) == gen_tokens
    return result


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    turns=st.integers(1, 40),
    window=st.integers(700, 4000),
    overlap_frac=st.floats(0.0, 0.4),
    pin_turns=st.integers(0, 4),
    policy=st.sampled_from(["epoch", "truncate", "sliding", "full"]),
    huge=st.sampled_from([0, 0, 7]),
)
def test_invariants_on_random_trajectories(qwen_tokenizer, seed, turns, window, overlap_frac, pin_turns, policy, huge):
    rng = random.Random(seed)
    traj = Trajectory(id=f"r{seed}", messages=random_conversation(rng, turns, max_output=1500, huge_every=huge))
    prefix = window // 3
    cfg = ContextConfig(policy=policy, max_context_tokens=window, overlap_tokens=int(overlap_frac * (window - prefix)),
                        pin_turns=pin_turns, max_prefix_tokens=prefix)  # fmt: skip
    check_invariants(traj, qwen_tokenizer, cfg)


def _real_trajectories():
    files = sorted(shared_path("trajectories", "swe-agent").glob("*.traj"))
    files += sorted(shared_path("trajectories", "mini-swe-agent").glob("*.json"))
    return [
        import_trajectory_file(f, "mini-swe-agent" if f.name.endswith(".traj.json") else "swe-agent") for f in files
    ]


@pytest.mark.parametrize("policy", ["epoch", "truncate", "sliding", "full"])
def test_invariants_on_real_trajectories(qwen_tokenizer, policy):
    cfg = ContextConfig(
        policy=policy, max_context_tokens=6144, overlap_tokens=1024, pin_turns=2, max_prefix_tokens=4000
    )
    windows = dropped = 0
    for traj in _real_trajectories():
        result = check_invariants(traj, qwen_tokenizer, cfg)
        windows += len(result.samples)
        dropped += len(result.dropped_turns)
    # two trajectories have a task prompt (with demonstrations) longer than 6K tokens: no window can hold it
    assert windows >= 22
    if policy in ("epoch", "sliding"):
        assert windows > 30  # many trajectories overflow 6K tokens and are split


def test_template_that_rewrites_history_gives_exact_views():
    """Qwen3 renders earlier turns without reasoning differently: each window is still exactly what the template
    shows at each call, and every turn is trained once."""
    from klong.models.tokenizer import load_tokenizer

    tok = load_tokenizer(shared_path("tokenizers", "qwen2.5"), shared_path("chat_templates", "qwen3.jinja"))
    rng = random.Random(3)
    traj = Trajectory(id="q3", messages=random_conversation(rng, 12, max_output=400))
    cfg = ContextConfig(max_context_tokens=1500, overlap_tokens=300, pin_turns=1)
    result = check_invariants(traj, tok, cfg)
    assert any(not w.exact_template for w in result.samples)


def test_recorded_ids_and_logprobs_reach_the_windows(qwen_tokenizer, tmp_path):
    rng = random.Random(5)
    msgs = random_conversation(rng, 10, max_output=300)
    renderer = ChatRenderer(qwen_tokenizer, None, msgs[0])
    conv = split_turns(msgs)
    recorded = []
    for turn in conv.turns:
        ids = renderer.turn_piece(turn).gen.ids
        turn[0] = turn[0].model_copy(update={"token_ids": ids, "logprobs": [-float(len(recorded) + 1)] * len(ids)})
        recorded.append(ids)
    traj = Trajectory(id="rec", messages=conv.messages())
    cfg = ContextConfig(max_context_tokens=1200, overlap_tokens=200, pin_turns=1)
    result = check_invariants(traj, qwen_tokenizer, cfg)
    for w in result.samples:
        lp = [x for x, m in zip(w.logprobs, w.loss_mask, strict=True) if m]
        assert lp and all(x < 0 for x in lp)
    writer = SampleWriter(tmp_path / "w.parquet", "epoch")
    writer.write(result.samples)
    writer.close()
    rows = read_samples(tmp_path / "w.parquet")
    assert [r["input_ids"] for r in rows] == [w.input_ids for w in result.samples]
    assert [r["assistant_masks"] for r in rows] == [w.loss_mask for w in result.samples]
    assert rows[0]["trajectory_id"] == "rec" and [r["window"] for r in rows] == list(range(len(rows)))
