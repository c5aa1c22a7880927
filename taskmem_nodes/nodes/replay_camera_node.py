"""replay_camera_node: plays a video file, an image folder, a rosbag2 or the simulated world as a camera topic.

Publishes `sensor_msgs/Image` on `image_raw` (or JPEG `sensor_msgs/CompressedImage` on
`image_raw/compressed` when `compressed` is true) with sensor-data QoS, at real time or `rate` times faster.
Stamps follow the source's own timing from the moment playback starts, so clips downstream are cut in
stream time however fast it plays; with `publish_clock` it also drives `/clock` for use_sim_time graphs.
A simulated world also publishes its person tracker (`taskmem_interfaces/TrackedEntities` on `tracked_people`,
one per image, same stamp, sent just before the image).
"""

from __future__ import annotations

import threading
import time

from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, Image
from taskmem_interfaces.msg import TrackedEntities

from taskmem_nodes.images import encode_jpeg, resize_to_max_side
from taskmem_nodes.nodes.conversions import detections_to_msg, rgb_to_image_msg, to_time
from taskmem_nodes.nodes.diagnostics import ERROR, OK, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.qos import CAMERA_QOS
from taskmem_nodes.nodes.spin import run_node
from taskmem_nodes.video_source import SourceError, open_source


class ReplayCameraNode(Node):
    """Publishes frames of a recorded stream as a live camera."""

    def __init__(self, **kwargs):
        super().__init__("replay_camera", **kwargs)
        self.source = declare(self, "source", "",
                              "Video file, image folder, rosbag2 (.mcap/.db3 or bag dir), or simulated-world .yaml")
        self.rate = declare(self, "rate", 1.0, "Playback speed: 1 = real time, 4 = four times faster")
        self.loop = declare(self, "loop", False, "Start over at the end (stamps keep increasing)")
        self.frame_id = declare(self, "frame_id", "camera", "header.frame_id of published images")
        self.compressed = declare(self, "compressed", False, "Publish JPEG CompressedImage instead of raw Image")
        self.max_image_side = declare(self, "max_image_side", 0, "Shrink frames to this longer side (0 = keep)")
        self.folder_fps = declare(self, "folder_fps", 10.0, "Frame rate of an image-folder source")
        self.bag_topic = declare(self, "bag_topic", "", "Image topic to play from a bag ('' = the first one)")
        self.sim_seed = declare(self, "sim_seed", -1, "Seed of a simulated-world source (-1 = the file's seed)")
        self.wait_for_subscribers = declare(
            self, "wait_for_subscribers", 1, "Start only once this many subscribers are matched (0 = at once)"
        )
        self.publish_clock = declare(self, "publish_clock", False, "Publish /clock from the stream's stamps")
        self.exit_when_done = declare(self, "exit_when_done", False, "Shut the node down after the last frame")

        topic = "image_raw/compressed" if self.compressed else "image_raw"
        self.publisher = self.create_publisher(CompressedImage if self.compressed else Image, topic, CAMERA_QOS)
        self.tracker_publisher = self.create_publisher(TrackedEntities, "tracked_people", CAMERA_QOS)
        self.clock_publisher = self.create_publisher(Clock, "/clock", 10) if self.publish_clock else None
        self.published = 0
        self.state = "waiting for subscribers"
        self.last_error = ""
        self.finished = threading.Event()
        self._stop = threading.Event()
        self.diagnostics = DiagnosticsReporter(self, self._status)
        self.player = threading.Thread(target=self._play, name="replay", daemon=True)
        self.player.start()

    def _play(self) -> None:
        while not self._stop.wait(0.05) and self.publisher.get_subscription_count() < self.wait_for_subscribers:
            pass
        if self._stop.is_set():
            return
        base_stamp = self.get_clock().now().nanoseconds * 1e-9
        pass_offset = 0.0
        try:
            while not self._stop.is_set():
                info, frames = open_source(self.source, fps=self.folder_fps, topic=self.bag_topic,
                                             sim_seed=None if self.sim_seed < 0 else self.sim_seed)
                self.state = f"playing {info.kind} {self.source}"
                self.get_logger().info(f"{self.state} ({info.frames or '?'} frames) at {self.rate}x")
                started = time.monotonic()
                last_offset = 0.0
                for offset, rgb in frames:
                    delay = started + offset / self.rate - time.monotonic() if self.rate > 0 else 0.0
                    if self._stop.wait(max(0.0, delay)):
                        return
                    self._publish(base_stamp + pass_offset + offset, rgb,
                                  info.detections(offset) if info.detections else None)
                    last_offset = offset
                if not self.loop:
                    break
                pass_offset += last_offset + 1.0 / (info.fps or self.folder_fps)
        except SourceError as err:
            self.last_error = str(err)
            self.get_logger().error(f"replay stopped: {err}")
        self.state = "done"
        self.get_logger().info(f"replay done: {self.published} frames published")
        self.finished.set()

    def _publish(self, stamp: float, rgb, detections) -> None:
        rgb = resize_to_max_side(rgb, self.max_image_side)
        ros_stamp = to_time(stamp)
        if detections is not None:
            self.tracker_publisher.publish(detections_to_msg(detections, ros_stamp, self.frame_id))
        if self.compressed:
            msg = CompressedImage(format="jpeg", data=encode_jpeg(rgb))
            msg.header.stamp, msg.header.frame_id = ros_stamp, self.frame_id
        else:
            msg = rgb_to_image_msg(rgb, ros_stamp, self.frame_id)
        if self.clock_publisher is not None:
            self.clock_publisher.publish(Clock(clock=ros_stamp))
        self.publisher.publish(msg)
        self.published += 1

    def destroy_node(self):
        self._stop.set()
        self.player.join(timeout=2.0)
        super().destroy_node()

    def _status(self):
        level = ERROR if self.last_error else OK
        return level, self.last_error or self.state, {
            "published": self.published, "subscribers": self.publisher.get_subscription_count(),
            "source": self.source, "rate": self.rate,
        }


def main(args=None) -> None:
    run_node(ReplayCameraNode, args, done=lambda node: node.exit_when_done and node.finished.is_set())

if __name__ == "__main__":
    main()
