"""What the dataset loaders share: reading records, checking fields, finding and chaining videos."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from taskmem_nodes.video_source import SourceError, open_source

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov")
AFTER_THE_STREAM = float("inf")
"""The arrival of a question asked once the whole stream was seen. Not the stream's duration: the harness makes
a clip's memory visible at the clip's grid end, which lies past the duration when the last clip is partial."""


class DatasetError(ValueError):
    """An annotation file, record or video that cannot be used, with where and why."""


def read_records(path: Path) -> list:
    """A JSON document (any shape) or JSON Lines (a list of objects)."""
    if not path.is_file():
        raise DatasetError(f"no annotation file {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path} is not valid JSON{' Lines' if path.suffix == '.jsonl' else ''}: {err}") from None


def field(record, name: str, where: str, kind: type | tuple[type, ...] = str):
    """`record[name]`, which must exist and be of `kind`."""
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected an object, got {type(record).__name__}")
    if name not in record:
        raise DatasetError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise DatasetError(f"{where}: field {name!r} must be a non-empty {getattr(kind, '__name__', kind)}")
    return value


def answer_index(letter: str, options: int, where: str) -> int:
    letter = letter.strip().upper().rstrip(".")
    if len(letter) != 1 or not "A" <= letter < chr(ord("A") + options):
        raise DatasetError(f"{where}: answer {letter!r} is not one of the {options} option letters")
    return ord(letter) - ord("A")


def slug(text: str) -> str:
    """'Counting Problem' -> 'counting_problem', 'EventRecall' -> 'event_recall'."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return re.sub(r"[^a-z0-9]+", "_", words.lower()).strip("_") or "unknown"


def find_video(videos: Path, stem: str) -> Path | None:
    for suffix in VIDEO_SUFFIXES:
        candidate = videos / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def video_duration(path: Path) -> float | None:
    """Seconds, from the container's frame count and rate (None when it does not say)."""
    try:
        info, frames = open_source(path)
    except SourceError as err:
        raise DatasetError(str(err)) from None
    frames.close()
    return info.frames / info.fps if info.frames and info.fps else None


def chained_frames(parts: list[tuple[Path, float, float, float | None]]) -> Iterator[tuple[float, np.ndarray]]:
    """Frames of several videos as one stream: `(path, stream offset of the video's start, from, to)` per part,
    `from`/`to` trimming each video in its own time (None = to its end); offsets never go backwards."""
    last = -1.0
    for path, start, trim_from, trim_to in parts:
        try:
            _, frames = open_source(path)
        except SourceError as err:
            raise DatasetError(str(err)) from None
        for offset, frame in frames:
            if offset < trim_from:
                continue
            if trim_to is not None and offset >= trim_to:
                break
            at = start + offset - trim_from
            if at > last:
                last = at
                yield at, frame
        frames.close()
