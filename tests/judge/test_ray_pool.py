"""Batch grading through the Ray actor pool (`klong grade RUN_DIR --executor ray`) on a local Ray instance: the same
grades and the same number of judge calls as in-process grading, against a judge server on 127.0.0.1."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from klong.cli import app
from klong.models.fake_openai import FakeOpenAIServer
from tests.judge.test_grade_cli import judge, run_dir  # noqa: F401  (the fixture: a real run dir of two tasks)

pytestmark = pytest.mark.ray
runner = CliRunner()


def _leaves(grade: dict) -> list:
    out = []

    def go(node):
        if not node["sub_tasks"]:
            out.append((node["id"], node["score"], node["valid_score"], node["explanation"]))
        for c in node["sub_tasks"]:
            go(c)

    go(grade["graded_task_tree"])
    return out


def test_the_actor_pool_grades_as_in_process(run_dir, tmp_path):  # noqa: F811
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        grades = {}
        for executor in ("local", "ray"):
            w = tmp_path / executor
            shutil.copytree(run_dir, w)
            with FakeOpenAIServer(judge) as server:
                r = runner.invoke(app, ["grade", str(w / "run"), "--tasks", str(w / "tasks"), "--judge",
                                        "openai:gpt-4.1", "--base-url", server.base_url, "--no-cache", "--executor",
                                        executor, "--judge-workers", "2", "--json"])  # fmt: skip
                assert r.exit_code == 0, r.output
                calls = len(server.requests)
            rows = json.loads(r.stdout)["grades"]
            grades[executor] = (calls, {row["run_id"]: (row["score"], row["model_calls"], row["status"])
                                        for row in rows},
                                {p.name: _leaves(json.loads(p.read_text())) for p in (w / "run" / "grades").glob("*.json")})  # fmt: skip
        assert grades["ray"] == grades["local"]
        assert grades["local"][0] > 0 and len(grades["local"][2]) == 2
    finally:
        ray.shutdown()
