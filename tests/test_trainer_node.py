"""The trainer as a real lifecycle node process next to a real memorizer: idle and with a task type due, it
runs Phase Two on a tiny deployment by itself; TrainAdapter runs it by hand (with feedback; a goal can be
cancelled); a released adapter is announced and hot-swapped into the running memorizer, memories carry its
version, and set_adapter rolls back."""

import re

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from phase_two_util import tiny_deployment
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosutil import spin_until, subgraph, wait_for
from taskmem_interfaces.action import TrainAdapter
from taskmem_interfaces.msg import Clip as ClipMsg
from taskmem_interfaces.srv import SetAdapter

from taskmem_nodes.clips import Clip, Frame
from taskmem_nodes.nodes.conversions import clip_to_msg
from taskmem_nodes.nodes.qos import CLIP_QOS
from taskmem_nodes.runner import GraphRunner
from taskmem_nodes.store import MemoryStore


def clip_msg(index: int) -> ClipMsg:
    rng = np.random.default_rng(index)
    start = 9000.0 + 10 * index
    frames = tuple(Frame(start + i, rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)) for i in range(2))
    return clip_to_msg(Clip(f"live-{int(start * 1e9)}", start, start + 10, frames, 1.0), "cam")


def memories(db):
    if not db.exists():
        return []
    store = MemoryStore(db, readonly=True)
    try:
        return store.memories()
    finally:
        store.close()


@pytest.mark.timeout(1200)
def test_train_release_hot_swap_and_roll_back(tmp_path, domain_id, ros_context):
    warm, deployment, _ = tiny_deployment(tmp_path, {"count": 1.0})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"policy": str(warm), "rollouts": 3, "min_tasks": 1, "max_length_gap": 1000,
                                      "validation_every": 3, "min_win_rate": 0.0, "min_decided": 0,
                                      "dpo": {"steps": 2, "lr": 0.05}}))
    live_db = tmp_path / "live.db"
    runner = GraphRunner(subgraph("trainer", "memorizer", "store"), domain_id=domain_id, log_dir=tmp_path / "logs",
                         overrides={
        "trainer": {"store_path": str(deployment / "store.db"), "data_dir": str(tmp_path / "phase_two"),
                    "clip_archive_dir": str(deployment / "clips"), "recipe": str(recipe), "auto_train": True,
                    "idle_after_seconds": 2.0, "check_period_seconds": 1.0, "thresholds": [2], "then_every": 1000},
        "memorizer": {"model_path": str(warm), "max_thinking_tokens": 16, "max_description_tokens": 16,
                      "queue_size": 10},
        "store": {"database_path": str(live_db)},
    })
    node = Node("trainer_test", context=ros_context)
    train = ActionClient(node, TrainAdapter, "/train_adapter")
    set_adapter = node.create_client(SetAdapter, "/set_adapter")
    clips = node.create_publisher(ClipMsg, "clips", CLIP_QOS)
    status = {}
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: status.update(
        {s.name: {kv.key: kv.value for kv in s.values} for s in m.status}), 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def memorizer_adapter():
        return status.get("taskmem/memorizer", {}).get("adapter_version")

    def run_goal(cancel: bool):
        feedback = []
        sent = train.send_goal_async(TrainAdapter.Goal(task_types=["count"]), feedback_callback=feedback.append)
        handle = spin_until(executor, lambda: sent.done() and sent.result(), 30, "the goal to be accepted")
        assert handle.accepted
        if cancel:
            spin_until(executor, lambda: handle.cancel_goal_async(), 5, "cancel request")
        result = handle.get_result_async()
        return spin_until(executor, lambda: result.done() and result.result(), 600, "the goal's result"), feedback

    with runner:
        spin_until(executor, lambda: train.server_is_ready() and set_adapter.service_is_ready(), 120, "the trainer")
        spin_until(executor, lambda: memorizer_adapter() not in (None, "none"), 600,
                   "the trainer to train by itself when idle, and the memorizer to swap its adapter in")
        scheduled = memorizer_adapter()
        assert re.fullmatch(r"\d{4}-count", scheduled), scheduled
        assert "idle and due for count" in runner.log("trainer")

        cancelled, _ = run_goal(cancel=True)
        assert cancelled.status == 5 and not cancelled.result.released  # GoalStatus.STATUS_CANCELED

        done, feedback = run_goal(cancel=False)
        assert done.status == 4, runner.log("trainer")  # GoalStatus.STATUS_SUCCEEDED
        result = done.result
        assert result.released and re.fullmatch(r"\d{4}-count", result.version), result.message
        assert result.version != scheduled
        assert feedback and {f.feedback.stage for f in feedback} & {"judging candidates", "DPO steps"}
        spin_until(executor, lambda: memorizer_adapter() == result.version, 30, "the memorizer to hot-swap")

        spin_until(executor, lambda: clips.get_subscription_count() >= 2, 30, "clip subscribers")
        clips.publish(clip_msg(0))
        wait_for(lambda: len(memories(live_db)) == 1, 60, "a memory written with the adapter")
        assert memories(live_db)[0].adapter_version == result.version

        call = set_adapter.call_async(SetAdapter.Request(version="0099-never-released"))
        assert not spin_until(executor, lambda: call.done() and call.result(), 10, "set_adapter").success
        call = set_adapter.call_async(SetAdapter.Request(version=""))
        assert spin_until(executor, lambda: call.done() and call.result(), 10, "set_adapter").success
        spin_until(executor, lambda: memorizer_adapter() == "none", 30, "the rollback to the base policy")
        clips.publish(clip_msg(1))
        wait_for(lambda: len(memories(live_db)) == 2, 60, "a memory written without the adapter")
        assert [m.adapter_version for m in memories(live_db)] == [result.version, ""]
        assert runner.exited() == {}
    assert "Traceback" not in runner.log("trainer") and "Traceback" not in runner.log("memorizer")
    executor.shutdown()
    node.destroy_node()
