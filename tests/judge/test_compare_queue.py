import asyncio
import json

import pytest

from klong.judge.compare import compare_graded
from klong.judge.queue import GradingQueue
from klong.rubric.graded import GradedNode, read_graded
from tests.shared import shared_path


def _tree(scores, cats=("Code Development", "Code Development", "Code Execution", "Code Execution",
                        "Result Analysis", "Result Analysis")):  # fmt: skip
    leaves = [GradedNode(id=f"l{i}", requirements="r", weight=1, score=s, task_category=c)
              for i, (s, c) in enumerate(zip(scores, cats, strict=True))]  # fmt: skip
    return GradedNode(id="root", requirements="r", weight=1, sub_tasks=leaves)


def test_agreement_numbers_counted_by_hand():
    # reference 1 1 0 0 1 0, other 1 0 0 1 1 1 -> tp 2, fn 1, tn 1, fp 2
    result = compare_graded(_tree([1, 1, 0, 0, 1, 0]), _tree([1, 0, 0, 1, 1, 1]))
    o = result["overall"]
    assert (o["tp"], o["fn"], o["tn"], o["fp"]) == (2, 1, 1, 2)
    assert o["agreement"] == 0.5 and o["precision"] == 0.5 and o["recall"] == pytest.approx(2 / 3)
    assert o["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    cd, ce, ra = (result["per_category"][c] for c in ("Code Development", "Code Execution", "Result Analysis"))
    assert (cd["precision"], cd["recall"], cd["f1"]) == (1.0, 0.5, pytest.approx(2 / 3))
    assert (ce["agreement"], ce["f1"]) == (0.5, 0.0)
    assert (ra["precision"], ra["recall"]) == (0.5, 1.0)


def test_human_gradings():
    path = shared_path("paperbench", "judge_eval", "all-in-one", "expected_result.json")
    human, _ = read_graded(path)
    assert compare_graded(human, human)["overall"]["agreement"] == 1.0
    everything = human.model_copy(deep=True)
    for _, leaf in everything.leaves():
        leaf.score = 1.0
    raw = json.loads(path.read_text())
    positives, total = 0, 0
    stack = [raw]
    while stack:
        node = stack.pop()
        if node["sub_tasks"]:
            stack += node["sub_tasks"]
        else:
            total += 1
            positives += node["score"] >= 0.5
    result = compare_graded(human, everything)["overall"]
    assert result["leaves"] == total == 174 and result["agreement"] == pytest.approx(positives / total)
    assert result["recall"] == 1.0


def test_queue_grades_evaluation_before_training():
    async def main():
        release = asyncio.Event()

        async def grade(job):
            if job == "t1":
                await release.wait()
            return job.upper()

        async with GradingQueue(grade, workers=1) as queue:
            futures = [queue.submit("t1", "train")]
            await asyncio.sleep(0.01)  # t1 is being graded
            futures += [queue.submit("t2", "train"), queue.submit("t3", "train"), queue.submit("e1", "eval")]
            assert queue.depth == 3
            release.set()
            results = await asyncio.gather(*futures)
        return queue.order, results, queue.latencies

    order, results, latencies = asyncio.run(main())
    assert order == ["t1", "e1", "t2", "t3"] and results == ["T1", "T2", "T3", "E1"] and len(latencies) == 4


def test_queue_reports_failures_to_the_caller():
    async def main():
        async def grade(job):
            raise ValueError(f"bad {job}")

        async with GradingQueue(grade, workers=2) as queue:
            future = queue.submit("x")
            with pytest.raises(ValueError, match="bad x"):
                await future

    asyncio.run(main())
