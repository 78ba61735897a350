"""The judge cache key covers everything that can change a grade: two real endpoints on 127.0.0.1 that answer
differently are both asked; sampling settings, judge config, code-only and the submission's content each miss."""

import asyncio
import json

from klong.judge.base import JudgeConfig
from klong.judge.cache import JudgeCache
from klong.judge.grade import grade_submission, make_judge
from klong.models.config import ModelConfig
from klong.models.fake_openai import FakeOpenAIServer
from tests.judge.test_grade import fixture_task, gold


def _always(score: int):
    def reply(body):
        prompt = body["messages"][-1]["content"]
        if "List the files most useful" in prompt:
            return {"content": "flag.txt"}
        return {"content": json.dumps({"expectations": "e", "reality": f"server says {score}", "score": score})}

    return reply


def _grade(url, task, sub, cache, *, temperature=0.0, max_tokens=4096, config=None, code_only=False):
    judge = make_judge("openai:gpt-4.1", ModelConfig(base_url=url, temperature=temperature, max_tokens=max_tokens,
                                                     max_retries=1), config)  # fmt: skip
    return asyncio.run(grade_submission(sub, task, judge, cache=cache, code_only_=code_only))


def test_another_endpoint_is_asked_and_its_grade_used(tmp_path):
    task = fixture_task(tmp_path, "hex_flag")
    sub = gold(tmp_path, "hex_flag")
    cache = JudgeCache(tmp_path / "cache")
    with FakeOpenAIServer(_always(1)) as a, FakeOpenAIServer(_always(0)) as b:
        first = _grade(a.base_url, task, sub, cache)
        again = _grade(a.base_url, task, sub, JudgeCache(tmp_path / "cache"))
        other = _grade(b.base_url, task, sub, JudgeCache(tmp_path / "cache"))
        assert (len(a.requests), len(b.requests)) == (1, 1)
        b_url = b.base_url
    assert first["score"] == again["score"] == 1.0 and again["klong"]["model_calls"] == 0
    assert again["klong"]["cache_hits"] == 1
    assert other["score"] == 0.0 and other["klong"]["model_calls"] == 1 and other["klong"]["cache_hits"] == 0
    assert "server says 0" in other["graded_task_tree"]["explanation"]
    assert other["klong"]["judge"]["base_url"].startswith(b_url)


def test_settings_that_change_a_grade_miss_the_cache(tmp_path):
    task = fixture_task(tmp_path, "hex_flag")
    sub = gold(tmp_path, "hex_flag")
    with FakeOpenAIServer(_always(1)) as server:
        url = server.base_url

        def calls(**kw):
            before = len(server.requests)
            _grade(url, task, sub, JudgeCache(tmp_path / "cache"), **kw)
            return len(server.requests) - before

        assert calls() == 1 and calls() == 0
        assert calls(temperature=0.7) == 1 and calls(temperature=0.7) == 0
        assert calls(max_tokens=1000) == 1
        assert calls(config=JudgeConfig(context_tokens=64_000)) == 1
        assert calls(config=JudgeConfig(answer="json")) == 1
        assert calls(code_only=True) == 1 and calls(code_only=True) == 0
        (sub / "flag.txt").touch()  # same content, new mtime: not a change for a Code Development leaf's key
        assert calls() == 0
        (sub / "flag.txt").write_text("0xdeadbeef")
        assert calls() == 1
