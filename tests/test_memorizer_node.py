"""The memorizer as a real lifecycle node process: malformed model output is kept as a rejected attempt
(never a memory), a malformed clip is counted and skipped, and cleanup/configure reloads the model with new
parameters without restarting the process."""

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rosutil import spin_until, subgraph, wait_for
from taskmem_interfaces.msg import Clip as ClipMsg

from taskmem_nodes.clips import Clip, Frame
from taskmem_nodes.nodes.conversions import clip_to_msg
from taskmem_nodes.nodes.qos import CLIP_QOS
from taskmem_nodes.runner import GraphRunner
from taskmem_nodes.store import MemoryStore


def clip_msg(index: int) -> ClipMsg:
    rng = np.random.default_rng(index)
    start = 5000.0 + 10 * index
    frames = tuple(Frame(start + i, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for i in range(4))
    return clip_to_msg(Clip(f"test-{index}", start, start + 10, frames, 1.0), "cam")


def counts(db):
    store = MemoryStore(db, readonly=True)
    try:
        return store.counts()
    finally:
        store.close()


def test_rejections_bad_clips_and_lifecycle_reload(tmp_path, domain_id, ros_context, tiny_checkpoint):
    db = tmp_path / "memory.db"
    runner = GraphRunner(subgraph("memorizer", "store"), domain_id=domain_id, log_dir=tmp_path, overrides={
        "memorizer": {"model_path": str(tiny_checkpoint), "enforce_format": False, "queue_size": 10,
                      "max_thinking_tokens": 8, "max_description_tokens": 8},
        "store": {"database_path": str(db)},
    })
    node = Node("memorizer_test", context=ros_context)
    clips = node.create_publisher(ClipMsg, "clips", CLIP_QOS)
    change = node.create_client(ChangeState, "/memorizer/change_state")
    get_state = node.create_client(GetState, "/memorizer/get_state")
    params = AsyncParameterClient(node, "memorizer")
    status = {}
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: status.update(
        {s.name: {kv.key: kv.value for kv in s.values} for s in m.status}), 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)

    def call(client, request):
        future = client.call_async(request)
        return spin_until(executor, lambda: future.done() and future.result(), 120, f"{client.srv_name}")

    def state() -> str:
        return call(get_state, GetState.Request()).current_state.label

    def transition(transition_id: int) -> None:
        assert call(change, ChangeState.Request(transition=Transition(id=transition_id))).success

    with runner:
        spin_until(executor, lambda: get_state.service_is_ready() and state() == "active", 180,
                   "the memorizer to load its model and activate")
        spin_until(executor, lambda: clips.get_subscription_count(), 30, "the memorizer's clip subscription")

        # free decoding on a random model: the output is malformed, so it must become a rejected attempt
        for i in range(2):
            clips.publish(clip_msg(i))
        broken = clip_msg(2)
        broken.frame_stamps = broken.frame_stamps[:1]  # 4 frames, 1 stamp
        clips.publish(broken)
        wait_for(lambda: db.exists() and counts(db)["rejected"] == 2, 60, "2 rejected attempts in the store")
        spin_until(executor, lambda: status.get("taskmem/memorizer", {}).get("bad_clips") == "1", 10,
                   "the bad clip in diagnostics")
        store = MemoryStore(db, readonly=True)
        assert store.counts()["memories"] == 0
        rejected = store.rejected()
        assert {r.clip_id for r in rejected} == {"test-0", "test-1"}
        assert all(r.raw_output and r.reason and r.model_version for r in rejected)
        store.close()
        assert "bad clip 'test-2'" in runner.log("memorizer")

        # lifecycle: free the model, reconfigure with the format enforced, memorize again in the same process
        transition(Transition.TRANSITION_DEACTIVATE)
        transition(Transition.TRANSITION_CLEANUP)
        assert state() == "unconfigured"
        spin_until(executor, lambda: "model_version" not in status.get("taskmem/memorizer", {"model_version": 1}), 10,
                   "diagnostics of an unconfigured memorizer")
        future = params.set_parameters([Parameter("enforce_format", value=True)])
        spin_until(executor, lambda: future.done(), 10, "set_parameters")
        transition(Transition.TRANSITION_CONFIGURE)
        transition(Transition.TRANSITION_ACTIVATE)
        for i in range(3, 5):
            clips.publish(clip_msg(i))
        wait_for(lambda: counts(db)["memories"] == 2, 60, "2 memories after the reload")
        assert runner.exited() == {}
    store = MemoryStore(db, readonly=True)
    assert {m.clip_id for m in store.memories()} == {"test-3", "test-4"}
    assert store.counts()["rejected"] == 2
    executor.shutdown()
    node.destroy_node()
