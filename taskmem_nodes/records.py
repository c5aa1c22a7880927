"""Plain records that flow between the core modules: memories, rejected outputs, tasks."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryRecord:
    """One memory entry, as stored."""

    memory_id: str
    clip_id: str
    start: float  # seconds, ROS time
    end: float
    text: str
    entity_ids: tuple[str, ...] = ()
    raw_output: str = ""
    model_version: str = ""
    adapter_version: str = ""
    generation_seconds: float = 0.0
    created_at: float = field(default_factory=time.time)
    frame_id: str = ""  # the frame `pose` is given in ("" = no pose)
    pose: tuple[float, ...] | None = None  # (x, y, z, qx, qy, qz, qw) of the robot when the clip was seen
    kind: str = "clip"  # clip: one clip's memory; merged: near-duplicates merged; summary: old memories consolidated


@dataclass(frozen=True)
class RejectedRecord:
    """A model output that was not a valid memory, kept for audit."""

    attempt_id: str
    clip_id: str
    start: float
    end: float
    raw_output: str
    reason: str
    model_version: str = ""
    adapter_version: str = ""
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class TaskLogRecord:
    """A question the robot received and what it answered."""

    task_id: str
    question: str
    asked_at: float
    task_type: str = ""
    options: tuple[str, ...] = ()
    answered: bool = False
    answer: str = ""
    option_index: int = -1
    memory_ids: tuple[str, ...] = ()
    answerer: str = ""


def format_clock(seconds: float) -> str:
    """HH:MM:SS of a time of day (UTC) or of a stream offset."""
    total = int(seconds) % 86400
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def render_entry(memory: MemoryRecord) -> str:
    """One memory as the paper renders it for question answering: `HH:MM:SS-HH:MM:SS\\n<description>`."""
    return f"{format_clock(memory.start)}-{format_clock(memory.end)}\n{memory.text}"


def render_memories(memories: Iterable[MemoryRecord]) -> str:
    """Memory text for question answering, one entry per memory in time order."""
    return "\n\n".join(render_entry(m) for m in sorted(memories, key=lambda m: m.start))
