"""Cutting a camera stream into fixed-length clips of sampled frames, on message stamps."""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class Detection:
    """A tracked person in a frame, as a tracker reports them: a stable id and a box in image fractions."""

    entity_id: str  # the tracker's id, stable across frames (e.g. "face_3", "person_7")
    x: float  # box centre, 0 (left) .. 1 (right)
    y: float  # box centre, 0 (top) .. 1 (bottom)
    width: float = 0.0
    height: float = 0.0

    def __post_init__(self) -> None:
        """Every source of detections (tracker messages, bags, the archive) gets the same check."""
        if not self.entity_id.strip():
            raise ValueError("tracked entity with an empty id")
        if not (0.0 <= self.x <= 1.0 and 0.0 <= self.y <= 1.0):
            raise ValueError(f"tracked entity {self.entity_id!r}: box centre ({self.x}, {self.y}) is not in "
                             "image fractions 0..1")


@dataclass(frozen=True)
class Frame:
    """One sampled camera frame."""

    stamp: float  # seconds (ROS time of the image header; sim time under use_sim_time)
    image: np.ndarray  # (H, W, 3) uint8 RGB
    detections: tuple[Detection, ...] | None = None  # the tracker's people in this frame; None: no tracker


@dataclass(frozen=True)
class Clip:
    """A clip of `frames` covering [start, end) of stream time."""

    clip_id: str
    start: float
    end: float
    frames: tuple[Frame, ...]
    sample_fps: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class DetectionBuffer:
    """A person tracker's recent outputs by image stamp, joined to clips' frames when the clips are cut (the
    tracker's message for a frame may come a little after the image).

    Before the first tracker output the frames stay untracked (None); afterwards a frame with no output within
    `tolerance` seconds of its stamp saw nobody (trackers that publish only when they see someone). With `wait`,
    attaching first waits up to that many seconds for the tracker to reach the clip's last frame: its output
    travels on a topic of its own and may arrive after the image that closed the clip."""

    def __init__(self, tolerance: float = 0.05, keep: int = 1000, wait: float = 0.0):
        self.tolerance = tolerance
        self.keep = keep
        self.wait = wait
        self._stamps: list[float] = []  # sorted, so a lookup is a binary search
        self._people: list[tuple[Detection, ...]] = []
        self._lock = threading.Lock()  # the tracker's callback adds while the camera worker attaches
        self._arrived = threading.Condition(self._lock)
        self.received = 0

    def add(self, stamp: float, detections: tuple[Detection, ...]) -> None:
        with self._arrived:
            at = bisect.bisect_right(self._stamps, stamp)  # usually the end: outputs come in stamp order
            self._stamps.insert(at, stamp)
            self._people.insert(at, tuple(detections))
            if len(self._stamps) > self.keep:  # forget the oldest
                del self._stamps[0], self._people[0]
            self.received += 1
            self._arrived.notify_all()

    def wait_for(self, stamp: float, timeout: float) -> bool:
        """Wait up to `timeout` seconds for an output stamped `stamp` or later; False when none came (True at
        once before any tracker output: there is no tracker to wait for)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self.received and self._stamps[-1] < stamp - self.tolerance:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True

    def lookup(self, stamp: float) -> tuple[Detection, ...] | None:
        if not self.received:
            return None
        with self._lock:
            at = bisect.bisect_left(self._stamps, stamp)
            nearest = min((i for i in (at - 1, at) if 0 <= i < len(self._stamps)),
                          key=lambda i: abs(self._stamps[i] - stamp), default=None)
            if nearest is None or abs(self._stamps[nearest] - stamp) > self.tolerance:
                return ()
            return self._people[nearest]

    def attach(self, clip: Clip) -> Clip:
        """`clip` with the tracker's people in each frame (unchanged before any tracker output)."""
        if not self.received:
            return clip
        if self.wait and clip.frames:
            self.wait_for(clip.frames[-1].stamp, self.wait)
        frames = tuple(replace(frame, detections=self.lookup(frame.stamp)) for frame in clip.frames)
        return replace(clip, frames=frames)


@dataclass
class CutterStats:
    """Counters the camera node reports on /diagnostics."""

    frames_seen: int = 0
    frames_sampled: int = 0
    out_of_order: int = 0
    stream_resets: int = 0
    clips: int = 0


@dataclass
class ClipCutter:
    """Samples frames to `sample_fps` and cuts clips of `clip_seconds` aligned to the first stamp.

    Stamps must increase. A stamp slightly in the past is dropped (counted as out of order); a jump back
    of more than `reset_after_seconds` (a bag replay looping, a simulator reset) starts a new stream.
    """

    clip_seconds: float = 10.0
    sample_fps: float = 1.0
    stream_id: str = "camera"
    reset_after_seconds: float = 10.0
    stats: CutterStats = field(default_factory=CutterStats)
    _origin: float | None = field(default=None, init=False)
    _clip_index: int = field(default=0, init=False)
    _last_emitted: tuple[int, int] = field(default=(-1, 0), init=False)  # (clip index, times emitted)
    _frames: list[Frame] = field(default_factory=list, init=False)
    _last_stamp: float = field(default=-math.inf, init=False)
    _next_sample: float = field(default=-math.inf, init=False)

    def __post_init__(self) -> None:
        if self.clip_seconds <= 0 or self.sample_fps <= 0:
            raise ValueError("clip_seconds and sample_fps must be positive")

    def wants(self, stamp: float) -> bool:
        """True when a frame at `stamp` would be sampled: callers decode the image only then.

        Also updates the out-of-order counter, so call it once per incoming frame.
        """
        self.stats.frames_seen += 1
        if stamp < self._last_stamp:
            if self._last_stamp - stamp > self.reset_after_seconds:
                return True  # a stream reset; `add` handles it
            self.stats.out_of_order += 1
            return False
        return stamp >= self._next_sample

    def add(self, stamp: float, image: np.ndarray, detections: tuple[Detection, ...] | None = None) -> list[Clip]:
        """Add a sampled frame (with the tracker's detections, when there is a tracker); returns the clips it
        completed (usually none, one at a boundary)."""
        done: list[Clip] = []
        if stamp < self._last_stamp:
            if self._last_stamp - stamp <= self.reset_after_seconds:
                self.stats.out_of_order += 1
                return done
            done.extend(self.flush())
            self.stats.stream_resets += 1
            self._origin = None
        if self._origin is None:
            self._origin = stamp
            self._next_sample = stamp
            self._last_emitted = (-1, 0)
        index = math.floor((stamp - self._origin) / self.clip_seconds)
        if self._frames and index != self._clip_index:
            done.extend(self.flush())
        if not self._frames:
            self._clip_index = index
        self._frames.append(Frame(stamp, image, detections))
        self.stats.frames_sampled += 1
        self._last_stamp = stamp
        # next sample on the grid origin + n / fps, so sampling stays aligned with clip boundaries
        period = 1.0 / self.sample_fps
        steps = math.floor((stamp - self._origin) / period + 1e-9) + 1
        self._next_sample = self._origin + steps * period
        return done

    def flush(self) -> list[Clip]:
        """Emit the clip in progress, if it has frames (end of stream, or the stream went quiet)."""
        if not self._frames or self._origin is None:
            return []
        start = self._origin + self._clip_index * self.clip_seconds
        clip_id = f"{self.stream_id}-{round(start * 1e9)}"
        # a period flushed early (the stream went quiet) and then resumed gets a second, suffixed clip
        last_index, times = self._last_emitted
        times = times + 1 if last_index == self._clip_index else 1
        self._last_emitted = (self._clip_index, times)
        if times > 1:
            clip_id += f"-{times}"
        clip = Clip(
            clip_id=clip_id,
            start=start,
            end=start + self.clip_seconds,
            frames=tuple(self._frames),
            sample_fps=self.sample_fps,
        )
        self._frames = []
        self.stats.clips += 1
        return [clip]

    @property
    def pending_frames(self) -> int:
        return len(self._frames)
