"""`taskmem bench`: memorizers compared on a dataset's streams with one fixed answerer, over several seeds.

Systems:
- `oracle`: the ground-truth new content of each clip (synthetic world only): the upper bound;
- `oracle-half`: each ground-truth sentence kept with probability 1/2 (seeded): a mid-range system whose
  spread across seeds shows the benchmark's noise where it is largest;
- `policy`: the TaskMem memorization policy on a Qwen3-VL checkpoint (default: the shipped one);
- `captioner`: the same model with a generic fixed prompt, the current clip only (ReMEmbR-style);
- `no-memory`: writes nothing, so it always abstains (the trivial baseline).
"""

from __future__ import annotations

import dataclasses
import random
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from taskmem_nodes.answerer import Answerer
from taskmem_nodes.bench.harness import BenchConfig, run_stream
from taskmem_nodes.bench.judges import Judge
from taskmem_nodes.bench.memorizers import (
    CaptionerMemorizer,
    ClipContext,
    NoMemory,
    OracleMemorizer,
    PolicyMemorizer,
    StreamMemorizer,
)
from taskmem_nodes.bench.metrics import tally
from taskmem_nodes.bench.report import BenchReport, SystemReport
from taskmem_nodes.bench.types import BenchStream
from taskmem_nodes.paths import config_dir, default_model_dir
from taskmem_nodes.sim.dataset import synthetic_dataset
from taskmem_nodes.sim.tasks import TaskConfig
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.fact_judge import EntryVerdict, judge_entry

SYSTEMS = ("oracle", "oracle-half", "policy", "captioner", "no-memory")
DATASETS = ("synthetic", "videomme", "egolife", "egotempo")


@dataclass
class DatasetSpec:
    """Which streams to run: the synthetic world (per seed), or a published dataset's local files."""

    name: str = "synthetic"
    world: WorldConfig = field(default_factory=WorldConfig)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    streams: int = 16
    """Synthetic streams (worlds) per seed (16: per-type seed spread of about 1-3 points, see README)."""
    annotations: Path | None = None
    videos: Path | None = None
    limit: int | None = None
    """Published datasets: at most this many streams."""

    def __post_init__(self) -> None:
        if self.name not in DATASETS:
            raise ValueError(f"unknown dataset {self.name!r}; available: {', '.join(DATASETS)}")
        if self.name != "synthetic" and (self.annotations is None or self.videos is None):
            raise ValueError(f"dataset {self.name} needs --annotations and --videos (local files)")


def load_streams(spec: DatasetSpec, seed: int) -> tuple[list[BenchStream], dict[str, World]]:
    """The streams of one seed, and the worlds behind them (synthetic only, for the oracle)."""
    if spec.name == "synthetic":
        sims = synthetic_dataset(spec.world, spec.tasks, seed=seed, streams=spec.streams)
        return [s.stream for s in sims], {s.stream.stream_id: s.world for s in sims}
    if spec.name == "videomme":
        from taskmem_nodes.bench.datasets import videomme as loader
    elif spec.name == "egolife":
        from taskmem_nodes.bench.datasets import egolife as loader
    else:
        from taskmem_nodes.bench.datasets import egotempo as loader
    return loader.load(spec.annotations, spec.videos, limit=spec.limit), {}


def memorizer_settings(model_path: str = "", **overrides) -> dict:
    """Backend settings as the memorizer node uses them (config/taskmem.yaml), for the benchmark's model."""
    from taskmem_nodes.models.transformers_backend import TransformersBackendConfig

    params = yaml.safe_load((config_dir() / "taskmem.yaml").read_text())["memorizer"]["ros__parameters"]
    known = {f.name for f in dataclasses.fields(TransformersBackendConfig)}
    settings = {k: v for k, v in params.items() if k in known}
    settings.update(overrides, model_path=model_path or str(default_model_dir()))
    return settings


class SystemFactory:
    """Builds the memorizers by name; the model backend is loaded once and shared by policy and captioner."""

    def __init__(self, worlds: dict[str, World], model_settings: dict | None = None):
        self.worlds = worlds
        self.model_settings = model_settings or memorizer_settings()
        self._backend = None

    @property
    def used_model(self) -> bool:
        return self._backend is not None

    def backend(self):
        if self._backend is None:
            from taskmem_nodes.memorizer import load_backend

            self._backend = load_backend("transformers", **self.model_settings)
            self._backend.load()
        return self._backend

    def make(self, name: str) -> StreamMemorizer:
        if name == "oracle":
            return OracleMemorizer(self._describe)
        if name == "oracle-half":
            return OracleMemorizer(self._describe_half, name="oracle-half")
        if name == "policy":
            return PolicyMemorizer(self.backend())
        if name == "captioner":
            return CaptionerMemorizer(self.backend())
        if name == "no-memory":
            return NoMemory()
        raise ValueError(f"unknown system {name!r}; available: {', '.join(SYSTEMS)}")

    def _describe(self, context: ClipContext) -> str | None:
        world = self.worlds.get(context.stream_id)
        if world is None:
            raise ValueError("the oracle memory needs ground truth: it runs on the synthetic dataset only")
        return world.describe_new(context.index) if context.index < len(world.clips) else None

    def _describe_half(self, context: ClipContext) -> str | None:
        text = self._describe(context)
        if text is None:
            return None
        rng = random.Random(zlib.crc32(f"{context.stream_id}/{context.index}".encode()))  # same on every run
        kept = [s for s in re.split(r"(?<=\.)\s+", text) if rng.random() < 0.5]
        return " ".join(kept) or None


def run_benchmark(spec: DatasetSpec, seeds: list[int], systems: list[str], answerer: Answerer, judge: Judge,
                  config: BenchConfig, *, model_settings: dict | None = None,
                  count_tokens: Callable[[str], int] = lambda text: len(text.split()),
                  on_clip: Callable[[], None] | None = None, workdir: Path | None = None,
                  reference: str = "") -> BenchReport:
    """Run every system on every seed's streams; the answerer and judge are the same for all of them."""
    if reference and reference not in systems:
        raise ValueError(f"reference {reference!r} must be one of the systems run: {', '.join(systems)}")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; available: {', '.join(SYSTEMS)}")
    if spec.name != "synthetic" and {"oracle", "oracle-half"} & set(systems):
        raise ValueError("the oracle memory needs ground truth: use it with --dataset synthetic")
    reports = {name: SystemReport(name) for name in systems}
    task_counts: dict[int, dict[str, int]] = {}
    factory = SystemFactory({}, model_settings)
    for seed in seeds:
        streams, worlds = load_streams(spec, seed)
        factory.worlds = worlds
        task_counts[seed] = dict(Counter(t.task_type for s in streams for t in s.tasks))
        for name in systems:
            memorizer = factory.make(name)
            outcomes = []
            report = reports[name]
            for stream in streams:
                run = run_stream(stream, memorizer, answerer, config, workdir=workdir, on_clip=on_clip)
                outcomes += run.outcomes
                report.clips += run.clips
                report.entries += len(run.memories)
                report.entry_tokens += [count_tokens(m.text) for m in run.memories]
                report.seconds_per_clip += run.memorize_seconds
                if stream.stream_id in worlds:
                    report.verdicts += judge_stream(worlds[stream.stream_id], run.memories)
            report.per_seed[seed] = tally(outcomes, judge)
    settings = {"bench": dataclasses.asdict(config), "answerer": answerer.name, "judge": judge.name}
    if spec.name == "synthetic":
        settings |= {"world": dataclasses.asdict(spec.world), "tasks": dataclasses.asdict(spec.tasks),
                     "streams_per_seed": spec.streams}
    else:
        settings |= {"annotations": str(spec.annotations), "videos": str(spec.videos), "limit": spec.limit}
    if factory.used_model:
        settings["model"] = factory.model_settings
    return BenchReport(spec.name, seeds, settings, task_counts, reports, reference)


def judge_stream(world: World, memories: list) -> list[EntryVerdict]:
    """Ground-truth verdicts of a stream's memories, each against the clip it was written for and the
    memories written for the four clips before it."""
    by_index = {round(m.start / world.config.clip_seconds): m.text for m in memories}
    return [judge_entry(world, index, text, [by_index[i] for i in range(index - 4, index) if i in by_index])
            for index, text in sorted(by_index.items()) if index < len(world.clips)]


def count_clips(spec: DatasetSpec, seeds: list[int], systems: list[str]) -> int | None:
    """Clips the run will memorize (for a progress bar), when known in advance."""
    if spec.name != "synthetic":
        return None
    return len(seeds) * len(systems) * spec.streams * spec.world.clips
