"""EgoTempo: open questions about temporal understanding of egocentric clips, asked at each clip's end.

Annotations as published (`egotempo_openQA.json`): a list of `question_id`, `clip_id`
(`{video_uid}_{start}_{end}`, seconds), `question_type` (10 temporal categories), `question`, `answer`.
Videos: `<videos>/<clip_id>.mp4`, or the whole `<videos>/<video_uid>.mp4`, which is then trimmed.
"""

from __future__ import annotations

from pathlib import Path

from taskmem_nodes.bench.datasets.common import (
    AFTER_THE_STREAM,
    DatasetError,
    chained_frames,
    field,
    find_video,
    read_records,
    slug,
)
from taskmem_nodes.bench.types import BenchStream, BenchTask


def parse_clip_id(clip_id: str, where: str) -> tuple[str, float, float]:
    """'{video_uid}_{start}_{end}' -> (video_uid, start, end); the uid may itself contain '_'."""
    parts = clip_id.rsplit("_", 2)
    try:
        uid, start, end = parts[0], float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise DatasetError(f"{where}: clip_id {clip_id!r} is not '<video_uid>_<start>_<end>'") from None
    if not uid or not 0 <= start < end:
        raise DatasetError(f"{where}: clip_id {clip_id!r} needs a video uid and 0 <= start < end")
    return uid, start, end


def load(annotations: Path, videos: Path, *, limit: int | None = None) -> list[BenchStream]:
    annotations, videos = Path(annotations), Path(videos)
    records = read_records(annotations)
    if not isinstance(records, list):
        raise DatasetError(f"{annotations}: expected a list of questions")
    by_clip: dict[str, list[tuple[dict, str]]] = {}
    for i, record in enumerate(records):
        where = f"{annotations} record {i}"
        by_clip.setdefault(field(record, "clip_id", where), []).append((record, where))
    streams = []
    for clip_id, questions in list(by_clip.items())[:limit]:
        uid, start, end = parse_clip_id(clip_id, questions[0][1])
        if path := find_video(videos, clip_id):
            parts = [(path, 0.0, 0.0, None)]
        elif path := find_video(videos, uid):
            parts = [(path, 0.0, start, end)]
        else:
            raise DatasetError(f"no video {clip_id} or {uid} (.mp4/.mkv/.webm/.avi/.mov) in {videos}")
        duration = end - start
        tasks = tuple(BenchTask(
            task_id=str(record.get("question_id") or f"{clip_id}-{n}"), stream_id=clip_id,
            task_type=slug(field(record, "question_type", where)), question=field(record, "question", where),
            options=(), answer=str(field(record, "answer", where, (str, int, float))), answer_index=-1,
            arrival=AFTER_THE_STREAM,
        ) for n, (record, where) in enumerate(questions))
        streams.append(BenchStream(clip_id, lambda parts=parts: chained_frames(parts), tasks, duration))
    return streams
