"""The trainer's decisions without ROS: the retraining schedule, idleness, the adapter registry."""

import pytest
import torch

from taskmem_nodes.adapters import AdapterRegistry
from taskmem_nodes.models.steering import AdapterError, AdapterInfo, SteeringAdapter
from taskmem_nodes.train.trainer import IdleDetector, RetrainSchedule


def test_schedule_retrains_at_10_30_50_then_every_20():
    schedule = RetrainSchedule()
    assert [schedule.next_threshold(n) for n in (0, 9, 10, 29, 30, 50, 69, 70)] == [10, 10, 30, 30, 50, 70, 70, 90]
    assert schedule.due({"location": 9, "count": 10}, {}) == ["count"]
    assert schedule.due({"location": 31, "count": 12}, {"location": 12, "count": 10}) == ["location"]


def test_idle_by_silence_or_by_signal():
    idle = IdleDetector(idle_after=60.0, started=0.0)
    assert not idle.idle(59.0) and idle.idle(60.0)
    idle.clip_seen(100.0)
    assert not idle.idle(150.0) and idle.idle(161.0)
    idle.signal = False  # undocked: busy even when the camera is quiet
    assert not idle.idle(1000.0)
    idle.signal = True
    assert idle.idle(101.0)


def test_registry_uses_released_versions_and_rolls_back(tmp_path):
    registry = AdapterRegistry(tmp_path)
    assert registry.current_version == "" and registry.current() is None
    for version in ("0001-count", "0002-count"):
        SteeringAdapter(torch.ones(4), AdapterInfo(version, "m", 0)).save(registry.path(version))
        registry.use(version, "released")
    assert registry.current_version == "0002-count"
    assert [i.version for i in registry.released()] == ["0001-count", "0002-count"]
    registry.use("0001-count", "rollback")
    assert registry.current().version == "0001-count"
    with pytest.raises(AdapterError):
        registry.use("0009-never")
    assert registry.current_version == "0001-count"
    registry.use("", "base policy")
    assert registry.current_version == "" and [h["reason"] for h in registry.history()] == [
        "released", "released", "rollback", "base policy"]


def test_adapters_cli_lists_and_records_a_rollback_without_a_running_graph(tmp_path, domain_id):
    import subprocess
    import sys

    from taskmem_nodes.runner import ros_environment

    registry = AdapterRegistry(tmp_path)
    for version in ("0001-count", "0002-count"):
        SteeringAdapter(torch.ones(4), AdapterInfo(version, "m", 0, task_types=["count"])).save(registry.path(version))
    registry.use("0002-count", "released")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "taskmem_nodes.cli", "adapters", *args, "--adapters",
                               str(tmp_path)], env=ros_environment(domain_id), capture_output=True, text=True,
                              timeout=120)

    listed = cli("list")
    assert listed.returncode == 0 and "0001-count" in listed.stdout and "in use: 0002-count" in listed.stdout
    used = cli("use", "0001-count", "--domain-id", str(domain_id))
    assert used.returncode == 0 and "no trainer answered" in used.stdout, used.stdout + used.stderr
    assert registry.current_version == "0001-count"
    refused = cli("use", "0007-never", "--domain-id", str(domain_id))
    assert refused.returncode != 0 and registry.current_version == "0001-count"
