"""What every benchmark dataset provides: streams of frames and tasks that arrive during them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from taskmem_nodes.clips import Detection

FrameStream = Iterator[tuple[float, np.ndarray]]
"""(offset seconds from the stream start, (H, W, 3) uint8 RGB frame) in stream order."""

ABSTAIN_TYPES = ("not_seen",)
"""Task types whose right answer is to abstain ("cannot find the answer")."""


@dataclass(frozen=True)
class BenchTask:
    """A question asked during a stream, answered from memory only."""

    task_id: str
    stream_id: str
    task_type: str  # e.g. "location", "count", "temporal_order", "activity", "attribute", "not_seen"
    question: str
    options: tuple[str, ...]  # multiple choice when non-empty; open question when empty
    answer: str  # the right option's text, or the open answer; "" when the right answer is to abstain
    answer_index: int  # index of the right option; -1 for open questions and when the right answer is to abstain
    arrival: float  # seconds from the stream start at which the question is asked (memory up to then)
    evidence: tuple[tuple[float, float], ...] = ()  # stream-time spans that hold the answer, when known
    alternatives: tuple[str, ...] = ()  # known wrong answers of an open question (a judge rejects hedging)

    @property
    def should_abstain(self) -> bool:
        return self.task_type in ABSTAIN_TYPES or (not self.answer and self.answer_index < 0)


@dataclass(frozen=True)
class BenchStream:
    """One video stream of a dataset, with the tasks asked during it."""

    stream_id: str
    open_frames: Callable[[], FrameStream]  # a fresh iterator over the frames each call
    tasks: tuple[BenchTask, ...]
    duration: float | None = None  # seconds, when known
    detections: Callable[[float], tuple[Detection, ...]] | None = None  # the person tracker at an offset, if any
