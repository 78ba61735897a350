import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_sft_throughput_benchmark_runs_on_cpu():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "sft_throughput.py"
    out = subprocess.run([sys.executable, str(script), "--model", "tiny", "--window", "1024", "--steps", "2"],
                         capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio klong/plain" in out.stdout and "klong" in out.stdout
