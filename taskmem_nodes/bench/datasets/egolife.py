"""EgoLifeQA: multiple-choice questions asked at a wall-clock time during a week of egocentric video.

Annotations as published: a list of records with `ID`, `query_time` ({"date": "DAY1", "time": "11210217"},
time as HHMMSSff, ff in hundredths), `type` (EntityLog, EventRecall, HabitInsight, RelationMap, TaskMaster),
`question`, `choice_a`..`choice_d`, `answer` (a letter) and `target_time` (one time or a list), optionally
`identity` (e.g. "A1_JAKE"). Videos: 30-s clips named `<DAY>_<identity>_<HHMMSSff>.mp4`, anywhere under
`videos`. One stream per day and identity, in wall-clock time from that day's first clip; a question arrives
at its query time; the target times on that day are its evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from taskmem_nodes.bench.datasets.common import (
    VIDEO_SUFFIXES,
    DatasetError,
    answer_index,
    chained_frames,
    field,
    read_records,
    slug,
)
from taskmem_nodes.bench.types import BenchStream, BenchTask

CLIP_SECONDS = 30.0
_CLIP_NAME = re.compile(r"^(DAY\d+)_(.+)_(\d{8})$")


@dataclass(frozen=True)
class LoadResult:
    """Streams, and the questions skipped because no video of their day and identity is present."""

    streams: list[BenchStream]
    skipped: int


def clock_seconds(value, where: str) -> tuple[str, float]:
    """{"date": "DAY1", "time": "11210217"} or "DAY1_11210217" -> ("DAY1", seconds since midnight)."""
    if isinstance(value, dict):
        day, time = value.get("date"), value.get("time")
    elif isinstance(value, str) and "_" in value:
        day, _, time = value.partition("_")
    else:
        day = time = None
    time = str(time) if time is not None else ""
    if not isinstance(day, str) or not re.fullmatch(r"DAY\d+", day) or not re.fullmatch(r"\d{8}", time):
        raise DatasetError(f"{where}: time {value!r} is not {{'date': 'DAY<n>', 'time': 'HHMMSSff'}}")
    hours, minutes, seconds, hundredths = (int(time[i:i + 2]) for i in (0, 2, 4, 6))
    if hours > 23 or minutes > 59 or seconds > 59:
        raise DatasetError(f"{where}: time {time} is not a valid HHMMSSff clock time")
    return day, hours * 3600 + minutes * 60 + seconds + hundredths / 100


def _clips(videos: Path) -> dict[tuple[str, str], list[tuple[float, Path]]]:
    found: dict[tuple[str, str], list[tuple[float, Path]]] = {}
    for path in sorted(videos.rglob("*")):
        match = _CLIP_NAME.match(path.stem)
        if path.suffix.lower() in VIDEO_SUFFIXES and match:
            day, identity, time = match.groups()
            _, start = clock_seconds({"date": day, "time": time}, str(path))
            found.setdefault((day, identity), []).append((start, path))
    return {key: sorted(clips) for key, clips in found.items()}


def load_with_skips(annotations: Path, videos: Path, *, limit: int | None = None) -> LoadResult:
    annotations, videos = Path(annotations), Path(videos)
    records = read_records(annotations)
    if not isinstance(records, list):
        raise DatasetError(f"{annotations}: expected a list of questions")
    clips = _clips(videos)
    tasks: dict[tuple[str, str], list[BenchTask]] = {}
    skipped = 0
    for i, record in enumerate(records):
        where = f"{annotations} record {i}"
        day, asked = clock_seconds(field(record, "query_time", where, (dict, str)), where)
        identity = record.get("identity") if isinstance(record, dict) else None
        keys = [k for k in clips if k[0] == day and (identity is None or k[1] == identity)]
        if len(keys) > 1:
            raise DatasetError(f"{where}: videos of several people on {day}; the record needs an 'identity'")
        if not keys:
            skipped += 1
            continue
        key = keys[0]
        first = clips[key][0][0]
        options = tuple(str(field(record, f"choice_{c}", where, (str, int, float))) for c in "abcd")
        index = answer_index(field(record, "answer", where), len(options), where)
        targets = record.get("target_time") or []
        targets = targets if isinstance(targets, list) else [targets]
        evidence = []
        for target in targets:
            target_day, at = clock_seconds(target, where)
            if target_day == day:  # a stream is one day: evidence on other days has no place in it
                evidence.append((at - first, at - first + CLIP_SECONDS))
        stream_id = f"{day}_{key[1]}"
        tasks.setdefault(key, []).append(BenchTask(
            task_id=str(record.get("ID", f"{stream_id}-{i}")), stream_id=stream_id,
            task_type=slug(field(record, "type", where)), question=field(record, "question", where),
            options=options, answer=options[index], answer_index=index, arrival=max(0.0, asked - first),
            evidence=tuple(evidence),
        ))
    streams = []
    for key, questions in list(tasks.items())[:limit]:
        first = clips[key][0][0]
        parts = [(path, start - first, 0.0, None) for start, path in clips[key]]
        duration = clips[key][-1][0] - first + CLIP_SECONDS
        streams.append(BenchStream(f"{key[0]}_{key[1]}", lambda parts=parts: chained_frames(parts),
                                   tuple(sorted(questions, key=lambda t: t.arrival)), duration))
    return LoadResult(streams, skipped)


def load(annotations: Path, videos: Path, *, limit: int | None = None) -> list[BenchStream]:
    """Streams of the questions whose day has videos (see `load_with_skips` for how many were skipped)."""
    return load_with_skips(annotations, videos, limit=limit).streams
