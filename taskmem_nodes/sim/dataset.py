"""The simulated world as a benchmark dataset, and as files: a video, a rosbag2 and the tasks as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from taskmem_nodes.bench.types import BenchStream, BenchTask, FrameStream
from taskmem_nodes.clips import Detection
from taskmem_nodes.sim.render import frame_size, person_detections, render_frame
from taskmem_nodes.sim.tasks import TaskConfig, TaskGenerator
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.video_source import write_bag


@dataclass
class SimStream:
    """One simulated stream: its world (ground truth) and the benchmark view of it."""

    world: World
    stream: BenchStream


def load_sim_config(path: str | Path, **world_overrides) -> tuple[WorldConfig, TaskConfig]:
    """A world file (`world:` and `tasks:` sections, see sim/worlds/default.yaml) with overrides applied."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict) or set(data) - {"world", "tasks"}:
        raise ValueError(f"{path}: a world file has the sections 'world' and 'tasks' only")
    world = {**(data.get("world") or {}), **{k: v for k, v in world_overrides.items() if v is not None}}
    return WorldConfig.from_dict(world), TaskConfig.from_dict(data.get("tasks") or {})


def world_frames(world: World) -> FrameStream:
    """Rendered frames of the whole stream at the world's fps, as (offset seconds, RGB)."""
    config = world.config
    rooms = {r.name: r for r in config.room_specs}
    step = 1.0 / config.fps
    for clip in world.clips:
        count = round(config.clip_seconds * config.fps)
        for k in range(count):
            offset = clip.start + k * step
            yield offset, render_frame(clip.state_at(offset), rooms[clip.room], config.cell_px)


def world_detections(world: World) -> Callable[[float], tuple[Detection, ...]]:
    """The simulated person tracker: the people in view at a stream offset."""
    def at(offset: float) -> tuple[Detection, ...]:
        index = min(max(0, int(offset // world.config.clip_seconds)), len(world.clips) - 1)
        clip = world.clips[index]
        return person_detections(clip.state_at(offset), clip.room)
    return at


def stream_tasks(world: World, task_config: TaskConfig, stream_id: str) -> tuple[BenchTask, ...]:
    """The tasks asked during `world`'s stream; the task generator is seeded from the world's seed."""
    return TaskGenerator(world, task_config, seed=world.config.seed + 7919).generate(stream_id)


def make_stream(world_config: WorldConfig, task_config: TaskConfig, stream_id: str) -> SimStream:
    """A world and its tasks."""
    world = World(world_config)
    tasks = stream_tasks(world, task_config, stream_id)
    stream = BenchStream(stream_id, lambda: world_frames(world), tasks,
                         duration=world_config.clips * world_config.clip_seconds, detections=world_detections(world))
    return SimStream(world, stream)


def synthetic_dataset(world_config: WorldConfig, task_config: TaskConfig, *, seed: int,
                      streams: int) -> list[SimStream]:
    """`streams` worlds for one benchmark seed (world seeds seed*1000 + i)."""
    return [make_stream(dataclasses.replace(world_config, seed=seed * 1000 + i), task_config, f"sim{seed}-{i}")
            for i in range(streams)]


def export_stream(sim: SimStream, out: Path, *, video: bool = True, bag: bool = True) -> dict[str, Path]:
    """Write the stream as `stream.avi` (MJPG), `stream.mcap` (rosbag2: sensor_msgs/Image and the tracker's
    TrackedEntities) and `tasks.json` + `truth.json` (per-clip facts); returns what was written."""
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if video:
        path = out / "stream.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), sim.world.config.fps,
                                 frame_size(sim.world.config.cell_px))
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot write {path}")
        for _, rgb in world_frames(sim.world):
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        writer.release()
        written["video"] = path
    if bag:
        path = out / "stream.mcap"
        if path.exists():
            raise FileExistsError(f"{path} exists; remove it or export elsewhere")
        write_bag(path, world_frames(sim.world), detections=world_detections(sim.world))
        written["bag"] = path
    tasks = [dataclasses.asdict(t) for t in sim.stream.tasks]
    (out / "tasks.json").write_text(json.dumps(tasks, indent=1))
    truth = [{"index": c.index, "start": c.start, "end": c.end, "room": c.room,
              "facts": [{"time": f.time, "text": f.text} for f in c.facts],
              "new_content": sim.world.describe_new(c.index)} for c in sim.world.clips]
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    written["tasks"], written["truth"] = out / "tasks.json", out / "truth.json"
    return written


def preview_sheet(world_config: WorldConfig, clips: int, out: Path) -> list[str]:
    """Write the first and last frame of the first `clips` clips side by side as a PNG; returns their facts."""
    world = World(world_config)
    rooms = {r.name: r for r in world_config.room_specs}
    rows, lines = [], []
    for clip in world.clips[:clips]:
        frames = [render_frame(clip.state_at(t), rooms[clip.room], world_config.cell_px)
                  for t in (clip.start, clip.end - 1e-3)]
        rows.append(np.hstack([frames[0], np.full((frames[0].shape[0], 4, 3), 255, np.uint8), frames[1]]))
        lines.append(f"clip {clip.index} ({clip.start:.0f}-{clip.end:.0f} s): {world.describe(clip.index)}")
    cv2.imwrite(str(out), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    return lines
