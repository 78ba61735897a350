import json

import pytest

from klong.factory.draft import prompts
from klong.factory.draft.assemble import build_tree, collapse, drop_leaves, finalize
from klong.factory.draft.client import ClientConfig, DraftClient, DraftError
from klong.factory.draft.code_summary import summarize_code
from klong.factory.draft.schemas import DraftNode, Elements, Skeleton, Subtree
from klong.factory.draft.stage import draft_paper, run_draft
from klong.factory.fake_drafter import FakeDrafter, sections
from klong.factory.gates import grounding_report, structural_gates
from klong.models.fake_openai import FakeOpenAIServer
from klong.rubric.tree import parse_rubric
from tests.factory.tiny_factory import TINY, TINY_GATES, draft_config, make_factory, tiny_record
from tests.shared import shared_path


def test_draft_through_the_openai_sdk_validates_passes_gates_and_replays(tmp_path):
    pb = shared_path("paperbench", "papers")
    make_factory(tmp_path)
    with FakeOpenAIServer(FakeDrafter()) as server:
        cfg = draft_config(model="openai:fake", base_url=server.base_url, fewshot_dir=str(pb))
        records = run_draft(tmp_path, cfg)
        calls = len(server.requests)
        assert records[0].active and records[0].files["draft"] == "draft/gatenorm"
        out = tmp_path / "draft" / "gatenorm"
        rubric = json.loads((out / "rubric.json").read_text())
        parse_rubric(rubric, strict=True)
        assert structural_gates(rubric, TINY_GATES, generated=True) == []
        grounding = json.loads((out / "grounding.json").read_text())
        report = grounding_report(rubric, grounding, (TINY / "paper.md").read_text(), (out / "addendum.md").read_text())
        assert report["share"] == 1.0
        # every request was JSON mode and carried real PaperBench few-shot subtrees
        assert all(r["response_format"] == {"type": "json_object"} for r in server.requests)
        subtree_prompts = [
            r["messages"][-1]["content"]
            for r in server.requests
            if "[klong-draft:subtree]" in r["messages"][0]["content"]
        ]
        assert subtree_prompts and all("<example>" in p for p in subtree_prompts)
        # the code channel: the learning rate only the config states reaches the addendum, the code's names do not
        addendum = (out / "addendum.md").read_text()
        assert "The learning rate is 0.05." in addendum and "gated_block" not in addendum
        steps = sorted(p.name for p in (out / "steps").iterdir())
        assert steps[:4] == ["01_elements.json", "02_evidence.json", "03_addendum.json", "04_skeleton.json"]
        assert steps[-1].endswith("_weights.json") and calls == len(steps)
        # a second run (not resuming) replays every step from the sidecar: zero model calls, identical rubric
        again = run_draft(tmp_path, cfg, resume=False)
        assert len(server.requests) == calls
        assert json.loads((out / "rubric.json").read_text()) == rubric
        info = json.loads((out / "draft.json").read_text())
        assert info["model_calls"] == 0 and info["replayed_steps"] == len(steps)
        assert "0 model calls" in again[0].notes["draft"]


def test_built_in_fake_model_and_resume(tmp_path):
    make_factory(tmp_path, [tiny_record(tmp_path), tiny_record(tmp_path, "no-md").model_copy(update={"files": {}})])
    records = run_draft(tmp_path, draft_config(model="fake"))
    assert records[0].active and records[1].drop.stage == "draft" and "no markdown" in records[1].drop.reason
    assert (tmp_path / "draft" / "config.yaml").exists()
    # resuming skips the done papers, and still reports each one to the progress display
    seen: list[str] = []
    again = run_draft(tmp_path, draft_config(model="fake"), progress=lambda r: seen.append(r.key))
    assert [r.key for r in again] == [r.key for r in records] == seen


def test_invalid_json_is_retried_with_the_error_fed_back_then_fails_clearly(tmp_path):
    make_factory(tmp_path)
    with FakeOpenAIServer(lambda body: {"content": "Sure! Here is the rubric: {oops"}) as server:
        cfg = draft_config(model="openai:bad", base_url=server.base_url, validation_retries=2)
        client = DraftClient(cfg, tmp_path / "steps")
        with pytest.raises(DraftError) as err:
            import asyncio

            asyncio.run(client.step(1, "elements", prompts.elements("T", "paper", ""), Elements))
        assert len(server.requests) == 3
        assert (
            "elements" in str(err.value)
            and "not valid JSON" in str(err.value)
            and "01_elements.failed.json" in str(err.value)
        )
        # the rejection was shown to the model on the retry
        assert "Your answer was rejected: the answer is not valid JSON" in server.requests[1]["messages"][-1]["content"]
        failed = json.loads((tmp_path / "steps" / "01_elements.failed.json").read_text())
        assert len(failed["attempts"]) == 3
        # at stage level the paper is dropped with that reason
        records = run_draft(tmp_path, cfg)
        assert records[0].drop is not None and "no valid answer after 3 attempts" in records[0].drop.reason


def test_a_validation_error_is_fed_back_and_the_retry_succeeds(tmp_path):
    good = json.dumps({"claims": [], "method_components": [{"name": "m", "description": "d"}]})
    replies = [{"content": json.dumps({"claims": []})}, {"content": good}]
    with FakeOpenAIServer(replies) as server:
        client = DraftClient(ClientConfig(model="openai:x", base_url=server.base_url), tmp_path / "steps")
        import asyncio

        answer = asyncio.run(client.step(1, "elements", prompts.elements("T", "paper", ""), Elements))
        assert answer.method_components[0].name == "m" and client.calls == 2
        assert "at least one method component" in server.requests[1]["messages"][-1]["content"]


def test_endpoint_errors_are_retried_by_the_sdk(tmp_path):
    good = json.dumps({"claims": [], "method_components": [{"name": "m", "description": "d"}]})
    with FakeOpenAIServer([{"status": 503}, {"status": 429}, {"content": good}]) as server:
        client = DraftClient(ClientConfig(model="openai:x", base_url=server.base_url, max_retries=3), tmp_path / "s")
        import asyncio

        assert asyncio.run(client.step(1, "elements", prompts.elements("T", "p", ""), Elements)).method_components
        assert len(server.requests) == 3


def test_schemas_enforce_pb_conventions():
    with pytest.raises(ValueError, match="inner node"):
        DraftNode.model_validate(
            {
                "requirements": "x",
                "task_category": "Code Development",
                "sub_tasks": [
                    {
                        "requirements": "y",
                        "task_category": "Code Development",
                        "finegrained_task_category": "Method Implementation",
                        "quote": "q",
                    }
                ],
            }
        )
    with pytest.raises(ValueError, match="quote"):
        DraftNode.model_validate(
            {
                "requirements": "x",
                "task_category": "Code Development",
                "finegrained_task_category": "Method Implementation",
            }
        )
    with pytest.raises(ValueError):
        DraftNode.model_validate(
            {
                "requirements": "x",
                "task_category": "Code Development",
                "finegrained_task_category": "Made Up",
                "quote": "q",
            }
        )
    with pytest.raises(ValueError):
        Skeleton.model_validate({"children": [{"requirements": "a", "leaf_budget": 3}]})


def _leaf(text):
    return {
        "requirements": text,
        "task_category": "Code Development",
        "finegrained_task_category": "Method Implementation",
        "quote": text,
    }


def test_assemble_collapses_single_children_seeds_ids_and_moves_grounding_out():
    sk = Skeleton.model_validate(
        {"children": [{"requirements": "A", "leaf_budget": 2}, {"requirements": "B", "leaf_budget": 1}]}
    )
    subs = [
        Subtree.model_validate(
            {"sub_tasks": [{"requirements": "A1", "sub_tasks": [_leaf("only leaf of A1")]}, _leaf("leaf A2")]}
        ),
        Subtree.model_validate({"sub_tasks": [_leaf("single leaf of B")]}),
    ]
    tree = build_tree("T", sk, subs, seed="p")
    rubric, grounding = finalize(tree)
    a, b = rubric["sub_tasks"]
    assert [c["requirements"] for c in a["sub_tasks"]] == ["only leaf of A1", "leaf A2"]
    assert b["sub_tasks"] == [] and b["requirements"] == "single leaf of B" and b["task_category"] == "Code Development"
    assert "_grounding" not in json.dumps(rubric) and grounding[b["id"]]["quote"] == "single leaf of B"
    again, _ = finalize(build_tree("T", sk, subs, seed="p"))
    other, _ = finalize(build_tree("T", sk, subs, seed="q"))
    assert again == rubric and other["id"] != rubric["id"]
    assert len({n for n in json.dumps(rubric).split('"id": ')[1:]}) == 5
    pruned = drop_leaves(rubric, {a["sub_tasks"][0]["id"]})
    assert pruned["sub_tasks"][0]["requirements"] == "leaf A2"  # A collapsed into its remaining leaf
    assert (
        collapse(
            {"requirements": "r", "weight": 2, "sub_tasks": [{"requirements": "x", "weight": 1, "sub_tasks": []}]}
        )["weight"]
        == 2
    )


def test_fewshot_examples_are_real_deterministic_and_trimmed():
    pb = shared_path("paperbench", "papers")
    one = prompts.fewshot_examples(pb, "paper-a/1", n=2, max_chars=3000)
    assert one == prompts.fewshot_examples(pb, "paper-a/1", n=2, max_chars=3000)
    assert one != prompts.fewshot_examples(pb, "paper-b/7", n=2, max_chars=3000)
    assert len(one) == 2 and all(len(e) <= 3000 for e in one)
    node = json.loads(one[0])
    assert "requirements" in node and "id" not in node
    assert prompts.fewshot_examples(None, "x", n=1)  # the built-in example


def test_code_summary_is_bounded_and_lists_entry_points_and_configs(tmp_path):
    text = summarize_code(TINY / "code", max_chars=100_000)
    assert "train.py (entry point)" in text and "learning_rate: 0.05" in text and "README" in text
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("secret")
    (tmp_path / "big.py").write_text("x = 1\n" * 100_000)
    assert ".git" not in summarize_code(tmp_path)
    assert len(summarize_code(TINY / "code", max_chars=300)) < 400
    assert summarize_code(None) == ""


def test_fake_drafter_reads_sections():
    heads = [h for h, _ in sections((TINY / "paper.md").read_text())]
    assert "Gated residual blocks" in heads and "CIFAR-10 classification results" in heads


def test_draft_paper_without_code_has_no_code_facts(tmp_path):
    import asyncio

    rec = tiny_record(tmp_path, code=False)
    with FakeOpenAIServer(FakeDrafter()) as server:
        info = asyncio.run(draft_paper(rec, tmp_path, draft_config(model="openai:f", base_url=server.base_url)))
    assert info["code_summary_chars"] == 0
    assert "learning rate is 0.05" not in (tmp_path / "draft" / "gatenorm" / "addendum.md").read_text()


def test_record_mode_saves_fixtures_that_a_later_offline_run_replays(tmp_path):
    from klong.factory.fake_drafter import RecordingDrafter, request_key

    fixtures = tmp_path / "fixtures"
    messages = prompts.elements("T", "## 2 Method\n\nWe gate every residual branch with a sigmoid.", "")
    with FakeOpenAIServer(FakeDrafter()) as real:  # stands in for the real endpoint
        with FakeOpenAIServer(RecordingDrafter("openai:real", real.base_url, "NO_KEY", fixtures)) as proxy:
            import asyncio

            client = DraftClient(ClientConfig(model="openai:x", base_url=proxy.base_url), tmp_path / "s1")
            recorded = asyncio.run(client.step(1, "elements", messages, Elements))
        assert len(real.requests) == 1
    saved = fixtures / f"{request_key(messages)}.json"
    assert Elements.model_validate_json(json.loads(saved.read_text())["content"]) == recorded
    edited = {"claims": ["from the fixture"], "method_components": [{"name": "fixture", "description": "d"}]}
    saved.write_text(json.dumps({"content": json.dumps(edited)}))
    assert FakeDrafter(fixtures)({"messages": messages})["content"] == json.dumps(edited)
