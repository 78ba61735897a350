"""Shared fixtures: the real data in ../shared/data, a tiny random-weight model, and the marker tiers.

Tiers: `slow` runs with `--run-slow` (or KLONG_RUN_SLOW=1); `docker` needs a reachable Docker daemon; `gpu` needs CUDA;
`api` needs KLONG_API_TESTS=1 and real credentials; `trl` needs TRL installed (`pip install -e ".[trl]"`); `vllm` needs
`KLONG_VLLM_PYTHON` (a Python with vLLM, made by `.ci/vllm-env`: the default suite stays vLLM-free); `swebench` and
`mlebench` need `KLONG_SWEBENCH_PYTHON` / `KLONG_MLEBENCH_PYTHON` (a Python with that benchmark's package). Each skips
cleanly, saying why, when its infrastructure is missing.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

from tests.shared import shared_path


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="also run tests marked slow")


def _docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:
        return False


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    except ImportError:
        return False


def _python_from(env: str) -> bool:
    python = os.environ.get(env)
    return bool(python) and Path(python).exists()


def _vllm_available() -> bool:
    return _python_from("KLONG_VLLM_PYTHON")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow") or os.environ.get("KLONG_RUN_SLOW") == "1"
    checks = {
        "slow": (lambda: run_slow, "slow tier: run with --run-slow"),
        "docker": (_docker_available, "no Docker daemon reachable"),
        "gpu": (lambda: __import__("torch").cuda.is_available(), "no CUDA GPU"),
        "api": (lambda: os.environ.get("KLONG_API_TESTS") == "1", "real-endpoint tests: set KLONG_API_TESTS=1"),
        "ray": (lambda: _importable("ray"), 'Ray not installed: pip install -e ".[ray]"'),
        "trl": (lambda: _importable("trl"), 'TRL not installed: pip install -e ".[trl]"'),
        "swebench": (
            lambda: _python_from("KLONG_SWEBENCH_PYTHON"),
            "swebench tier: set KLONG_SWEBENCH_PYTHON to a Python with swebench>=4.1,<5 (.ci/run makes one)",
        ),
        "mlebench": (
            lambda: _python_from("KLONG_MLEBENCH_PYTHON"),
            "mlebench tier: set KLONG_MLEBENCH_PYTHON to a Python with MLE-bench's mlebench package",
        ),
        "vllm": (_vllm_available, "vllm tier: set KLONG_VLLM_PYTHON to a Python with vLLM (.ci/vllm-env makes one)"),
    }
    cache: dict[str, bool] = {}
    for item in items:
        for marker, (available, why) in checks.items():
            if marker in item.keywords:
                if marker not in cache:
                    cache[marker] = bool(available())
                if not cache[marker]:
                    item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def qwen_tokenizer_dir() -> Path:
    return shared_path("tokenizers", "qwen2.5")


@pytest.fixture(scope="session")
def qwen_tokenizer(qwen_tokenizer_dir):
    from klong.models.tokenizer import load_tokenizer

    return load_tokenizer(qwen_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, qwen_tokenizer_dir) -> Path:
    """A tiny random-weight Qwen2 model saved with the real Qwen2.5 tokenizer; loads as `hf:PATH`."""
    from klong.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), qwen_tokenizer_dir)
