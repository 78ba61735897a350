"""Trajectory splitting costs about the same with every shipped chat template.

Random 120-turn episodes run through the real runtime (a random scripted agent, real bash in a local sandbox, the
template's tokenizer given to the runtime, so its notices and reminders are what klong writes for that template),
then are split at a 6K window with the run's own settings. Templates that drop the reasoning of turns before the last
user message (Qwen3, GLM-4.5) used to start a new window at every klong reminder (18-20x the tokens); with klong's own
messages in the role the template keeps history under, every template stays within 1.3x of Qwen2.5's duplication.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from klong.agent.config import AgentConfig
from klong.agent.loop import Episode
from klong.chat.context import ContextConfig
from klong.data.split import SplitStats, split_trajectory
from klong.models.random_agent import random_agent
from klong.models.scripted import ScriptedModel
from klong.sandbox import make_sandbox
from tests.chat.test_render import template_tokenizer
from tests.tasks import make_task

TEMPLATES = ["qwen2.5-instruct", "qwen3", "llama-3.1-instruct", "glm-4.5"]


def _duplication(tmp_path, template: str, seeds=(0, 1)) -> tuple[float, SplitStats]:
    tok = template_tokenizer(template)
    stats = SplitStats()
    for seed in seeds:
        root = tmp_path / template / str(seed)
        task = make_task(root, paragraphs=2)
        agent = random_agent(random.Random(seed), reasoning=template in ("qwen3", "glm-4.5"),
                             max_calls=1 if template == "llama-3.1-instruct" else 2)  # fmt: skip
        config = AgentConfig(clock="virtual", max_turns=120, time_limit=10**7, mandatory_reading=False,
                             context=ContextConfig(max_context_tokens=6000))  # fmt: skip
        episode = Episode(task, ScriptedModel([agent], on_exhausted="repeat_last"), make_sandbox("local", root / "ws"),
                          config, root / "t.json", run_id=f"{template}-{seed}", tokenizer=tok)  # fmt: skip
        traj = asyncio.run(episode.run())
        assert traj.assistant_turns() == 120
        stats.add(split_trajectory(traj, tok))  # the run's settings: every window checked against its views
    return stats.duplication, stats


@pytest.fixture(scope="module")
def qwen25(tmp_path_factory):
    return _duplication(tmp_path_factory.mktemp("dup"), "qwen2.5-instruct")[0]


@pytest.mark.parametrize("template", TEMPLATES[1:])
def test_duplication_within_13_of_qwen25(tmp_path, qwen25, template):
    duplication, stats = _duplication(tmp_path, template)
    assert stats.windows >= 4 and stats.checked_calls == stats.turns
    assert duplication <= 1.3 * qwen25, (template, duplication, qwen25)
