"""Clip cutting on stamps: sampling, boundaries, gaps, out-of-order stamps, resets, flushing."""

import itertools

import numpy as np
import pytest

from taskmem_nodes.clips import ClipCutter

IMAGE = np.zeros((4, 4, 3), np.uint8)


def feed(cutter, stamps):
    clips = []
    for stamp in stamps:
        if cutter.wants(stamp):
            clips += cutter.add(stamp, IMAGE)
    return clips


def test_samples_to_fps_and_cuts_ten_second_clips():
    cutter = ClipCutter(clip_seconds=10.0, sample_fps=1.0, stream_id="cam")
    stamps = [100.0 + i / 30 for i in range(30 * 25)]  # 25 s of 30 Hz video
    clips = feed(cutter, stamps)
    assert [c.start for c in clips] == [100.0, 110.0]
    assert all(len(c.frames) == 10 for c in clips)
    assert clips[0].clip_id == "cam-100000000000"
    assert all(c.end - c.start == 10.0 for c in clips)
    frame_stamps = [f.stamp for f in clips[0].frames]
    assert frame_stamps == sorted(frame_stamps)
    assert all(abs(b - a - 1.0) < 0.05 for a, b in itertools.pairwise(frame_stamps))
    tail = cutter.flush()
    assert len(tail) == 1 and tail[0].start == 120.0 and len(tail[0].frames) == 5
    assert cutter.flush() == []


def test_out_of_order_stamps_are_dropped_and_counted():
    cutter = ClipCutter(clip_seconds=10.0, sample_fps=2.0)
    feed(cutter, [0.0, 0.5, 1.0, 0.7, 1.5])
    assert cutter.stats.out_of_order == 1
    assert [f.stamp for f in cutter.flush()[0].frames] == [0.0, 0.5, 1.0, 1.5]


def test_gap_skips_empty_clips_and_large_jump_back_resets_stream():
    cutter = ClipCutter(clip_seconds=10.0, sample_fps=1.0)
    clips = feed(cutter, [0.0, 1.0, 35.0, 36.0])  # nothing between 2 s and 35 s
    assert [c.start for c in clips] == [0.0]
    clips = feed(cutter, [3.0])  # 33 s back: a bag looped
    assert [c.start for c in clips] == [30.0]
    assert cutter.stats.stream_resets == 1
    assert cutter.flush()[0].start == 3.0


def test_quiet_flush_then_same_period_gets_a_distinct_clip_id():
    cutter = ClipCutter(clip_seconds=10.0, sample_fps=1.0, stream_id="s")
    feed(cutter, [0.0, 1.0])
    first = cutter.flush()[0]
    feed(cutter, [5.0])
    second = cutter.flush()[0]
    assert first.start == second.start == 0.0
    assert first.clip_id != second.clip_id


@pytest.mark.parametrize("clip_seconds,fps", [(0, 1), (10, 0), (-1, 1)])
def test_rejects_nonsense_configuration(clip_seconds, fps):
    with pytest.raises(ValueError):
        ClipCutter(clip_seconds=clip_seconds, sample_fps=fps)


def test_tracker_outputs_join_frames_by_stamp():
    from taskmem_nodes.clips import Detection, DetectionBuffer

    buffer = DetectionBuffer(tolerance=0.05)
    clip = feed(ClipCutter(), [0.0, 1.0, 2.0, 10.0])[0]
    assert buffer.attach(clip) is clip  # no tracker output yet: frames stay untracked
    assert buffer.lookup(1.0) is None
    person = Detection("face_1", 0.2, 0.5)
    buffer.add(0.01, (person,))  # a tracker that stamps a little off the image
    buffer.add(2.0, ())
    tracked = buffer.attach(clip)
    assert [f.detections for f in tracked.frames] == [(person,), (), ()]  # frame 1 s: no output near it, nobody
    assert [f.stamp for f in tracked.frames] == [f.stamp for f in clip.frames]


def test_attaching_waits_for_a_tracker_output_that_arrives_after_the_clip_was_cut():
    import threading
    import time

    from taskmem_nodes.clips import Detection, DetectionBuffer

    clip = feed(ClipCutter(), [0.0, 1.0, 2.0, 10.0])[0]  # cut by the 10-s image; its last frame is at 2 s
    person = Detection("person_4", 0.5, 0.5)
    patient, hasty = DetectionBuffer(wait=5.0), DetectionBuffer()
    for buffer in (patient, hasty):
        buffer.add(0.0, ())
    late = threading.Timer(0.2, lambda: [b.add(2.0, (person,)) for b in (patient, hasty)])
    late.start()
    hasty_frames = hasty.attach(clip).frames  # at once: the last frame's output is not there yet
    started = time.monotonic()
    patient_frames = patient.attach(clip).frames
    late.join()
    assert hasty_frames[-1].detections == () and patient_frames[-1].detections == (person,)
    assert time.monotonic() - started < 4.0  # it stopped waiting when the output came
    assert DetectionBuffer().wait_for(5.0, 0.05)  # no tracker at all: nothing to wait for
    assert not hasty.wait_for(5.0, 0.05)  # the tracker never reached 5 s: gave up after the timeout
