"""A deployment: what a robot kept while it worked — its store (the memories it wrote, the task log) and its
clip archive — as Phase Two reads it. `record_simulated_deployment` produces one on the synthetic world: the
memorizer streams the worlds, tasks of a chosen mix arrive and are answered from memory and logged.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from taskmem_nodes.clip_archive import ArchivedClip, ClipArchive
from taskmem_nodes.policy import PRECEDING_MEMORIES, PrecedingMemory, build_request, select_window
from taskmem_nodes.records import MemoryRecord, TaskLogRecord
from taskmem_nodes.sim.world import World, WorldConfig

STORE_FILE = "store.db"
CLIPS_DIR = "clips"


@dataclass
class Deployment:
    """Archived clips per stream (in order), the memories written for them by clip id, the task log."""

    streams: dict[str, list[ArchivedClip]]
    memories: dict[str, str]
    tasks: list[TaskLogRecord]
    written_by: dict[str, tuple[str, str]] = field(default_factory=dict)  # clip id -> (model, adapter version)

    @classmethod
    def load(cls, root: str | Path) -> Deployment:
        """`<root>/store.db` and `<root>/clips/` (what `record_simulated_deployment` writes)."""
        return cls.from_files(Path(root) / STORE_FILE, Path(root) / CLIPS_DIR)

    @classmethod
    def from_files(cls, store_path: str | Path, clips_dir: str | Path) -> Deployment:
        """A robot's store file and clip archive (FileNotFoundError when either is missing)."""
        from taskmem_nodes.store import MemoryStore

        store_path, clips_dir = Path(store_path).expanduser(), Path(clips_dir).expanduser()
        if not store_path.is_file() or not clips_dir.is_dir():
            raise FileNotFoundError(f"a deployment needs a store file ({store_path}) and a clip archive ({clips_dir})")
        streams: dict[str, list[ArchivedClip]] = defaultdict(list)
        for archived in ClipArchive(clips_dir).clips():
            streams[archived.stream_id].append(archived)
        for clips in streams.values():
            clips.sort(key=lambda a: a.index)
        store = MemoryStore(store_path, readonly=True)
        try:
            records = store.memories()
            tasks = list(store.tasks())
        finally:
            store.close()
        return cls(dict(streams), {m.clip_id: m.text for m in records}, tasks,
                   {m.clip_id: (m.model_version, m.adapter_version) for m in records})

    def labelled_tasks(self, worlds: dict[str, World] | None = None) -> dict[str, tuple]:
        """The tasks of simulated streams with their right answers and evidence (BenchTask), regenerated from the
        task settings the archive kept and the streams' worlds (`worlds()`, built here unless given); streams
        recorded without task settings have none."""
        from taskmem_nodes.sim.dataset import stream_tasks
        from taskmem_nodes.sim.tasks import TaskConfig

        worlds = self.worlds() if worlds is None else worlds
        return {sid: stream_tasks(worlds[sid], TaskConfig.from_dict(clips[0].source["tasks"]), sid)
                for sid, clips in self.streams.items() if sid in worlds and clips and "tasks" in clips[0].source}

    def worlds(self) -> dict[str, World]:
        """The simulated worlds of the streams that came from one (ground truth for the judges)."""
        return {sid: World(WorldConfig.from_dict(clips[0].source["world"]))
                for sid, clips in self.streams.items() if clips and "world" in clips[0].source}

    def request(self, stream_id: str, position: int, frames_per_clip: int):
        """The policy input for one archived clip: its window and the memories written for the clips before."""
        clips = self.streams[stream_id]
        current = clips[position].clip
        window = select_window([a.clip for a in clips[: position + 1]], current)
        preceding = [PrecedingMemory(a.clip.start, a.clip.end, self.memories[a.clip.clip_id])
                     for a in clips[max(0, position - PRECEDING_MEMORIES): position] if a.clip.clip_id in self.memories]
        return build_request(window, preceding, frames_per_clip)

    def written_only_by(self, model_version: str, adapter_version: str) -> bool:
        """Whether every archived clip's memory was written by this model with this adapter ("" = none)."""
        return all(self.written_by.get(a.clip.clip_id) == (model_version, adapter_version)
                   for clips in self.streams.values() for a in clips)

    def preceding_texts(self, stream_id: str, position: int) -> tuple[str, ...]:
        clips = self.streams[stream_id][max(0, position - PRECEDING_MEMORIES): position]
        return tuple(self.memories[a.clip.clip_id] for a in clips if a.clip.clip_id in self.memories)


def record_simulated_deployment(out: str | Path, backend, world_config: WorldConfig, task_config, *,
                                seeds: list[int], streams: int, on_clip: Callable[[], None] | None = None) -> dict:
    """Stream the synthetic worlds of `seeds` through the memorizer (on `backend`, loaded), answer and log
    every task when it arrives, archive every clip; returns counts."""
    from taskmem_nodes.answerer import LexicalAnswerer
    from taskmem_nodes.bench.harness import BenchConfig, stream_clips
    from taskmem_nodes.memorizer import Memorizer
    from taskmem_nodes.sim.dataset import synthetic_dataset
    from taskmem_nodes.store import MemoryStore

    out = Path(out)
    if (out / STORE_FILE).exists():
        raise FileExistsError(f"{out / STORE_FILE} exists; record into a new directory")
    out.mkdir(parents=True, exist_ok=True)
    store = MemoryStore(out / STORE_FILE)
    archive = ClipArchive(out / CLIPS_DIR, max_clips=1_000_000)
    answerer, bench = LexicalAnswerer(), BenchConfig()
    counts = {"clips": 0, "memories": 0, "rejected": 0, "tasks": 0}
    try:
        for seed in seeds:
            for sim in synthetic_dataset(world_config, task_config, seed=seed, streams=streams):
                memorizer = Memorizer(backend)
                source = {"world": dataclasses.asdict(sim.world.config), "tasks": dataclasses.asdict(task_config)}
                pending = sorted(sim.stream.tasks, key=lambda t: t.arrival)
                for clip in stream_clips(sim.stream, bench):
                    while pending and pending[0].arrival < clip.end:
                        _log_answered(store, answerer, pending.pop(0))
                        counts["tasks"] += 1
                    archive.add(clip, sim.stream.stream_id, round(clip.start / bench.clip_seconds), source)
                    record = memorizer.memorize(clip)
                    if isinstance(record, MemoryRecord):
                        store.add_memory(record)
                        counts["memories"] += 1
                    else:
                        store.add_rejected(record)
                        counts["rejected"] += 1
                    counts["clips"] += 1
                    if on_clip is not None:
                        on_clip()
                for task in pending:
                    _log_answered(store, answerer, task)
                    counts["tasks"] += 1
    finally:
        store.close()
    return counts


def _log_answered(store, answerer, task) -> None:
    memories = [m for m in store.memories() if m.end <= task.arrival + 1e-6]
    answer = answerer.answer(task.question, list(task.options), memories)
    store.log_task(TaskLogRecord(
        task_id=task.task_id, question=task.question, asked_at=task.arrival, task_type=task.task_type,
        options=tuple(task.options), answered=answer.answered, answer=answer.text,
        option_index=answer.option_index, memory_ids=answer.memory_ids, answerer="lexical",
    ))
