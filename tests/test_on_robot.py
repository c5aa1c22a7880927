"""`taskmem train on-robot`: trainer, memorizer and store as real processes on a copy of a recorded
deployment; nobody triggers the trainer, it adapts when idle and due, and the memorizer swaps the adapter in."""

import pytest
import yaml
from phase_two_util import tiny_deployment

from taskmem_nodes.train.on_robot import run_on_robot


@pytest.mark.timeout(900)
def test_the_trainer_adapts_by_itself_and_the_memorizer_swaps_the_adapter_in(tmp_path, domain_id):
    warm, deployment, counts = tiny_deployment(tmp_path, {"count": 1.0})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"policy": str(warm), "rollouts": 3, "min_tasks": 1, "max_length_gap": 1000,
                                      "validation_every": 3, "min_win_rate": 0.0, "min_decided": 0,
                                      "dpo": {"steps": 2, "lr": 0.05}}))
    archived = sorted(p.name for p in (deployment / "clips").iterdir())
    report = run_on_robot(deployment, recipe, tmp_path / "run", [2], idle_after_seconds=2.0, domain_id=domain_id,
                          memorizer={"model_path": str(warm), "max_thinking_tokens": 16,
                                     "max_description_tokens": 16})
    assert report["task_types"] == ["count"] and report["pairs"]["judged"] > 0 and len(report["dpo"]) == 2
    graph = report["graph"]
    assert report["released"] and graph["trainer_result"].startswith(f"released {report['version']}")
    assert graph["memorizer_adapter"] == report["version"] == graph["memory_tagged"]  # swapped, then tagged
    assert graph["swap_pause_ms"] >= 0.0
    # the trainer worked on the robot's own copy: it archived the clip sent after the swap there, not here
    assert sorted(p.name for p in (deployment / "clips").iterdir()) == archived
    assert len(list((tmp_path / "run" / "robot" / "clips").iterdir())) == counts["clips"] + 1
