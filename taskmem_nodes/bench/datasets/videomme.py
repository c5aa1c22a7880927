"""Video-MME: four-option questions asked after each whole video (short, medium and long videos).

Annotations as published: rows (the Hugging Face parquet exported to .json/.jsonl) with `video_id`,
`duration`, `domain`, `sub_category`, `videoID` (the YouTube id, the video file's stem), `question_id`,
`task_type`, `question`, `options` (["A. ...", ...]) and `answer` ("A".."D"); or the original repository's
layout, a list of videos each with a `questions` list. Videos: `<videos>/<videoID>.mp4`.
"""

from __future__ import annotations

import re
from pathlib import Path

from taskmem_nodes.bench.datasets.common import (
    AFTER_THE_STREAM,
    DatasetError,
    answer_index,
    chained_frames,
    field,
    find_video,
    read_records,
    slug,
    video_duration,
)
from taskmem_nodes.bench.types import BenchStream, BenchTask

_OPTION_PREFIX = re.compile(r"^\s*[A-Da-d][.):]\s*")


def _rows(records, path: Path) -> list[tuple[dict, dict, str]]:
    """(video fields, question fields, where) for both published layouts."""
    if not isinstance(records, list):
        raise DatasetError(f"{path}: expected a list of rows or videos")
    rows = []
    for i, record in enumerate(records):
        where = f"{path} record {i}"
        if isinstance(record, dict) and "questions" in record:
            for j, question in enumerate(field(record, "questions", where, list)):
                rows.append((record, question, f"{where} question {j}"))
        else:
            rows.append((record, record, where))
    return rows


def load(annotations: Path, videos: Path, *, limit: int | None = None) -> list[BenchStream]:
    annotations, videos = Path(annotations), Path(videos)
    by_video: dict[str, list[tuple[dict, str]]] = {}
    for video, question, where in _rows(read_records(annotations), annotations):
        video_key = field(video, "videoID", where)
        by_video.setdefault(video_key, []).append((question, where))
    streams = []
    for video_key, questions in list(by_video.items())[:limit]:
        path = find_video(videos, video_key)
        if path is None:
            raise DatasetError(f"no video {video_key} (.mp4/.mkv/.webm/.avi/.mov) in {videos}")
        duration = video_duration(path)
        tasks = []
        for question, where in questions:
            options = field(question, "options", where, list)
            if len(options) < 2 or not all(isinstance(o, str) for o in options):
                raise DatasetError(f"{where}: options must be a list of at least two strings")
            texts = tuple(_OPTION_PREFIX.sub("", o).strip() for o in options)
            index = answer_index(field(question, "answer", where), len(texts), where)
            tasks.append(BenchTask(
                task_id=str(question.get("question_id") or f"{video_key}-{len(tasks)}"), stream_id=video_key,
                task_type=slug(field(question, "task_type", where)), question=field(question, "question", where),
                options=texts, answer=texts[index], answer_index=index, arrival=AFTER_THE_STREAM,
            ))
        streams.append(BenchStream(video_key, lambda path=path: chained_frames([(path, 0.0, 0.0, None)]),
                                   tuple(tasks), duration))
    return streams
