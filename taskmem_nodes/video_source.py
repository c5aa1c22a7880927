"""Camera streams from files: a video (anything OpenCV reads), a folder of images, or a rosbag2 (.mcap/.db3).

Every source yields `(offset_seconds, rgb_frame)` in stream order, offsets starting at 0. The simulated world
also has a person tracker (`SourceInfo.detections`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from taskmem_nodes.clips import Detection, DetectionBuffer
from taskmem_nodes.images import ImageDecodeError, compressed_to_rgb, encode_jpeg, raw_to_rgb

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
TRACKER_TYPE = "taskmem_interfaces/msg/TrackedEntities"
TRACKER_TOLERANCE = 0.05
"""Largest stamp difference (s) between an image and its tracker output in a bag."""
_TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def _register_tracker_types() -> None:
    """Teach the bag reader and writer our tracker messages, from their .msg files (installed, or in the
    source tree)."""
    here = Path(__file__).resolve().parents[1]
    for folder in (Path(sys.prefix) / "share/taskmem_interfaces/msg", here / "ros2_ws/src/taskmem_interfaces/msg"):
        if (folder / "TrackedEntities.msg").exists():
            types = {}
            for name in ("TrackedEntity", "TrackedEntities"):
                types.update(get_types_from_msg((folder / f"{name}.msg").read_text(), f"taskmem_interfaces/msg/{name}"))
            _TYPESTORE.register(types)
            return


_register_tracker_types()


class SourceError(ValueError):
    """A stream source that cannot be opened or read."""


@dataclass(frozen=True)
class SourceInfo:
    kind: str  # "video" | "images" | "rosbag2" | "sim"
    fps: float | None  # nominal rate, None when stamps decide
    frames: int | None  # number of frames when known
    detections: Callable[[float], tuple[Detection, ...]] | None = None  # the person tracker at an offset, if any


FrameStream = Iterator[tuple[float, np.ndarray]]
"""(offset seconds, (H, W, 3) uint8 RGB frame) pairs in stream order."""


def open_source(path: str | Path, *, fps: float = 10.0, topic: str = "",
                sim_seed: int | None = None) -> tuple[SourceInfo, FrameStream]:
    """Open a source by what `path` is. `fps` paces image folders; `topic` picks the image topic of a bag;
    a simulated-world file (.yaml) renders that world, with `sim_seed` replacing its seed when given."""
    path = Path(path).expanduser()
    if not path.exists():
        raise SourceError(f"no such stream source: {path}")
    if path.suffix in (".yaml", ".yml"):
        return _sim_world(path, sim_seed)
    if (path.is_dir() and (path / "metadata.yaml").exists()) or path.suffix in (".mcap", ".db3"):
        return _bag(path, topic)
    if path.is_dir():
        return _image_folder(path, fps)
    return _video(path)


def _video(path: Path):
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"OpenCV cannot open video {path}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    if not 0.1 <= fps <= 1000:
        capture.release()
        raise SourceError(f"video {path} reports no usable frame rate ({fps})")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def frames():
        index = 0
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield index / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()

    return SourceInfo("video", fps, count), frames()


def _sim_world(path: Path, seed: int | None):
    from taskmem_nodes.sim.dataset import load_sim_config, world_detections, world_frames
    from taskmem_nodes.sim.world import World

    try:
        world_config, _ = load_sim_config(path, seed=seed)
    except (ValueError, TypeError, yaml.YAMLError) as err:
        raise SourceError(f"bad world file {path}: {err}") from None
    world = World(world_config)
    frames = round(world_config.clips * world_config.clip_seconds * world_config.fps)
    return SourceInfo("sim", world_config.fps, frames, world_detections(world)), world_frames(world)


def _image_folder(path: Path, fps: float):
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")

    def frames():
        for index, file in enumerate(files):
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SourceError(f"cannot read image {file}")
            yield index / fps, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return SourceInfo("images", fps, len(files)), frames()


def _bag(path: Path, topic: str):
    reader = Reader(path.parent if path.suffix in (".mcap", ".db3") and not path.is_dir() else path)
    reader.open()
    connections = [c for c in reader.connections if c.msgtype in IMAGE_TYPES and (not topic or c.topic == topic)]
    if not connections:
        topics = ", ".join(f"{c.topic} ({c.msgtype})" for c in reader.connections)
        reader.close()
        raise SourceError(f"no image topic{' ' + topic if topic else ''} in {path}; topics: {topics or 'none'}")
    chosen = [c for c in connections if c.topic == connections[0].topic]
    count = sum(c.msgcount for c in chosen)
    tracker = _bag_tracker(reader, chosen, path)

    def frames():
        first = None
        try:
            for connection, timestamp, raw in reader.messages(connections=chosen):
                msg = _TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                stamp = _stamp_seconds(msg, timestamp)
                first = stamp if first is None else first
                try:
                    yield stamp - first, _bag_image_to_rgb(msg, connection.msgtype)
                except ImageDecodeError as err:
                    raise SourceError(f"bad image in {path} at {stamp:.3f}: {err}") from None
        finally:
            reader.close()

    return SourceInfo("rosbag2", None, count, tracker), frames()


def _stamp_seconds(msg, timestamp: int = 0) -> float:
    """A bag message's header stamp in seconds; its record time (ns) when the header has none."""
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 or timestamp * 1e-9


def _bag_tracker(reader: Reader, images: list, path: Path) -> Callable[[float], tuple[Detection, ...]] | None:
    """The bag's person tracker outputs (TrackedEntities) as a lookup by offset from the first image of the
    played `images` connections; None when it recorded none."""
    connections = [c for c in reader.connections if c.msgtype == TRACKER_TYPE]
    if not connections or TRACKER_TYPE not in _TYPESTORE.types:
        return None
    outputs = DetectionBuffer(tolerance=TRACKER_TOLERANCE, keep=sum(c.msgcount for c in connections))
    for connection, _, raw in reader.messages(connections=connections):
        msg = _TYPESTORE.deserialize_cdr(raw, connection.msgtype)
        try:
            outputs.add(_stamp_seconds(msg), tuple(
                Detection(e.entity_id, e.x, e.y, e.width, e.height) for e in msg.entities))
        except (TypeError, ValueError) as err:
            raise SourceError(f"bad tracker output in {path}: {err}") from None
    connection, timestamp, raw = next(reader.messages(connections=images))
    origin = _stamp_seconds(_TYPESTORE.deserialize_cdr(raw, connection.msgtype), timestamp)
    return lambda offset: outputs.lookup(origin + offset)


def _bag_image_to_rgb(msg, msgtype: str) -> np.ndarray:
    if msgtype.endswith("CompressedImage"):
        return compressed_to_rgb(msg.data.tobytes(), msg.format)
    return raw_to_rgb(msg.height, msg.width, msg.encoding, msg.step, msg.data.tobytes(), bool(msg.is_bigendian))


def write_bag(path: str | Path, frames: Iterator[tuple[float, np.ndarray]], *, topic: str = "/camera/image_raw",
              frame_id: str = "camera", start: float = 1_700_000_000.0, compressed: bool = False,
              detections: Callable[[float], tuple[Detection, ...]] | None = None,
              tracker_topic: str = "/camera/tracked_people") -> int:
    """Record `(offset, rgb)` frames as a rosbag2 (.mcap storage) at `path`, and with `detections` the person
    tracker's output for each (TrackedEntities, same stamp); returns the frame count."""
    Header = _TYPESTORE.types["std_msgs/msg/Header"]
    Time = _TYPESTORE.types["builtin_interfaces/msg/Time"]
    msgtype = IMAGE_TYPES[1] if compressed else IMAGE_TYPES[0]
    count = 0
    with Writer(Path(path), version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection(topic, msgtype, typestore=_TYPESTORE)
        tracked = writer.add_connection(tracker_topic, TRACKER_TYPE, typestore=_TYPESTORE) if detections else None
        for offset, rgb in frames:
            nanoseconds = round((start + offset) * 1e9)
            header = Header(stamp=Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9), frame_id=frame_id)
            if tracked is not None:
                entities = [_TYPESTORE.types["taskmem_interfaces/msg/TrackedEntity"](
                    entity_id=d.entity_id, x=d.x, y=d.y, width=d.width, height=d.height) for d in detections(offset)]
                writer.write(tracked, nanoseconds, _TYPESTORE.serialize_cdr(
                    _TYPESTORE.types[TRACKER_TYPE](header=header, entities=entities), TRACKER_TYPE))
            if compressed:
                msg = _TYPESTORE.types[msgtype](header=header, format="jpeg",
                                                data=np.frombuffer(encode_jpeg(rgb), np.uint8))
            else:
                height, width = rgb.shape[:2]
                msg = _TYPESTORE.types[msgtype](header=header, height=height, width=width, encoding="rgb8",
                                                is_bigendian=0, step=width * 3, data=rgb.reshape(-1).copy())
            writer.write(connection, nanoseconds, _TYPESTORE.serialize_cdr(msg, msgtype))
            count += 1
    return count
