"""The replay camera plays a rosbag2 (.mcap) as a live JPEG camera; camera_node cuts it into clips."""

import numpy as np
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosutil import spin_until, subgraph
from taskmem_interfaces.msg import Clip as ClipMsg

from taskmem_nodes.nodes.conversions import to_seconds
from taskmem_nodes.nodes.qos import CLIP_QOS
from taskmem_nodes.runner import GraphRunner
from taskmem_nodes.video_source import write_bag


def replay_clips(tmp_path, domain_id, ros_context, replay: dict, clips_wanted: int = 3):
    """Run camera_node + replay_camera_node with `replay` parameters until the stream ends; the clips seen."""
    runner = GraphRunner(subgraph("camera", "replay_camera"), domain_id=domain_id, log_dir=tmp_path / "logs",
                         overrides={"replay_camera": {**replay, "exit_when_done": True},
                                    "camera": {"flush_after_seconds": 1.0}})
    node = Node("replay_test", context=ros_context)
    clips = []
    sub = node.create_subscription(ClipMsg, "clips", clips.append, CLIP_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        with runner:
            spin_until(executor, lambda: sub.get_publisher_count(), 30, "camera_node's clip publisher")
            runner.start_node("replay_camera")
            spin_until(executor, lambda: len(clips) >= clips_wanted, 60,
                       f"{clips_wanted} clips (got {len(clips)}); logs in {runner.log_dir}")
            assert runner.exited() == {"replay_camera": 0}, runner.log("replay_camera")
    finally:
        executor.shutdown()
        node.destroy_node()
    return runner, clips


def test_bag_replay_as_compressed_camera(tmp_path, domain_id, ros_context):
    # 25 s at 4 fps; each frame's brightness encodes its second, so the clips can be checked
    frames = [(i / 4, np.full((48, 64, 3), (i // 4) * 10, np.uint8)) for i in range(100)]
    write_bag(tmp_path / "bag", iter(frames))
    runner, clips = replay_clips(tmp_path, domain_id, ros_context, {"source": str(tmp_path / "bag"), "rate": 5.0,
                                                                    "compressed": True})
    assert "playing rosbag2" in runner.log("replay_camera")
    starts = [to_seconds(c.start) for c in clips]
    assert [round(s - starts[0], 3) for s in starts] == [0.0, 10.0, 20.0]
    assert [len(c.frames) for c in clips] == [10, 10, 5]  # 1 fps; the last clip is flushed when the stream ends
    for clip in clips:
        for stamp, frame in zip(clip.frame_stamps, clip.frames, strict=True):
            second = round(to_seconds(stamp) - starts[0])
            pixels = np.frombuffer(bytes(frame.data), np.uint8)
            assert frame.encoding == "rgb8" and abs(int(pixels.mean()) - second * 10) <= 3


def test_simulated_world_streams_as_a_camera(tmp_path, domain_id, ros_context):
    from taskmem_nodes.sim.dataset import world_detections, world_frames
    from taskmem_nodes.sim.world import World, WorldConfig

    world_file = tmp_path / "world.yaml"
    world_file.write_text("world: {seed: 1, duration_s: 30.0, fps: 2.0, cell_px: 8}\n")
    runner, clips = replay_clips(tmp_path, domain_id, ros_context, {"source": str(world_file), "sim_seed": 4,
                                                                    "rate": 10.0})
    assert "playing sim" in runner.log("replay_camera")
    world = World(WorldConfig(seed=4, duration_s=30.0, fps=2.0, cell_px=8))
    rendered, tracker = dict(world_frames(world)), world_detections(world)
    start = to_seconds(clips[0].start)
    people_seen = 0
    for clip in clips:
        assert clip.tracked and len(clip.detections) == len(clip.frames)  # the simulated tracker came along
        for stamp, frame, tracked in zip(clip.frame_stamps, clip.frames, clip.detections, strict=True):
            offset = round((to_seconds(stamp) - start) * 2) / 2
            pixels = np.frombuffer(bytes(frame.data), np.uint8).reshape(frame.height, frame.width, 3)
            assert np.array_equal(pixels, rendered[offset])  # the seed given to the node, raw frames untouched
            assert [e.entity_id for e in tracked.entities] == [d.entity_id for d in tracker(offset)]
            people_seen += len(tracked.entities)
    assert people_seen
