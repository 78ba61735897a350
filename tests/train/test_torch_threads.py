"""The choice of torch's CPU thread count (`klong.train.config.choose_torch_threads`), from fake inputs; that the
trainers apply it is checked on the real `klong sft` / `klong rl` in tests/test_cli_conventions.py."""

import pytest

from klong.exceptions import ConfigError
from klong.train.config import cgroup_cpu_quota, choose_torch_threads, parse_cpu_max


def choose(configured=None, env=None, affinity=8, quota=None):
    return choose_torch_threads(configured, env=env or {}, affinity=affinity, cpu_quota=quota)


def test_the_cores_this_process_may_use():
    assert choose(affinity=8).threads == 8
    assert choose(affinity=64, quota=2.0).threads == 2  # a container on a big host: the quota, not the host's cores
    assert choose(affinity=64, quota=1.5).threads == 1  # more threads than the quota would be throttled
    assert choose(affinity=64, quota=0.5).threads == 1
    assert choose(affinity=4, quota=16.0).threads == 4  # the affinity mask is the tighter bound
    choice = choose(affinity=64, quota=2.0)
    assert "cgroup quota of 2 CPUs" in choice.reason and "64 cores" in choice.reason


def test_shared_by_the_local_processes():
    assert choose(env={"LOCAL_WORLD_SIZE": "4"}, affinity=16).threads == 4
    assert choose(env={"LOCAL_WORLD_SIZE": "8"}, affinity=2).threads == 1
    assert "shared by 4 local processes" in choose(env={"LOCAL_WORLD_SIZE": "4"}, affinity=16).reason
    assert choose(env={"LOCAL_WORLD_SIZE": "junk"}, affinity=4).threads == 4


def test_overrides_in_order():
    env = {"KLONG_TORCH_THREADS": "3", "OMP_NUM_THREADS": "5", "LOCAL_WORLD_SIZE": "2"}
    assert choose(6, env=env).threads == 6 and choose(6, env=env).reason == "torch_threads in the config"
    assert choose(env=env) == (3, "KLONG_TORCH_THREADS=3")
    assert choose(env={"OMP_NUM_THREADS": "5"}, affinity=2) == (5, "OMP_NUM_THREADS=5")  # explicit: respected
    assert choose(env={"OMP_NUM_THREADS": "4,2"}).threads == 4  # OpenMP's nested-levels list
    assert choose(env={"OMP_NUM_THREADS": ""}, affinity=3).threads == 3


def test_bad_settings_are_errors_naming_them():
    with pytest.raises(ConfigError, match="KLONG_TORCH_THREADS='many'"):
        choose(env={"KLONG_TORCH_THREADS": "many"})
    with pytest.raises(ConfigError, match="KLONG_TORCH_THREADS='0'"):
        choose(env={"KLONG_TORCH_THREADS": "0"})
    with pytest.raises(ConfigError, match="torch_threads must be at least 1"):
        choose(0)


def test_cgroup_quota_files(tmp_path):
    assert parse_cpu_max("200000 100000") == 2.0 and parse_cpu_max("max 100000") is None
    assert parse_cpu_max("") is None and parse_cpu_max("x y") is None
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(v2) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) is None
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("400000\n")
    assert cgroup_cpu_quota(v1) == 4.0
    assert cgroup_cpu_quota(tmp_path / "none") is None
