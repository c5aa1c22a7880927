"""A bounded archive of recent clips on disk, for learning in idle time (Phase Two needs the frames again).

One compressed `.npz` per clip (its frames, stamps and metadata, with the tracker's people per frame), written
to a temporary name and renamed, so a killed process leaves either the whole clip or nothing. The oldest clips
are deleted beyond `max_clips`. Metadata may carry where a clip came from (a simulated world's settings, so
ground truth can be recomputed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from taskmem_nodes.clips import Clip, Detection, Frame

_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]")


class ArchiveError(ValueError):
    """A clip file that cannot be read back; the message names it."""


@dataclass(frozen=True)
class ArchivedClip:
    clip: Clip
    stream_id: str
    index: int  # position of the clip in its stream
    source: dict = field(default_factory=dict)  # e.g. {"world": {...}} for a simulated stream


class ClipArchive:
    """Recent clips in a directory, oldest first."""

    def __init__(self, root: str | Path, max_clips: int = 2000):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_clips = max_clips

    def add(self, clip: Clip, stream_id: str, index: int, source: dict | None = None) -> Path:
        frames = np.stack([f.image for f in clip.frames]) if clip.frames else np.zeros((0, 1, 1, 3), np.uint8)
        meta = {"clip_id": clip.clip_id, "stream_id": stream_id, "index": index, "start": clip.start,
                "end": clip.end, "sample_fps": clip.sample_fps, "source": source or {},
                "detections": [None if f.detections is None else [dataclasses.astuple(d) for d in f.detections]
                               for f in clip.frames]}
        name = f"{clip.start:014.3f}-{_SAFE_ID.sub('_', stream_id)[:64]}-{index:06d}.npz"
        path = self.root / name
        staging = path.with_name(path.name + ".partial")
        with open(staging, "wb") as handle:
            np.savez_compressed(handle, frames=frames, stamps=np.array([f.stamp for f in clip.frames]),
                                meta=np.array(json.dumps(meta)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
        self._trim()
        return path

    def _files(self) -> list[Path]:
        return sorted(self.root.glob("*.npz"))

    def _trim(self) -> None:
        files = self._files()
        for old in files[: max(0, len(files) - self.max_clips)]:
            old.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(self._files())

    def clips(self) -> Iterator[ArchivedClip]:
        """Every archived clip, oldest first; an unreadable file raises ArchiveError naming it."""
        for path in self._files():
            yield self.read(path)

    @staticmethod
    def read(path: Path) -> ArchivedClip:
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                frames, stamps = data["frames"], data["stamps"]
        except (OSError, ValueError, KeyError) as err:
            raise ArchiveError(f"cannot read archived clip {path}: {err}") from None
        people = meta.get("detections") or [None] * len(stamps)  # archives written before trackers had none
        try:
            people = [None if p is None else tuple(Detection(*d) for d in p) for p in people]
            clip = Clip(meta["clip_id"], meta["start"], meta["end"],
                        tuple(Frame(float(t), f, d) for t, f, d in zip(stamps, frames, people, strict=True)),
                        meta["sample_fps"])
        except (TypeError, ValueError) as err:
            raise ArchiveError(f"archived clip {path} has bad tracker outputs: {err}") from None
        return ArchivedClip(clip, meta["stream_id"], meta["index"], meta.get("source", {}))
