"""`klong rl` with `executor: ray` on a local Ray instance: the rollouts run as Ray tasks against the served policy
(a real OpenAI-compatible server on 127.0.0.1 answering token ids and logprobs), the judge as Ray actors; the
iteration's record (rollouts, rewards, windows trained) equals the in-process run's."""

from __future__ import annotations

import pytest

from klong.config import load_config
from klong.train.rl import run_rl
from klong.train.rl_config import RLConfig
from tests.train.test_rl import settings

pytestmark = pytest.mark.ray


def _run(tmp_path, tiny_model_dir, qwen_tokenizer, executor):
    from klong.models.fake_openai import FakeOpenAIServer

    end = qwen_tokenizer.convert_tokens_to_ids("<|im_end|>")

    def respond(body):
        text = "thinking about it"
        ids = qwen_tokenizer.encode(text) + [end]
        return {"content": text, "token_ids": ids, "logprobs": [-0.7] * len(ids)}

    out = tmp_path / executor / "rl"
    with FakeOpenAIServer(respond) as server:
        cfg = settings(tmp_path / executor, tiny_model_dir, out) + [
            "rollout_backend=openai", f"generation.base_url={server.base_url}", f"executor={executor}",
            "judge_workers=2", "stages=[{timeout: 100, iterations: 1}]",
        ]  # fmt: skip
        (record,) = run_rl(load_config(RLConfig, cfg), progress=False)
        calls = len(server.requests)
    return record, calls


def test_rl_on_ray_equals_in_process(tmp_path, tiny_model_dir, qwen_tokenizer):
    import ray

    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    local, local_calls = _run(tmp_path, tiny_model_dir, qwen_tokenizer, "local")
    on_ray, ray_calls = _run(tmp_path, tiny_model_dir, qwen_tokenizer, "ray")
    assert not ray.is_initialized()  # the run started its Ray instance and shut it down
    keys = ("rollouts", "windows", "infra_failures", "left_out", "reward_mean")
    assert {k: on_ray.get(k) for k in keys} == {k: local.get(k) for k in keys}
    assert on_ray["rollouts"] == 4 and ray_calls == local_calls > 0


def test_executor_ray_needs_a_served_policy(tmp_path, tiny_model_dir):
    with pytest.raises(Exception, match="executor ray needs a served policy"):
        load_config(RLConfig, [*settings(tmp_path, tiny_model_dir, tmp_path / "rl"), "executor=ray"])
