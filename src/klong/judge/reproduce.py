"""Run a submission's `reproduce.sh` in a fresh copy, in a sandbox, and record what happened.

The copy gets `reproduce.log` (output, head and tail when huge) and `reproduce.json` (start time, duration, exit
status, whether it timed out); the judge then shows them to execution and result leaves.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from klong.exceptions import InputFileError
from klong.io import atomic_write_json, atomic_write_text
from klong.judge.submission import REPRODUCE_LOG, REPRODUCE_META, REPRODUCE_SCRIPT, ReproductionInfo
from klong.sandbox import SandboxConfig, make_sandbox


async def reproduce(submission_dir: str | Path, out_dir: str | Path, *, sandbox: str = "local", timeout: float = 3600.0,
                    config: SandboxConfig | None = None, overwrite: bool = False) -> ReproductionInfo:  # fmt: skip
    src, dst = Path(submission_dir).resolve(), Path(out_dir).resolve()
    if not (src / REPRODUCE_SCRIPT).is_file():
        raise InputFileError(src / REPRODUCE_SCRIPT, "the submission has no reproduce.sh")
    if dst.exists():
        if not overwrite:
            raise InputFileError(dst, "exists already (pass --overwrite to reproduce again)")
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(REPRODUCE_LOG, REPRODUCE_META))
    config = config or SandboxConfig(output_head_bytes=1_000_000, output_tail_bytes=1_000_000)
    box = make_sandbox(sandbox, dst, config)
    await box.start()
    # the start time on the file system's own clock (file mtimes are coarser than time.time())
    marker = dst / ".klong-reproduce-start"
    marker.touch()
    started = min(time.time(), marker.stat().st_mtime)
    marker.unlink()
    try:
        result = await box.run(["bash", REPRODUCE_SCRIPT], timeout=timeout)
    finally:
        await box.close()
    info = ReproductionInfo(started_at=started, duration=result.duration, exit_code=result.exit_code,
                            timed_out=result.timed_out, killed_reason=result.killed_reason, sandbox=sandbox)  # fmt: skip
    atomic_write_text(dst / REPRODUCE_LOG, result.output)
    atomic_write_json(dst / REPRODUCE_META, info.model_dump(), indent=2)
    return info
