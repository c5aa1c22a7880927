"""`taskmem bench`: memorizers compared on a dataset's streams with one fixed answerer, over several seeds.

Systems:
- `oracle`: the ground-truth new content of each clip (synthetic world only): the upper bound;
- `oracle-half`: each ground-truth sentence kept with probability 1/2 (seeded): a mid-range system whose
  spread across seeds shows the benchmark's noise where it is largest;
- `oracle-budget`: the room and at most `BUDGET_FACTS` of the ground-truth new facts, drawn at random (seeded):
  the best a budgeted memorizer with no preference among the facts writes (what
  `config/train/warm_start_budget_tiny.yaml` teaches);
- `oracle-budget-focused`: the same budget spent on the facts that answer the task mix's types, by weight:
  the best choice for the tasks asked, the ceiling of what Phase Two can learn on a budgeted memorizer;
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
from taskmem_nodes.sim.dataset import synthetic_dataset
from taskmem_nodes.sim.tasks import TaskConfig, answers_task_type
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import within_budget
from taskmem_nodes.train.fact_judge import EntryVerdict, judge_entry

SYSTEMS = ("oracle", "oracle-half", "oracle-budget", "oracle-budget-focused", "policy", "captioner", "no-memory")
ORACLES = ("oracle", "oracle-half", "oracle-budget", "oracle-budget-focused")
BUDGET_FACTS = 2
"""New facts per memory besides the room, for the budgeted oracles (the method's 1-2 sentences)."""
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


def memorizer_settings(model_path: str = "", model_config: str | Path | None = None, **overrides) -> dict:
    """Backend settings as the memorizer node gets them (config/taskmem.yaml, then `model_config` if given);
    model_path "" is the shipped default model, expanded when a system first needs it."""
    from taskmem_nodes.memorizer import BACKEND_PARAMETERS, memorizer_parameters

    params = memorizer_parameters(*([model_config] if model_config else []))
    if model_path:
        params["model_path"] = model_path
    names = (*BACKEND_PARAMETERS, "min_statement_confidence")
    return {**{name: params[name] for name in names if name in params}, **overrides}


class SystemFactory:
    """Builds the memorizers by name. `policy` and `captioner` use the model of `model_settings`; `policy:<label>`
    the model `extra_models[label]` (several checkpoints side by side; an `adapter` key steers it with that
    Phase Two adapter file, at `adapter_scale` when given). Each backend is loaded once."""

    def __init__(self, worlds: dict[str, World], model_settings: dict | None = None,
                 extra_models: dict[str, dict] | None = None, task_mix: dict[str, float] | None = None):
        self.worlds = worlds
        self.task_mix = task_mix or {}
        self.model_settings = model_settings or memorizer_settings()
        self.extra_models = extra_models or {}
        self._backends: dict[str, object] = {}

    @property
    def used_models(self) -> dict[str, dict]:
        """Settings of the models that were loaded, by label ('' = the main model)."""
        return {label: self.extra_models.get(label, self.model_settings) for label in self._backends}

    def check(self, name: str) -> None:
        """Raise ValueError for a system name this factory cannot build."""
        base, _, label = name.partition(":")
        if base not in SYSTEMS or (label and (base != "policy" or label not in self.extra_models)):
            known = [*SYSTEMS, *(f"policy:{label}" for label in self.extra_models)]
            raise ValueError(f"unknown system {name!r}; available: {', '.join(known)}")

    def backend(self, label: str = ""):
        if label not in self._backends:
            from taskmem_nodes.memorizer import backend_settings, load_backend

            settings = dict(self.extra_models.get(label, self.model_settings))
            adapter, scale = settings.pop("adapter", ""), settings.pop("adapter_scale", None)
            backend = load_backend("transformers", **backend_settings(settings))
            backend.load()
            if adapter:  # a Phase Two steering adapter on this checkpoint
                from taskmem_nodes.models.steering import SteeringAdapter

                steering = SteeringAdapter.load(adapter)
                backend.set_adapter(steering if scale is None else steering.rescaled(scale))
            self._backends[label] = backend
        return self._backends[label]

    def make(self, name: str) -> StreamMemorizer:
        self.check(name)
        base, _, label = name.partition(":")
        if base == "oracle":
            return OracleMemorizer(self._describe)
        if base == "oracle-half":
            return OracleMemorizer(self._describe_half, name="oracle-half")
        if base in ("oracle-budget", "oracle-budget-focused"):
            return OracleMemorizer(lambda context: self._describe_budget(context, base.endswith("focused")), name=base)
        if base == "policy":
            settings = self.extra_models.get(label, self.model_settings)
            return PolicyMemorizer(self.backend(label), settings.get("min_statement_confidence", 0.0))
        if base == "captioner":
            return CaptionerMemorizer(self.backend())
        return NoMemory()

    def _world(self, context: ClipContext) -> World:
        world = self.worlds.get(context.stream_id)
        if world is None:
            raise ValueError("the oracle memory needs ground truth: it runs on the synthetic dataset only")
        return world

    def _describe(self, context: ClipContext) -> str | None:
        world = self._world(context)
        return world.describe_new(context.index) if context.index < len(world.clips) else None

    def _describe_half(self, context: ClipContext) -> str | None:
        text = self._describe(context)
        if text is None:
            return None
        rng = random.Random(zlib.crc32(f"{context.stream_id}/{context.index}".encode()))  # same on every run
        kept = [s for s in re.split(r"(?<=\.)\s+", text) if rng.random() < 0.5]
        return " ".join(kept) or None


    def _describe_budget(self, context: ClipContext, focused: bool) -> str | None:
        world = self._world(context)
        if context.index >= len(world.clips):
            return None
        facts = world.new_facts(context.index)
        rng = random.Random(zlib.crc32(f"{context.stream_id}/{context.index}".encode()))
        if not focused:
            return " ".join(f.text for f in within_budget(facts, BUDGET_FACTS, rng)) or None
        others = [k for k, f in enumerate(facts) if f.key[0] != "room"]
        rng.shuffle(others)  # then a stable sort: the facts answering the most-asked types first, random among equals
        others.sort(key=lambda k: -sum(w for t, w in self.task_mix.items() if answers_task_type(facts[k], t)))
        kept = set(others[:BUDGET_FACTS])
        facts = [f for k, f in enumerate(facts) if f.key[0] == "room" or k in kept]
        return " ".join(f.text for f in facts) or None


def run_benchmark(spec: DatasetSpec, seeds: list[int], systems: list[str], answerer: Answerer, judge: Judge,
                  config: BenchConfig, *, model_settings: dict | None = None,
                  extra_models: dict[str, dict] | None = None,
                  count_tokens: Callable[[str], int] = lambda text: len(text.split()),
                  on_clip: Callable[[], None] | None = None, workdir: Path | None = None,
                  reference: str = "") -> BenchReport:
    """Run every system on every seed's streams; the answerer and judge are the same for all of them."""
    if reference and reference not in systems:
        raise ValueError(f"reference {reference!r} must be one of the systems run: {', '.join(systems)}")
    factory = SystemFactory({}, model_settings, extra_models, spec.tasks.mix)
    for name in systems:
        factory.check(name)
    if spec.name != "synthetic" and set(ORACLES) & set(systems):
        raise ValueError("the oracle memory needs ground truth: use it with --dataset synthetic")
    reports = {name: SystemReport(name) for name in systems}
    task_counts: dict[int, dict[str, int]] = {}
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
    for label, used in factory.used_models.items():
        settings[f"model:{label}" if label else "model"] = used
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
