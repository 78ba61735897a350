"""The agent as an attacker: what it must not read, keep running, or fill (real sandboxes, real processes).

Marked by what they need: `bwrap` installed; some only mean something when klong runs as root (CI runs as root).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from klong.sandbox import SandboxConfig, make_sandbox
from klong.sandbox.watch import MARKER, Watch
from tests.sandbox.test_sandboxes import _cmdline, run

REPO = Path(__file__).resolve().parents[2]
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="meaningful only when klong runs as root")
CREDENTIALS = [".huggingface/token", ".kaggle/kaggle.json", ".pypirc", ".config/openai/key", ".config/gh/hosts.yml",
               ".env", ".bash_history", ".cache/klong/judge/x.json", ".ssh/id_rsa", ".aws/credentials", ".netrc",
               ".docker/config.json", ".git-credentials", ".config/gcloud/credentials.db",
               ".cache/huggingface/token"]  # fmt: skip


def _alive(marker: str) -> list[str]:
    return [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith(marker)]


@needs_bwrap
@needs_root
def test_bwrap_under_root_runs_the_agent_as_an_unprivileged_host_user(tmp_path):
    box = make_sandbox("bwrap", tmp_path / "ws")
    r = run(box, "cat /etc/shadow >/dev/null 2>&1 && echo SHADOW-READ; ls /root 2>&1 | head -1; echo made > mine; "
                 "python3 -c 'print(\"python ok\")'; id -u")  # fmt: skip
    assert "SHADOW-READ" not in r.output and "python ok" in r.output
    made = tmp_path / "ws" / "mine"
    assert made.read_text() == "made\n"
    assert made.stat().st_uid == SandboxConfig().uid != 0  # host view: the agent is not root


@needs_bwrap
def test_bwrap_shows_an_allowlist_only(tmp_path, monkeypatch):
    """Sibling task dirs, rubric sets and run dirs anywhere on the machine, and credentials in the home folder, are out
    of sight: only system folders, the Python installation, and the workspace are mounted."""
    outside = Path(tempfile.mkdtemp(prefix="klong-escape-", dir=REPO))  # not under /tmp, not a system folder
    try:
        (outside / "tasks" / "other").mkdir(parents=True)
        (outside / "tasks" / "other" / "rubric.json").write_text('{"leaf": "criteria"}')
        home = outside / "home"
        for cred in CREDENTIALS:
            (home / cred).parent.mkdir(parents=True, exist_ok=True)
            (home / cred).write_text("s3cr3t-credential")
        monkeypatch.setenv("HOME", str(home))
        box = make_sandbox("bwrap", tmp_path / "ws")
        paths = " ".join(str(home / c) for c in CREDENTIALS)
        r = run(box, f"cat {outside}/tasks/other/rubric.json {paths} 2>/dev/null; ls {outside} {Path.home()} 2>&1; "
                     f"find / -name rubric.json -not -path '/proc/*' 2>/dev/null | head; echo done")  # fmt: skip
        assert "criteria" not in r.output and "s3cr3t" not in r.output and "rubric.json" not in r.output
        assert r.output.strip().endswith("done")
    finally:
        shutil.rmtree(outside, ignore_errors=True)


@needs_bwrap
def test_bwrap_disk_is_bounded(tmp_path):
    config = SandboxConfig(tmp_bytes=16 << 20, workspace_bytes=32 << 20, disk_check_seconds=0.2)
    box = make_sandbox("bwrap", tmp_path / "ws", config)
    tmp = run(box, "head -c 40000000 /dev/zero > /tmp/big; echo rc=$?")
    assert "rc=0" not in tmp.output  # the sandbox's /tmp is a bounded tmpfs
    one_file = run(box, "head -c 40000000 /dev/zero > big; echo rc=$?", timeout=20)
    assert "rc=0" not in one_file.output  # no file larger than the workspace bound (RLIMIT_FSIZE)
    many = run(
        box, "for i in $(seq 1 40); do head -c 2000000 /dev/zero > f$i; sleep 0.05; done; echo rc=$?", timeout=30
    )
    assert many.killed_reason == "workspace disk limit"


def test_local_processes_never_outlive_their_command(tmp_path):
    """`setsid`, `nohup`, a TERM-ignoring `disown`ed loop: whatever leaves the process group is killed when the
    command ends (found by the environment marker it inherited)."""
    box = make_sandbox("local", tmp_path / "ws")
    marker = "klong-escapee"
    r = run(box, f"setsid bash -c 'exec -a {marker}-1 sleep 300' & nohup bash -c 'exec -a {marker}-2 sleep 300' "
                 f">/dev/null 2>&1 & (trap '' TERM; exec -a {marker}-3 sleep 300) & disown; sleep 0.3; echo started")  # fmt: skip
    assert "started" in r.output
    time.sleep(0.3)
    assert _alive(marker) == []


def test_what_a_killed_klong_left_running_is_killed_on_resume(tmp_path):
    """klong itself is SIGKILLed while a tool command runs: the command's process survives it. A new sandbox on the
    same workspace (the resumed episode) kills it before running anything, so a call never runs twice at once."""
    ws = tmp_path / "ws"
    script = (f"import asyncio; from klong.sandbox import make_sandbox; box = make_sandbox('local', {str(ws)!r}); "
              "asyncio.run(box.start()); asyncio.run(box.run(['bash', '-c', 'exec -a klong-orphan sleep 300'], timeout=300))")  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.monotonic() + 30
    while not _alive("klong-orphan"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.2)
    assert _alive("klong-orphan"), "the orphan outlived klong (what this test is about)"
    asyncio.run(make_sandbox("local", ws).reclaim())  # what the runtime does before a resumed episode
    time.sleep(0.2)
    assert _alive("klong-orphan") == []


def test_one_watcher_for_every_command(tmp_path):
    """Twenty commands at once share the watcher's passes over /proc (not one scan per command per interval)."""
    box = make_sandbox("local", tmp_path / "ws")
    watch = Watch.shared()

    async def go():
        await box.start()
        before = watch.scans
        t0 = time.monotonic()
        results = await asyncio.gather(*(box.run(["sleep", "1"], timeout=10) for _ in range(20)))
        return results, watch.scans - before, time.monotonic() - t0

    results, scans, seconds = asyncio.run(go())
    assert all(r.exit_code == 0 for r in results)
    assert scans <= seconds / watch.interval + 3, (scans, seconds)  # 20 per-command watchdogs would make ~100


def test_marker_is_set_for_every_command(tmp_path):
    box = make_sandbox("local", tmp_path / "ws")
    assert f"{MARKER}=" in run(box, "env").output


@needs_bwrap
def test_the_agent_can_change_what_the_file_tools_wrote(tmp_path):
    """As root, the agent is another user: the files klong's tools write (and the task files) are handed to it."""
    from klong.agent.clock import VirtualClock
    from klong.agent.config import AgentConfig
    from klong.agent.tools import Toolbox
    from klong.agent.workspace import Workspace
    from klong.schema import ToolCall, ToolFunction
    from tests.tasks import make_task

    task = make_task(tmp_path)
    box = make_sandbox("bwrap", tmp_path / "ws")
    ws = Workspace(box.workspace, box.root, box.owner)
    ws.prepare(task)
    tools = Toolbox(task, ws, box, AgentConfig(mandatory_reading=False), VirtualClock())

    async def go():
        await box.start()
        try:
            for name, args in (("write_file", {"path": "submission/a/b.txt", "content": "one\n"}),
                               ("bash", {"command": "echo two >> submission/a/b.txt && echo more >> paper/paper.md && "
                                                    "mkdir submission/a/c && echo ok"})):  # fmt: skip
                out = await tools.execute(ToolCall(id="c", function=ToolFunction(name=name, arguments=args)))
            return out
        finally:
            await box.close()

    out = asyncio.run(go())
    assert "ok" in out.text and (ws.submission_dir / "a" / "b.txt").read_text() == "one\ntwo\n"


@pytest.mark.docker
def test_docker_confines_the_agent(tmp_path):
    """An unprivileged user, no network, no host path but the workspace, a read-only root, bounded /tmp and files,
    and Docker's own memory limit."""
    outside = Path(tempfile.mkdtemp(prefix="klong-escape-", dir=REPO))
    try:
        (outside / "rubric.json").write_text('{"leaf": "criteria"}')
        config = SandboxConfig(tmp_bytes=16 << 20, workspace_bytes=32 << 20, docker_memory="128m")
        box = make_sandbox("docker", tmp_path / "ws", config)
        r = run(box, f"id -u; cat {outside}/rubric.json 2>&1 | head -1; ls {REPO} 2>&1 | head -1; "
                     "touch /etc/x 2>/dev/null && echo ROOT-WRITABLE; "
                     "head -c 40000000 /dev/zero > /tmp/big 2>/dev/null || echo TMP-BOUNDED; "
                     "head -c 40000000 /dev/zero > big 2>/dev/null || echo FILE-BOUNDED; "
                     "python3 -c \"import socket; socket.create_connection(('1.1.1.1', 80), 2)\" 2>/dev/null || echo NO-NET; "
                     "python3 -c 'x = bytearray(400 << 20); print(len(x))' 2>/dev/null || echo MEMORY-BOUNDED; "
                     "echo made > mine", timeout=60)  # fmt: skip
        assert r.output.split()[0] != "0" and "criteria" not in r.output and "ROOT-WRITABLE" not in r.output
        for expected in ("TMP-BOUNDED", "FILE-BOUNDED", "NO-NET", "MEMORY-BOUNDED"):
            assert expected in r.output, (expected, r.output)
        assert (tmp_path / "ws" / "mine").stat().st_uid != 0
    finally:
        shutil.rmtree(outside, ignore_errors=True)
