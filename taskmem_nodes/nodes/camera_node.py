"""camera_node: camera images in, 10-s clips of sampled frames out.

Subscribes `image_raw` (sensor_msgs/Image) and `image_raw/compressed` (sensor_msgs/CompressedImage) with
sensor-data QoS, samples to `sample_fps`, cuts clips on the images' header stamps (so `use_sim_time` and
rosbag replay work) and publishes `taskmem_interfaces/Clip` on `clips`. A person tracker's
`taskmem_interfaces/TrackedEntities` on `tracked_people` (one per image, same stamp) are joined to the clips'
frames, so the memorizer can name people by the tracker's ids. Incoming images wait in a bounded
queue that drops the oldest when the worker falls behind; bad images are logged, counted and skipped.
"""

from __future__ import annotations

import threading
from collections import deque

from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image
from taskmem_interfaces.msg import Clip as ClipMsg
from taskmem_interfaces.msg import TrackedEntities

from taskmem_nodes.clips import ClipCutter, DetectionBuffer
from taskmem_nodes.images import ImageDecodeError, resize_to_max_side
from taskmem_nodes.nodes.conversions import clip_to_msg, image_msg_to_rgb, msg_to_detections, to_seconds
from taskmem_nodes.nodes.diagnostics import OK, WARN, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.qos import CAMERA_QOS, CLIP_QOS
from taskmem_nodes.nodes.spin import run_node


class CameraNode(Node):
    """Samples a camera stream and publishes clips."""

    def __init__(self, **kwargs):
        super().__init__("camera", **kwargs)
        self.frame_id = declare(self, "frame_id", "camera", "frame_id of published clips when images have none")
        clip_seconds = declare(self, "clip_seconds", 10.0, "Length of one clip in seconds of stamp time")
        sample_fps = declare(self, "sample_fps", 1.0, "Frames per second kept in a clip")
        self.max_image_side = declare(self, "max_image_side", 320, "Longer side of frames in clips (0 = keep)")
        queue_size = declare(self, "queue_size", 30, "Images waiting for the worker; the oldest is dropped when full")
        self.flush_after = declare(
            self, "flush_after_seconds", 5.0, "Publish the partial clip when no image came for this long (ROS time)"
        )
        subscribe_raw = declare(self, "subscribe_raw", True, "Subscribe sensor_msgs/Image on image_raw")
        subscribe_compressed = declare(
            self, "subscribe_compressed", True, "Subscribe sensor_msgs/CompressedImage on image_raw/compressed"
        )
        stream_id = declare(self, "stream_id", "camera", "Prefix of clip ids")
        tracker_topic = declare(self, "tracker_topic", "tracked_people",
                                "TrackedEntities of a person tracker, one per image ('' = no tracker)")
        tolerance = declare(self, "tracker_tolerance_s", 0.05,
                            "Largest stamp difference between an image and its tracker output")
        tracker_wait = declare(self, "tracker_wait_s", 0.3,
                               "Longest wait, when a clip is cut, for the tracker's output on its last frame")

        self.cutter = ClipCutter(clip_seconds=clip_seconds, sample_fps=sample_fps, stream_id=stream_id)
        self.tracker = DetectionBuffer(tolerance=tolerance, wait=tracker_wait)
        self.bad_tracker_outputs = 0
        self.queue: deque = deque(maxlen=queue_size)
        self.dropped = 0
        self.bad_images = 0
        self.missing_stamps = 0
        self.last_error = ""
        self._wake = threading.Condition()
        self._last_image_time = None
        self._running = True

        self.publisher = self.create_publisher(ClipMsg, "clips", CLIP_QOS)
        if subscribe_raw:
            self.create_subscription(Image, "image_raw", self._on_image, CAMERA_QOS)
        if subscribe_compressed:
            self.create_subscription(CompressedImage, "image_raw/compressed", self._on_image, CAMERA_QOS)
        if tracker_topic:
            self.create_subscription(TrackedEntities, tracker_topic, self._on_tracker, CAMERA_QOS)
        self.diagnostics = DiagnosticsReporter(self, self._status)
        self.worker = threading.Thread(target=self._work, name="camera-worker", daemon=True)
        self.worker.start()

    def _on_image(self, msg) -> None:
        with self._wake:
            if len(self.queue) == self.queue.maxlen:
                self.dropped += 1
            self.queue.append(msg)
            self._last_image_time = self.get_clock().now()
            self._wake.notify()

    def _on_tracker(self, msg: TrackedEntities) -> None:
        try:
            self.tracker.add(to_seconds(msg.header.stamp), msg_to_detections(msg))
        except ValueError as err:
            self.bad_tracker_outputs += 1
            self.last_error = f"bad tracker output: {err}"
            self.get_logger().error(f"tracker output skipped: {err}")

    def _work(self) -> None:
        while self._running:
            with self._wake:
                if not self.queue:
                    self._wake.wait(timeout=0.5)
                msg = self.queue.popleft() if self.queue else None
            if msg is not None:
                self._process(msg)
            else:
                self._flush_if_quiet()

    def _process(self, msg) -> None:
        stamp = to_seconds(msg.header.stamp)
        if stamp == 0.0:  # drivers that leave the stamp empty: use arrival time
            self.missing_stamps += 1
            stamp = self.get_clock().now().nanoseconds * 1e-9
        out_of_order_before = self.cutter.stats.out_of_order
        if not self.cutter.wants(stamp):
            if self.cutter.stats.out_of_order > out_of_order_before:
                self.get_logger().warning(f"image stamped {stamp:.3f} is older than the last one; dropped")
            return
        try:
            image = resize_to_max_side(image_msg_to_rgb(msg), self.max_image_side)
        except ImageDecodeError as err:
            self.bad_images += 1
            self.last_error = str(err)
            self.get_logger().error(f"bad image skipped: {err}")
            return
        for clip in self.cutter.add(stamp, image):
            self._publish(clip, msg.header.frame_id)

    def _publish(self, clip, frame_id: str) -> None:
        clip = self.tracker.attach(clip)
        self.publisher.publish(clip_to_msg(clip, frame_id or self.frame_id))
        self.get_logger().info(f"clip {clip.clip_id}: {len(clip.frames)} frames")

    def _flush_if_quiet(self) -> None:
        if self._last_image_time is None or self.cutter.pending_frames == 0:
            return
        quiet = (self.get_clock().now() - self._last_image_time).nanoseconds * 1e-9
        if quiet >= self.flush_after:
            for clip in self.cutter.flush():
                self._publish(clip, self.frame_id)

    def _status(self):
        stats = self.cutter.stats
        level = WARN if (self.bad_images or self.dropped or self.bad_tracker_outputs) else OK
        message = f"last error: {self.last_error}" if self.last_error else "ok"
        return level, message, {
            "frames_seen": stats.frames_seen, "frames_sampled": stats.frames_sampled, "clips": stats.clips,
            "queue_depth": len(self.queue), "queue_dropped": self.dropped, "bad_images": self.bad_images,
            "out_of_order": stats.out_of_order, "stream_resets": stats.stream_resets,
            "missing_stamps": self.missing_stamps, "pending_frames": self.cutter.pending_frames,
            "tracker_outputs": self.tracker.received, "bad_tracker_outputs": self.bad_tracker_outputs,
        }

    def destroy_node(self):
        self._running = False
        with self._wake:
            self._wake.notify_all()
        self.worker.join(timeout=2.0)
        super().destroy_node()


def main(args=None) -> None:
    run_node(CameraNode, args)

if __name__ == "__main__":
    main()
