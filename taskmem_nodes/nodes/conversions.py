"""Translation between TaskMem messages and the ROS-free core records."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from taskmem_interfaces.msg import Clip as ClipMsg
from taskmem_interfaces.msg import Memory as MemoryMsg
from taskmem_interfaces.msg import RejectedMemory as RejectedMsg
from taskmem_interfaces.msg import TrackedEntities, TrackedEntity

from taskmem_nodes.clips import Clip, Detection, Frame
from taskmem_nodes.images import compressed_to_rgb, raw_to_rgb
from taskmem_nodes.records import MemoryRecord, RejectedRecord


def to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_time(seconds: float) -> Time:
    nanoseconds = max(0, round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def image_msg_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Either image message to an (H, W, 3) uint8 RGB array; raises ImageDecodeError."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(bytes(msg.data), msg.format)
    return raw_to_rgb(msg.height, msg.width, msg.encoding, msg.step, bytes(msg.data), bool(msg.is_bigendian))


def rgb_to_image_msg(image: np.ndarray, stamp: Time, frame_id: str) -> Image:
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = "rgb8"
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    return msg


def clip_to_msg(clip: Clip, frame_id: str) -> ClipMsg:
    msg = ClipMsg()
    msg.header.stamp = to_time(clip.end)
    msg.header.frame_id = frame_id
    msg.clip_id = clip.clip_id
    msg.start, msg.end = to_time(clip.start), to_time(clip.end)
    msg.sample_fps = float(clip.sample_fps)
    msg.frame_stamps = [to_time(f.stamp) for f in clip.frames]
    msg.frames = [rgb_to_image_msg(f.image, to_time(f.stamp), frame_id) for f in clip.frames]
    msg.tracked = any(f.detections is not None for f in clip.frames)
    if msg.tracked:
        msg.detections = [detections_to_msg(f.detections or (), to_time(f.stamp), frame_id) for f in clip.frames]
    return msg


def detections_to_msg(detections: tuple[Detection, ...], stamp: Time, frame_id: str) -> TrackedEntities:
    msg = TrackedEntities()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.entities = [TrackedEntity(entity_id=d.entity_id, x=float(d.x), y=float(d.y), width=float(d.width),
                                  height=float(d.height)) for d in detections]
    return msg


def msg_to_detections(msg: TrackedEntities) -> tuple[Detection, ...]:
    """A tracker message's people; raises ValueError for an empty id or a box centre outside the image."""
    return tuple(Detection(e.entity_id.strip(), e.x, e.y, e.width, e.height) for e in msg.entities)


def msg_to_clip(msg: ClipMsg) -> Clip:
    """Clip message to a core clip; raises ImageDecodeError or ValueError for a malformed clip."""
    if len(msg.frames) != len(msg.frame_stamps):
        raise ValueError(f"clip {msg.clip_id!r} has {len(msg.frames)} frames but {len(msg.frame_stamps)} stamps")
    if not msg.frames:
        raise ValueError(f"clip {msg.clip_id!r} has no frames")
    if msg.tracked and len(msg.detections) != len(msg.frames):
        raise ValueError(f"clip {msg.clip_id!r} is tracked but has {len(msg.detections)} tracker outputs for "
                         f"{len(msg.frames)} frames")
    people = [msg_to_detections(d) for d in msg.detections] if msg.tracked else [None] * len(msg.frames)
    frames = tuple(Frame(to_seconds(s), image_msg_to_rgb(f), d)
                   for s, f, d in zip(msg.frame_stamps, msg.frames, people))
    return Clip(msg.clip_id, to_seconds(msg.start), to_seconds(msg.end), frames, msg.sample_fps)


def memory_to_msg(memory: MemoryRecord, stamp: Time) -> MemoryMsg:
    msg = MemoryMsg()
    msg.header.stamp = stamp
    msg.header.frame_id = memory.frame_id
    if memory.pose is not None:
        msg.has_pose = True
        p, q = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z, q.x, q.y, q.z, q.w = (float(v) for v in memory.pose)
    msg.memory_id, msg.clip_id = memory.memory_id, memory.clip_id
    msg.start, msg.end = to_time(memory.start), to_time(memory.end)
    msg.text = memory.text
    msg.entity_ids = list(memory.entity_ids)
    msg.raw_output = memory.raw_output
    msg.model_version, msg.adapter_version = memory.model_version, memory.adapter_version
    msg.generation_seconds = float(memory.generation_seconds)
    msg.kind = memory.kind
    return msg


def msg_to_memory(msg: MemoryMsg) -> MemoryRecord:
    p, q = msg.pose.position, msg.pose.orientation
    return MemoryRecord(
        memory_id=msg.memory_id, clip_id=msg.clip_id, start=to_seconds(msg.start), end=to_seconds(msg.end),
        text=msg.text, entity_ids=tuple(msg.entity_ids), raw_output=msg.raw_output,
        model_version=msg.model_version, adapter_version=msg.adapter_version,
        generation_seconds=msg.generation_seconds, created_at=to_seconds(msg.header.stamp),
        frame_id=msg.header.frame_id, pose=(p.x, p.y, p.z, q.x, q.y, q.z, q.w) if msg.has_pose else None,
        kind=msg.kind or "clip",
    )


def rejected_to_msg(attempt: RejectedRecord, stamp: Time) -> RejectedMsg:
    msg = RejectedMsg()
    msg.header.stamp = stamp
    msg.attempt_id, msg.clip_id = attempt.attempt_id, attempt.clip_id
    msg.start, msg.end = to_time(attempt.start), to_time(attempt.end)
    msg.raw_output, msg.reason = attempt.raw_output, attempt.reason
    msg.model_version, msg.adapter_version = attempt.model_version, attempt.adapter_version
    return msg


def msg_to_rejected(msg: RejectedMsg) -> RejectedRecord:
    return RejectedRecord(
        attempt_id=msg.attempt_id, clip_id=msg.clip_id, start=to_seconds(msg.start), end=to_seconds(msg.end),
        raw_output=msg.raw_output, reason=msg.reason, model_version=msg.model_version,
        adapter_version=msg.adapter_version, created_at=to_seconds(msg.header.stamp),
    )
