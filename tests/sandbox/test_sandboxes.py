"""Real sandboxes in temporary folders: limits, isolation, environment."""

import asyncio
import os
import shutil
import time

import pytest

from klong.sandbox import SandboxConfig, make_sandbox

KINDS = [
    "local",
    pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")),
    pytest.param("docker", marks=pytest.mark.docker),
]


def run(box, command, timeout=10.0, stdin=None):
    async def go():
        await box.start()
        try:
            return await box.run(["bash", "-c", command], timeout=timeout, stdin=stdin)
        finally:
            await box.close()

    return asyncio.run(go())


@pytest.mark.parametrize("kind", KINDS)
def test_basic_command(tmp_path, kind):
    box = make_sandbox(kind, tmp_path / "ws")
    r = run(box, "echo hello; echo err >&2; pwd; exit 3")
    assert r.exit_code == 3 and "hello" in r.output and "err" in r.output and box.root in r.output
    assert run(box, "cat", stdin="piped").output == "piped"


@pytest.mark.parametrize("kind", KINDS)
def test_timeout_kills_the_whole_group(tmp_path, kind):
    box = make_sandbox(kind, tmp_path / "ws")
    marker = "klong-test-sleeper-" + kind
    t0 = time.monotonic()
    r = run(box, f"(exec -a {marker} sleep 300) & (exec -a {marker} sleep 300) & wait", timeout=1.0)
    assert r.timed_out and r.exit_code is None and time.monotonic() - t0 < 6
    time.sleep(0.3)
    alive = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith(marker)]
    assert alive == []


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.parametrize("kind", KINDS)
def test_output_is_bounded_head_and_tail(tmp_path, kind):
    box = make_sandbox(
        kind, tmp_path / "ws", SandboxConfig(output_head_bytes=100, output_tail_bytes=50, max_output_bytes=20_000_000)
    )
    r = run(box, "echo START; seq 1 200000; echo END")
    assert r.output.startswith("START") and r.output.rstrip().endswith("END")
    assert "bytes of output cut" in r.output and len(r.output) < 400 and r.output_bytes > 1_000_000
    flood = run(box, "yes klong-flood-line", timeout=30)
    assert flood.killed_reason == "too much output" and flood.output_bytes >= 20_000_000


@pytest.mark.parametrize("kind", KINDS)
def test_fork_storm_is_bounded(tmp_path, kind):
    box = make_sandbox(kind, tmp_path / "ws", SandboxConfig(max_processes=40))
    t0 = time.monotonic()
    r = run(box, "for i in $(seq 1 500); do sleep 30 & done; wait", timeout=5 if kind == "docker" else 20)
    if kind == "docker":  # Docker's own pids limit refuses the forks beyond the bound; the timeout ends the rest
        assert "fork" in r.output and "Resource temporarily unavailable" in r.output
    else:
        assert r.killed_reason == "too many processes" and time.monotonic() - t0 < 10


@pytest.mark.parametrize("kind", KINDS)
def test_only_named_env_vars_pass(tmp_path, kind, monkeypatch):
    monkeypatch.setenv("KLONG_TEST_SECRET", "s3cr3t")
    monkeypatch.setenv("KLONG_TEST_SHARED", "visible")
    box = make_sandbox(kind, tmp_path / "ws", SandboxConfig(env=["KLONG_TEST_SHARED"]))
    out = run(box, "env").output
    assert "KLONG_TEST_SHARED=visible" in out and "s3cr3t" not in out


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")
def test_bwrap_isolation(tmp_path):
    secret_dir = tmp_path / "task"
    secret_dir.mkdir()
    (secret_dir / "rubric.json").write_text('{"secret": true}')
    box = make_sandbox("bwrap", tmp_path / "ws", SandboxConfig(hide_paths=[str(secret_dir)]))
    r = run(
        box,
        f"""
        touch /usr/klong-x 2>/dev/null && echo SYSTEM-WRITABLE
        touch /workspace/ok && echo WORKSPACE-WRITABLE
        cat {secret_dir}/rubric.json 2>/dev/null || echo HIDDEN
        python3 -c "import socket; socket.create_connection(('1.1.1.1', 80), 2)" 2>/dev/null || echo NO-NETWORK
        id -u
    """,
    )
    assert "SYSTEM-WRITABLE" not in r.output and "WORKSPACE-WRITABLE" in r.output
    assert "HIDDEN" in r.output and "secret" not in r.output and "NO-NETWORK" in r.output
    assert r.output.strip().endswith("1000")
    assert (tmp_path / "ws" / "ok").exists()
    # a process that detaches (setsid, background) still dies with the command: PID namespace
    marker = "klong-detached-sleeper"
    run(box, f"setsid bash -c 'exec -a {marker} sleep 300' & sleep 0.2; echo started")
    time.sleep(0.3)
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith(marker)]


@pytest.mark.docker
def test_docker_sandbox(tmp_path):
    box = make_sandbox("docker", tmp_path / "ws")
    r = run(box, "echo hi > /workspace/f; cat /workspace/f; id -u")
    assert "hi" in r.output and (tmp_path / "ws" / "f").exists()
    assert run(box, "sleep 30", timeout=2).timed_out
