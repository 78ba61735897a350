"""A tiny random-weight model runs a few turns in process (`hf:`); its output is nonsense and the loop copes."""

import asyncio

from klong.agent.config import AgentConfig
from klong.chat.context import ContextConfig
from klong.data.split import split_trajectory
from klong.exceptions import StopReason
from klong.models import load_model
from klong.models.config import ModelConfig
from klong.rollout.runner import run_rollouts
from klong.schema import read_trajectory
from tests.tasks import make_task


def test_tiny_hf_model_runs_turns_and_records_what_it_sampled(tmp_path, tiny_model_dir, qwen_tokenizer):
    task = make_task(tmp_path, paragraphs=2)
    cfg = ModelConfig(max_tokens=12, temperature=1.0, seed=0)
    agent = AgentConfig(clock="virtual", max_turns=3, mandatory_reading=False,
                        context=ContextConfig(max_context_tokens=4096, overlap_tokens=256))  # fmt: skip
    out = tmp_path / "run"
    asyncio.run(run_rollouts([task], model_factory=lambda: load_model(f"hf:{tiny_model_dir}", cfg), sandbox="local",
                             config=agent, out_dir=out))  # fmt: skip
    traj = read_trajectory(out / "trajectories" / "toy__a0.json")
    assert traj.stop_reason is StopReason.MAX_TURNS and traj.assistant_turns() == 3
    assistants = [m for m in traj.messages if m.role == "assistant"]
    for m in assistants:
        assert m.token_ids and len(m.logprobs) == len(m.token_ids) and all(lp <= 0 for lp in m.logprobs)
        assert 1 <= len(m.token_ids) <= 12 and m.usage.completion_tokens == len(m.token_ids)
    # every reply without a readable tool call got a reminder; the conversation stays well formed
    assert all(
        traj.messages[i + 1].role in ("user", "tool") for i, m in enumerate(traj.messages[:-1]) if m.role == "assistant"
    )
    # the windows used for training contain exactly the sampled ids, trained
    result = split_trajectory(traj, qwen_tokenizer, ContextConfig(max_context_tokens=4096, overlap_tokens=256))
    window = result.samples[-1]
    for m in assistants:
        ids = m.token_ids
        start = next(i for i in range(len(window.input_ids)) if window.input_ids[i : i + len(ids)] == ids)
        assert set(window.loss_mask[start : start + len(ids)]) == {1}


def test_sampler_refuses_a_processor_it_did_not_configure(tiny_model_dir):
    """The sampler's first use checks that the scores reaching klong's processors are the model's raw logits; a
    processor slipped in by generate (its effect would be in the recorded logprobs, not in the trainer's) is refused."""
    import pytest
    import torch
    from transformers import AutoModelForCausalLM

    from klong.exceptions import ModelError
    from klong.models.sampler import Sampler

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([[1000, 2000, 3000]])
    with torch.no_grad():
        raw = model(input_ids=ids).logits[0, -1].float()
        Sampler._check(model, ids, raw.clone())  # unchanged scores pass
        with pytest.raises(ModelError, match="did not configure"):
            Sampler._check(model, ids, raw / 1.05)  # e.g. a repetition penalty on the prompt's tokens
        sampler = Sampler(0.7)
        new = sampler.generate(model, ids, max_new_tokens=5, stop_ids=[], check=True)
    assert len(new) == len(sampler.logprobs) == 5 and sampler.record.logprobs == "processed"
    assert Sampler(0.0).record.logprobs == "raw" and Sampler(0.0).record.logprobs_temperature == 1.0


def test_a_shared_model_samples_each_episode_the_same_whatever_the_order(tmp_path, tiny_model_dir):
    """Episodes sharing one in-process model (RL's hf backend, the demo) at temperature 1: each episode samples the
    same tokens whether it runs alone, first or beside three others, because each call's seed comes from the episode
    and its turn (`klong.models.call_seed`), not from how many calls the shared model made before."""
    tasks = [make_task(tmp_path / "tasks", task_id=f"t{i}", paragraphs=2) for i in range(4)]
    cfg = ModelConfig(max_tokens=8, temperature=1.0, seed=3)
    agent = AgentConfig(clock="virtual", max_turns=3, mandatory_reading=False,
                        context=ContextConfig(max_context_tokens=4096, overlap_tokens=256))  # fmt: skip

    def sampled(out, order, concurrency):
        shared = load_model(f"hf:{tiny_model_dir}", cfg)
        asyncio.run(run_rollouts([tasks[i] for i in order], model_factory=lambda: shared, sandbox="local",
                                 config=agent, out_dir=out, concurrency=concurrency))  # fmt: skip
        return {i: [m.token_ids for m in read_trajectory(out / "trajectories" / f"t{i}__a0.json").messages
                    if m.role == "assistant"] for i in range(4)}  # fmt: skip

    together = sampled(tmp_path / "together", [0, 1, 2, 3], 4)
    reversed_alone = sampled(tmp_path / "alone", [3, 2, 1, 0], 1)
    assert together == reversed_alone
    assert len({str(v) for v in together.values()}) == 4  # and the episodes do not all sample the same
