"""The streaming protocol: feed each stream clip by clip to a memorizer, in order; answer every task at its
arrival time from the memory written so far (text only), with one answerer for every memorizer compared."""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from taskmem_nodes.answerer import Answerer
from taskmem_nodes.bench.memorizers import ClipContext, StreamMemorizer
from taskmem_nodes.bench.types import BenchStream, BenchTask
from taskmem_nodes.clips import Clip, ClipCutter
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store import MemoryStore
from taskmem_nodes.store.context import assemble_context
from taskmem_nodes.store.retention import RetentionConfig, apply_retention


@dataclass
class BenchConfig:
    """How the protocol runs."""

    clip_seconds: float = 10.0
    """Length of a clip (the paper: 10 s)."""
    sample_fps: float = 1.0
    """Frames per second kept in each clip."""
    recall: str = "whole"
    """"whole": the answerer reads every memory written before the question (the paper's protocol);
    "retrieval": it reads the `recall_k` memories the store ranks best for the question."""
    recall_k: int = 8
    """Candidate memories recalled per question in retrieval mode."""
    context_tokens: int = 0
    """Retrieval mode: the answer context's budget (0 = every recalled memory), counted as the answerer
    node does (`taskmem_nodes.store.context.approximate_tokens`)."""
    retention: RetentionConfig | None = None
    """A retention policy applied after every memory written (None = memory grows without bound)."""


@dataclass(frozen=True)
class TaskOutcome:
    """What the answerer did with one task."""

    task: BenchTask
    answered: bool
    answer: str
    option_index: int
    memory_ids: tuple[str, ...]


@dataclass
class StreamRun:
    """One memorizer on one stream: its outcomes and what its memory cost."""

    stream_id: str
    memorizer: str
    outcomes: list[TaskOutcome] = field(default_factory=list)
    memories: list[MemoryRecord] = field(default_factory=list)
    clips: int = 0
    memorize_seconds: list[float] = field(default_factory=list)

    @property
    def median_seconds_per_clip(self) -> float:
        return statistics.median(self.memorize_seconds) if self.memorize_seconds else 0.0


def stream_clips(stream: BenchStream, config: BenchConfig) -> Iterator[Clip]:
    """Cut a stream's frames into clips aligned to t = 0, sampled to `config.sample_fps`."""
    cutter = ClipCutter(clip_seconds=config.clip_seconds, sample_fps=config.sample_fps, stream_id=stream.stream_id)
    for offset, frame in stream.open_frames():
        if cutter.wants(offset):
            yield from cutter.add(offset, frame, stream.detections(offset) if stream.detections else None)
    yield from cutter.flush()


def run_stream(stream: BenchStream, memorizer: StreamMemorizer, answerer: Answerer, config: BenchConfig,
               *, workdir: Path | None = None, on_clip: Callable[[], None] | None = None) -> StreamRun:
    """Run the streaming protocol for one memorizer on one stream."""
    run = StreamRun(stream.stream_id, memorizer.name)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="taskmem-bench-"))
    store = MemoryStore(workdir / f"{memorizer.name}-{uuid.uuid4().hex[:8]}.db")
    pending = sorted(stream.tasks, key=lambda t: t.arrival)
    memorizer.reset()
    try:
        for clip in stream_clips(stream, config):
            # memory at question time holds the clips that ended by then
            while pending and pending[0].arrival < clip.end:
                run.outcomes.append(_answer(pending.pop(0), store, answerer, config))
            started = time.monotonic()
            text = memorizer.memorize(clip, ClipContext(stream.stream_id, round(clip.start / config.clip_seconds)))
            run.memorize_seconds.append(time.monotonic() - started)
            run.clips += 1
            if text:
                memory = MemoryRecord(f"{stream.stream_id}-{run.clips}", clip.clip_id, clip.start, clip.end, text,
                                      model_version=memorizer.name)
                store.add_memory(memory)
                run.memories.append(memory)
                if config.retention is not None:
                    apply_retention(store, config.retention, since=memory.start - 2 * config.clip_seconds)
            if on_clip is not None:
                on_clip()
        while pending:
            run.outcomes.append(_answer(pending.pop(0), store, answerer, config))
    finally:
        store.close()
    return run


def _answer(task: BenchTask, store: MemoryStore, answerer: Answerer, config: BenchConfig) -> TaskOutcome:
    if config.recall == "whole":
        memories = [m for m in store.memories() if m.end <= task.arrival + 1e-6]
    elif config.recall == "retrieval":
        query = " ".join((task.question, *task.options))
        memories = [m for m, _ in store.recall(query, k=config.recall_k, end=task.arrival)
                    if m.end <= task.arrival + 1e-6]
        if config.context_tokens:
            memories = list(assemble_context(memories, config.context_tokens).memories)
    else:
        raise ValueError(f"recall must be 'whole' or 'retrieval', got {config.recall!r}")
    return answer_task(task, memories, answerer)


def answer_task(task: BenchTask, memories: list[MemoryRecord], answerer: Answerer) -> TaskOutcome:
    """The answerer's outcome on `task` from `memories` alone."""
    answer = answerer.answer(task.question, list(task.options), memories)
    return TaskOutcome(task, answer.answered, answer.text, answer.option_index, answer.memory_ids)
