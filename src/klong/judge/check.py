"""The `check` judge: programmatic leaves, graded without a model.

A leaf's `check.command` runs with the submission folder as working directory, in a sandbox; exit status 0 scores 1.
Leaves without a check, and checks that need a reproduction the submission lacks, are invalid (score 0).
"""

from __future__ import annotations

from typing import Any

from klong.judge.base import LeafContext, LeafGrade
from klong.sandbox import SandboxConfig, make_sandbox


class CheckJudge:
    name = "check"
    judge_type = "check"
    cacheable = False

    def __init__(self, sandbox: str = "local", config: SandboxConfig | None = None):
        self.sandbox = sandbox
        self.config = config or SandboxConfig(output_head_bytes=2000, output_tail_bytes=2000)

    def identity(self) -> dict[str, Any]:
        return {"judge_type": self.judge_type, "sandbox": self.sandbox}

    async def grade_leaf(self, ctx: LeafContext) -> LeafGrade:
        check = ctx.node.check
        if check is None:
            return LeafGrade(0.0, False, "no programmatic check on this leaf")
        if check.needs_reproduction and ctx.submission.reproduction is None:
            return LeafGrade(0.0, False, "this check needs a reproduced submission (run `klong reproduce` first)")
        box = make_sandbox(self.sandbox, ctx.submission.root, self.config)
        await box.start()
        try:
            result = await box.run(["bash", "-c", check.command], timeout=check.timeout)
        finally:
            await box.close()
        passed = result.exit_code == 0
        note = (
            "passed"
            if passed
            else (f"failed ({result.killed_reason})" if result.killed_reason else f"failed (exit {result.exit_code})")
        )
        out = result.output.strip()
        return LeafGrade(
            1.0 if passed else 0.0, True, f"check {note}: {check.command}" + (f"\n{out[-1000:]}" if out else "")
        )
