"""Bad camera input to a running camera_node process: each is logged and counted, and the node keeps
cutting clips from the good images around it (and joining the good tracker outputs to them)."""

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosutil import spin_until, subgraph
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from taskmem_interfaces.msg import Clip as ClipMsg
from taskmem_interfaces.msg import TrackedEntities, TrackedEntity

from taskmem_nodes.nodes.conversions import rgb_to_image_msg, to_time
from taskmem_nodes.nodes.qos import CLIP_QOS
from taskmem_nodes.runner import GraphRunner

RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def raw(stamp, *, encoding="rgb8", height=8, width=8, data=None, step=None):
    msg = rgb_to_image_msg(np.zeros((8, 8, 3), np.uint8), to_time(stamp), "cam")
    msg.encoding, msg.height, msg.width = encoding, height, width
    msg.step = width * 3 if step is None else step
    msg.data = bytes(height * width * 3) if data is None else data
    return msg


def test_camera_node_survives_bad_images(tmp_path, domain_id, ros_context):
    runner = GraphRunner(subgraph("camera"), domain_id=domain_id, log_dir=tmp_path,
                         overrides={"camera": {"sample_fps": 10.0, "flush_after_seconds": 3600.0}})
    node = Node("bad_input_test", context=ros_context)
    raw_pub = node.create_publisher(Image, "/camera/image_raw", RELIABLE)
    jpeg_pub = node.create_publisher(CompressedImage, "/camera/image_raw/compressed", RELIABLE)
    tracker_pub = node.create_publisher(TrackedEntities, "/camera/tracked_people", RELIABLE)
    clips, diagnostics = [], {}
    clip_sub = node.create_subscription(ClipMsg, "clips", clips.append, CLIP_QOS)

    def on_diagnostics(msg):
        for status in msg.status:
            if status.name == "taskmem/camera":
                diagnostics.update({kv.key: kv.value for kv in status.values})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    with runner:
        spin_until(executor, lambda: raw_pub.get_subscription_count() and jpeg_pub.get_subscription_count()
                   and tracker_pub.get_subscription_count() and clip_sub.get_publisher_count(), 30,
                   "camera_node's subscriptions and clip publisher")
        t0 = 1000.0
        # the first messages after discovery can miss a best-effort reader: repeat the first image until seen
        spin_until(executor, lambda: raw_pub.publish(raw(t0)) or int(diagnostics.get("frames_seen", 0)) >= 1, 30,
                   "the first image to arrive")
        good = [raw(t0 + i * 0.5) for i in range(1, 10)]  # 0.5 .. 4.5 s
        bad = [
            raw(t0 + 4.6, encoding="bayer_rggb8"),  # unsupported encoding
            raw(t0 + 4.7, height=0, width=0, data=b""),  # zero-size
            raw(t0 + 4.8, height=20000, width=20000, data=bytes(64), step=60000),  # oversized header, tiny data
            raw(t0 + 4.9, data=bytes(10)),  # truncated data
        ]
        corrupt = CompressedImage(format="jpeg", data=b"\xff\xd8\xff\xe0 definitely not a jpeg")
        corrupt.header.stamp = to_time(t0 + 5.0)
        late = [raw(t0 + 1.0)]  # out of order
        after = [raw(t0 + 5.5 + i * 0.5) for i in range(12)]  # 5.5 .. 11 s: crosses the 10-s boundary
        person = TrackedEntity(entity_id="face_1", x=0.25, y=0.5, width=0.1, height=0.3)
        off_image = TrackedEntity(entity_id="face_2", x=5.0, y=0.5)  # not in image fractions
        tracker_pub.publish(TrackedEntities(header=Header(stamp=to_time(t0 + 1.0)), entities=[off_image]))
        for msg in good + bad:
            tracker_pub.publish(TrackedEntities(header=msg.header, entities=[person]))
            raw_pub.publish(msg)
            time.sleep(0.02)
        jpeg_pub.publish(corrupt)
        time.sleep(0.2)
        for msg in late + after:
            raw_pub.publish(msg)
            time.sleep(0.02)
        spin_until(executor, lambda: clips, 30, "a clip after the bad input")
        spin_until(executor, lambda: int(diagnostics.get("bad_images", 0)) >= 5, 10, "bad_images in diagnostics")
        assert runner.exited() == {}, runner.log("camera")
    log = runner.log("camera")
    for reason in ("unsupported encoding", "empty image", "too large", "expected 192", "cannot decode",
                   "older than the last one"):
        assert reason in log, f"no log line for {reason!r}:\n{log}"
    assert int(diagnostics["out_of_order"]) >= 1
    assert int(diagnostics["bad_tracker_outputs"]) == 1 and "is not in image fractions" in log
    first = clips[0]
    assert first.tracked and len(first.detections) == len(first.frames)
    ids = [[e.entity_id for e in d.entities] for d in first.detections]
    assert ["face_1"] in ids  # the good images' tracker outputs are joined to their frames
    clip = clips[0]
    # 1000 .. 1009.5 s at 2 fps without the bad and the late images: 10 + 9 good frames
    assert clip.start.sec == 1000 and len(clip.frames) == 19
    assert [f.header.stamp.sec for f in clip.frames[:3]] == [1000, 1000, 1001]
    assert all(f.encoding == "rgb8" and f.height == 8 for f in clip.frames)
    executor.shutdown()
    node.destroy_node()
