"""Stream sources: a real video, an image folder, and rosbag2 files written with rosbags."""

import cv2
import numpy as np
import pytest

from taskmem_nodes.video_source import SourceError, open_source, write_bag


def test_real_video_reports_rate_and_frames(vtest_video):
    info, frames = open_source(vtest_video)
    assert info.kind == "video" and info.fps == pytest.approx(10.0) and info.frames == 795
    first = [next(frames) for _ in range(3)]
    assert [round(t, 3) for t, _ in first] == [0.0, 0.1, 0.2]
    assert first[0][1].shape == (576, 768, 3) and first[0][1].dtype == np.uint8


def test_image_folder_is_paced_by_fps(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((8, 8, 3), i * 50, np.uint8))
    (tmp_path / "notes.txt").write_text("ignored")
    info, frames = open_source(tmp_path, fps=2.0)
    out = list(frames)
    assert info.frames == 3 and [t for t, _ in out] == [0.0, 0.5, 1.0]
    assert out[2][1][0, 0, 0] == 100


@pytest.mark.parametrize("compressed", [False, True])
def test_rosbag2_round_trip(tmp_path, compressed):
    frames = [(i * 0.1, np.full((16, 24, 3), i * 20, np.uint8)) for i in range(5)]
    bag = tmp_path / "bag"
    assert write_bag(bag, iter(frames), compressed=compressed) == 5
    info, read = open_source(bag)
    out = list(read)
    assert info.kind == "rosbag2" and info.frames == 5
    assert [round(t, 6) for t, _ in out] == [round(t, 6) for t, _ in frames]
    assert out[3][1].shape == (16, 24, 3) and abs(int(out[3][1].mean()) - 60) <= 2
    mcap = next(bag.glob("*.mcap"))
    assert len(list(open_source(mcap)[1])) == 5


def test_missing_or_unreadable_sources_raise(tmp_path):
    with pytest.raises(SourceError, match="no such"):
        open_source(tmp_path / "nope.avi")
    (tmp_path / "broken.avi").write_bytes(b"not a video")
    with pytest.raises(SourceError):
        open_source(tmp_path / "broken.avi")
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path)
    write_bag(tmp_path / "bag", iter([(0.0, np.zeros((4, 4, 3), np.uint8))]))
    with pytest.raises(SourceError, match="no image topic /other"):
        open_source(tmp_path / "bag", topic="/other")
