"""The clip archive: clips come back as they went in, the oldest go beyond the limit, a torn write is invisible."""

import numpy as np
import pytest

from taskmem_nodes.clip_archive import ArchiveError, ClipArchive
from taskmem_nodes.clips import Clip, Frame


def clip(i: int) -> Clip:
    frames = tuple(Frame(i * 10.0 + t, np.full((4, 6, 3), i + t, np.uint8)) for t in range(3))
    return Clip(f"stream/{i}", i * 10.0, i * 10.0 + 10.0, frames, 1.0)


def test_round_trip_trim_and_torn_files(tmp_path):
    archive = ClipArchive(tmp_path, max_clips=3)
    for i in range(5):
        archive.add(clip(i), "stream", i, {"world": {"seed": 7}})
    (tmp_path / "9999999999.000-x-000001.npz.partial").write_bytes(b"half a clip")  # a killed writer's leftover
    back = list(archive.clips())
    assert [a.index for a in back] == [2, 3, 4] and len(archive) == 3
    assert back[0].clip.clip_id == "stream/2" and back[0].source == {"world": {"seed": 7}}
    assert np.array_equal(back[0].clip.frames[1].image, clip(2).frames[1].image)
    assert [f.stamp for f in back[0].clip.frames] == [20.0, 21.0, 22.0]
    (tmp_path / "0000000099.000-bad-000000.npz").write_bytes(b"garbage")
    with pytest.raises(ArchiveError, match="bad"):
        list(archive.clips())


def test_tracker_outputs_come_back_with_their_frames(tmp_path):
    from dataclasses import replace

    from taskmem_nodes.clips import Detection

    people = [(Detection("face_1", 0.2, 0.5, 0.1, 0.3),), (), None]  # seen, tracked but nobody, untracked
    tracked = replace(clip(1), frames=tuple(replace(f, detections=p) for f, p in zip(clip(1).frames, people)))
    archive = ClipArchive(tmp_path)
    archive.add(tracked, "stream", 1)
    archive.add(clip(2), "stream", 2)
    first, second = (a.clip for a in archive.clips())
    assert [f.detections for f in first.frames] == people
    assert all(f.detections is None for f in second.frames)
