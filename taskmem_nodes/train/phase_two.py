"""Phase Two: learn *what* to memorize from the tasks the robot received, as a steering vector on the frozen
Phase-One policy.

Run:  taskmem train phase-two --deployment runs/deployment --config config/train/phase_two_answers_tiny.yaml

A deployment is what the robot kept: its store (the memories it wrote, the task log) and its clip archive.
1. the task log's recent tasks, by type: each clip is judged against ~5 questions of one type, types drawn
   in proportion to how often they were asked;
2. per training clip, `rollouts` memories sampled from the frozen policy; every pair judged in both orders;
   the method's pair (`preferences.py`);
3. DPO of the steering vector (`steering_dpo.py`), then scaled (default 1.5);
4. the evaluation gate: on held-out clips, greedy memories with the new adapter against the current one
   (through the inference backend, hot-swapping between them), judged in both orders; and, where the logged
   tasks' right answers are known (simulated streams), memory-only accuracy on the tasks whose evidence is in
   those clips, with the deployment's streams memorized again by either adapter (each clip seeing that
   adapter's own preceding memories, as on the robot and in the benchmark, so changed memories compound). The
   new adapter is released only when at least `min_decided` comparisons are decided, it wins at least
   `min_win_rate` of them and its accuracy is at least the current one's plus `min_accuracy_gain` (overall), plus
   `min_focused_gain` (its task types) and plus `min_others_gain` (the other types; negative: a loss allowed);
   the verdict and figures go into the adapter's metadata and `<out>/report.json`.
Sampling and judging (steps 1-2) are the long part: their pairs are kept in `<out>/pairs.json` and reused
when the deployment, the policy and the judging settings are the same, so DPO settings can be tried again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskmem_nodes.adapters import AdapterRegistry
from taskmem_nodes.models.steering import ADAPTER_SUFFIX, AdapterInfo, SteeringAdapter, attach_adapter
from taskmem_nodes.models.transformers_backend import checkpoint_version
from taskmem_nodes.records import MemoryRecord, TaskLogRecord
from taskmem_nodes.train.deployment import Deployment
from taskmem_nodes.train.fact_judge import judge_entry
from taskmem_nodes.train.gspo import description_of
from taskmem_nodes.train.policy_model import RestrictedPolicy, inference_decoding
from taskmem_nodes.train.preferences import Candidate, PairStats, PreferencePair, pairs_for_clip
from taskmem_nodes.train.rollouts import ForcedPrefix, choice_group, sample_group, thinking_ids
from taskmem_nodes.train.runs import load_recipe
from taskmem_nodes.train.steering_dpo import DpoExample, DpoSettings, resolve_layer, train_steering_vector
from taskmem_nodes.train.task_judge import ClipRef, TaskJudge, make_task_judge

log = logging.getLogger(__name__)

ABSTAIN_ONLY_TYPES = ("not_seen",)  # no memory content answers them: nothing to steer toward
SAMPLING = ("output", "memory", "choices")


@dataclass
class PhaseTwoConfig:
    """Everything that shapes a Phase Two run."""

    out_dir: str = "runs/phase-two"
    """Adapters, the report and the log."""
    policy: str = ""
    """The frozen Phase-One checkpoint ('' = the default model)."""
    layer: int | None = None
    """Decoder layer the vector is added after (None: the reference's depth, 22 of 48)."""
    scale: float = 1.5
    """Scale of the trained vector at inference."""
    scale_choices: list[float] = field(default_factory=list)
    """Scales to choose from where the logged tasks' answers are known: the streams are memorized again at each,
    and the one with the highest memory-only accuracy on the *training* clips' tasks is kept (the held-out clips
    stay for the gate). Empty, or no answers known: `scale`."""
    rollouts: int = 8
    """Candidate memories sampled per clip."""
    temperature: float = 1.0
    """Sampling temperature of the candidates."""
    max_new_tokens: int = 200
    """Longest candidate (thinking + JSON) when the memorizer does not enforce the format; with
    `enforce_format` (config/taskmem.yaml) candidates are decoded within the memorizer's own budgets."""
    questions: int = 5
    """Recent questions the judge sees per clip."""
    recent_tasks: int = 500
    """The task log window: only the most recent tasks are sampled."""
    min_tasks: int = 10
    """Task types asked fewer times are not trained for."""
    task_types: list[str] = field(default_factory=list)
    """Train for these task types only (empty: every type with `min_tasks`)."""
    max_length_gap: int = 20
    """Chosen and rejected descriptions must differ by fewer tokens than this."""
    rejected: str = "chain"
    """The loser of a clip's pair: "chain" (the end of the longest preference chain, as in the method) or
    "greedy" (the frozen policy's greedy memory of the clip, judged among the candidates)."""
    sample: str = "output"
    """What the candidates sample: "output" (thinking and memory, as in the method), "memory" (the frozen
    policy's greedy thinking, then the memory sampled: candidates differ in what they write, not in how they
    read the clip; for a memory-only vector, `dpo: {steer: memory}`) or "choices" (the greedy thinking, then the
    memory greedy but for its choices, sampled at `temperature` (`SampledChoices`): which statement follows a
    full stop, and whether the memory goes on or closes; candidates differ in which facts and how many they
    write, each copied as the policy copies it greedily)."""
    validation_every: int = 4
    """Every n-th clip of a stream is held out for the evaluation gate."""
    min_win_rate: float = 0.55
    """The gate: share of decided comparisons the new adapter must win against the current one."""
    min_decided: int = 5
    """The gate, when no held-out task's answer is known (a robot's log): held-out comparisons that must be
    decided (not ties) for the win rate to count as evidence. Where answers are known, memory-only accuracy on the
    held-out tasks is the larger evidence and one decided comparison suffices for the win rate."""
    min_accuracy_gain: float = 0.0
    """The gate: memory-only accuracy on the held-out clips' tasks must be at least the current adapter's plus this
    (when the tasks' answers are known)."""
    min_focused_gain: float = 0.0
    """The gate: the same on the held-out tasks of the adapter's task types alone (when their answers are known)."""
    min_others_gain: float = -1.0
    """The gate: the same on the held-out tasks of the other task types, pooled; negative allows a loss there (-1:
    any; -0.02: two points, the bound on what the focus may cost the rest)."""
    judge: str = "ground-truth"
    """Task-relevance judge: ground-truth or ground-truth-answers (synthetic world; `task_judge.py`) or
    openai:<base_url>#<model>."""
    correctness: str = "fidelity"
    """What "never prefer the less correct memory" compares: "fidelity" (the fraction of true statements) or
    "entry" (Phase One's quality verdict, as in the method: every statement true and none repeated, or not)."""
    dpo: dict = field(default_factory=dict)
    """Overrides of `DpoSettings` (steps, lr, beta, span)."""
    build_on_current: bool = False
    """Sample the candidates with the adapter in use attached and train a step on top of it (iterated, on-policy
    DPO: each round's pairs come from the memorizer the robot runs); the released vector is the current one
    plus the step. Only when the current adapter steers the same layer and positions; otherwise from zero."""
    seed: int = 0

    def __post_init__(self):
        if self.rejected not in ("chain", "greedy"):
            raise ValueError(f"rejected must be 'chain' or 'greedy', not {self.rejected!r}")
        if self.sample not in SAMPLING:
            raise ValueError(f"sample must be one of {', '.join(SAMPLING)}, not {self.sample!r}")
        if self.correctness not in ("fidelity", "entry"):
            raise ValueError(f"correctness must be 'fidelity' or 'entry', not {self.correctness!r}")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> PhaseTwoConfig:
        return load_recipe(cls, path, **overrides)


class TaskSampler:
    """Recent questions by type; a type per clip drawn in proportion to how often it was asked."""

    def __init__(self, tasks: list[TaskLogRecord], config: PhaseTwoConfig, rng: random.Random):
        recent = sorted(tasks, key=lambda t: t.asked_at)[-config.recent_tasks:]
        self.by_type: dict[str, list[TaskLogRecord]] = defaultdict(list)
        for task in recent:
            if task.task_type and task.task_type not in ABSTAIN_ONLY_TYPES:
                self.by_type[task.task_type].append(task)
        self.by_type = {t: ts for t, ts in self.by_type.items() if len(ts) >= config.min_tasks
                        and (not config.task_types or t in config.task_types)}
        self.count = config.questions
        self.rng = rng
        self.window = [recent[0].asked_at, recent[-1].asked_at] if recent else []

    @property
    def task_types(self) -> list[str]:
        return sorted(self.by_type)

    def draw(self) -> tuple[str, list[str]]:
        types = self.task_types
        task_type = self.rng.choices(types, [len(self.by_type[t]) for t in types])[0]
        pool = self.by_type[task_type]
        return task_type, [t.question for t in self.rng.sample(pool, min(self.count, len(pool)))]


@dataclass(frozen=True)
class SampledClip:
    """One training clip's candidates as they were judged (kept in `pairs.json` for `train/headroom.py`)."""

    stream_id: str
    position: int
    clip: ClipRef
    task_type: str
    questions: tuple[str, ...]
    candidates: tuple[Candidate, ...]


def as_candidate(policy: RestrictedPolicy, ids: torch.Tensor, world, clip: ClipRef,
                 correctness_by: str = "fidelity") -> Candidate | None:
    """A generated output as a candidate memory (its correctness, by `PhaseTwoConfig.correctness`, judged when
    `world` is known), or None when it does not parse (Phase One's format reward handles that)."""
    text = description_of(policy.output_text(ids))
    if not text:
        return None
    correctness = 1.0
    if world:
        verdict = judge_entry(world, clip.index, text, clip.preceding)
        correctness = verdict.fidelity if correctness_by == "fidelity" else float(verdict.correct)
    return Candidate(text, tuple(ids.tolist()), len(policy.tokenizer.encode(text, add_special_tokens=False)),
                     correctness)


def collect_pairs(policy: RestrictedPolicy, deployment: Deployment, clips: list[tuple[str, int]],
                  sampler: TaskSampler, judge: TaskJudge, config: PhaseTwoConfig, stats: PairStats,
                  worlds: dict, decoding: tuple[Callable, int] = (list, 200), on_clip: Callable[[], None] | None = None,
                  ) -> tuple[list[tuple[str, int, PreferencePair]], list[SampledClip]]:
    """Sample candidates from the frozen policy for each clip and select the method's pair; returns
    (stream id, position in the stream, pair) and every clip's candidates. `worlds` (the deployment's simulated
    ones) judge correctness."""
    found, sampled = [], []
    for stream_id, position in clips:
        request = deployment.request(stream_id, position, policy.frames_per_clip)
        ref = ClipRef(stream_id, deployment.streams[stream_id][position].index,
                      deployment.preceding_texts(stream_id, position))
        policy.model.eval()
        processors, max_new_tokens = decoding
        world = worlds.get(stream_id)
        if config.sample == "choices":
            greedy_ids, rollouts = choice_group(policy, request, config.rollouts, config.temperature, decoding)
        else:
            greedy_ids = sample_group(policy, request, 1, 0.0, max_new_tokens, processors())[0] \
                if config.rejected == "greedy" or config.sample == "memory" else None
            forced = [ForcedPrefix(thinking_ids(policy, greedy_ids))] if config.sample == "memory" else []
            rollouts = sample_group(policy, request, config.rollouts, config.temperature, max_new_tokens,
                                    [*processors(), *forced])
        candidates = [c for c in (as_candidate(policy, ids, world, ref, config.correctness) for ids in rollouts)
                      if c is not None]
        greedy = as_candidate(policy, greedy_ids, world, ref, config.correctness) if config.rejected == "greedy" \
            else None
        task_type, questions = sampler.draw()
        sampled.append(SampledClip(stream_id, position, ref, task_type, tuple(questions), tuple(candidates)))
        pair = None
        if config.rejected == "greedy" and greedy is None:
            stats.clips += 1
            stats.greedy_unparsed += 1
        else:
            pair = pairs_for_clip(judge, ref, task_type, questions, candidates, stats, config.max_length_gap,
                                  greedy=greedy)
        if pair is not None:
            found.append((stream_id, position, pair))
        if on_clip is not None:
            on_clip()
    return found, sampled


PAIRS_FILE = "pairs.json"
JUDGING_SETTINGS = ("rollouts", "temperature", "max_new_tokens", "questions", "recent_tasks", "min_tasks",
                    "task_types", "max_length_gap", "rejected", "sample", "validation_every", "judge", "correctness",
                    "seed")


def pairs_key(deployment: Deployment, config: PhaseTwoConfig, model_version: str, builds_on: str = "") -> str:
    """What the judged pairs depend on: the deployment's clips and tasks, the policy (and the adapter the
    candidates were sampled with, if any), the judging settings."""
    data = {"clips": sorted(a.clip.clip_id for clips in deployment.streams.values() for a in clips),
            "tasks": sorted(t.task_id for t in deployment.tasks), "model": model_version,
            "settings": {name: getattr(config, name) for name in JUDGING_SETTINGS}
            | {"task_types": sorted(config.task_types)}}  # a filter: its order changes nothing judged
    if builds_on:  # absent otherwise, so pairs judged before this setting existed stay valid
        data["builds_on"] = builds_on
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def save_pairs(path: Path, key: str, stats: PairStats, pairs: list[tuple[str, int, PreferencePair]],
               sampled: list[SampledClip]) -> None:
    """The judged pairs, so DPO and the gate can be re-run without sampling and judging again, and every
    clip's candidates (atomic)."""
    rows = [{"stream_id": sid, "position": pos, "pair": dataclasses.asdict(pair)} for sid, pos, pair in pairs]
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".partial")
    staging.write_text(json.dumps({"key": key, "stats": dataclasses.asdict(stats), "pairs": rows,
                                   "sampled": [dataclasses.asdict(clip) for clip in sampled]}))
    os.replace(staging, path)


def _candidate(data: dict) -> Candidate:
    return Candidate(**{**data, "output_ids": tuple(data["output_ids"])})


def _clip_ref(data: dict) -> ClipRef:
    return ClipRef(data["stream_id"], data["index"], tuple(data["preceding"]))


def load_sampled(path: Path) -> list[SampledClip]:
    """Every training clip's candidates of the run whose `pairs.json` this is (ValueError when it has none)."""
    try:
        rows = json.loads(Path(path).read_text())["sampled"]
        return [SampledClip(r["stream_id"], r["position"], _clip_ref(r["clip"]), r["task_type"], tuple(r["questions"]),
                            tuple(_candidate(c) for c in r["candidates"])) for r in rows]
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: no sampled candidates ({type(err).__name__}: {err}); run phase-two again "
                         "into a new --out") from None


def load_pairs(path: Path, key: str) -> tuple[PairStats, list[tuple[str, int, PreferencePair]]] | None:
    """The pairs saved for `key`, or None (no file, another deployment or settings, or an unreadable file)."""
    try:
        data = json.loads(path.read_text())
        if data["key"] != key:
            return None
        pairs = []
        for row in data["pairs"]:
            pair = row["pair"]
            pairs.append((row["stream_id"], row["position"],
                          PreferencePair(_clip_ref(pair["clip"]), pair["task_type"], _candidate(pair["chosen"]),
                                         _candidate(pair["rejected"]), pair["chain"])))
        return PairStats(**data["stats"]), pairs
    except (OSError, ValueError, KeyError, TypeError):
        return None


def split_clips(deployment: Deployment, every: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(training, held-out) clip positions: every `every`-th clip of each stream is held out."""
    train, held_out = [], []
    for stream_id, clips in sorted(deployment.streams.items()):
        for position in range(len(clips)):
            (held_out if position % every == every - 1 else train).append((stream_id, position))
    return train, held_out


def choose_scale(backend, deployment: Deployment, train_clips: list[tuple[str, int]], candidate: SteeringAdapter,
                 scales: list[float], labelled: dict[str, tuple], on_clip: Callable[[], None] | None = None,
                 ) -> tuple[SteeringAdapter, dict, dict[str, str]]:
    """The candidate at the scale whose memories answer the training clips' logged tasks (`labelled`, some of
    them with evidence in `train_clips`) best: memory-only accuracy, the streams memorized again at each scale;
    ties go to the earlier scale in `scales`. Returns that adapter, the figures by scale and its memories (for
    the gate to reuse)."""
    figures, memories = {}, {}
    for scale in scales:
        adapter = SteeringAdapter(candidate.vector, dataclasses.replace(candidate.info, scale=float(scale)))
        backend.set_adapter(adapter)
        memories[scale] = restream_memories(backend, deployment, on_clip)
        figures[scale] = held_out_accuracy(deployment, train_clips, {"candidate": memories[scale]}, labelled,
                                           candidate.info.task_types)
    best = max(scales, key=lambda scale: (figures[scale]["candidate"], -scales.index(scale)))
    chosen = SteeringAdapter(candidate.vector, dataclasses.replace(candidate.info, scale=float(best)))
    selection = {"chosen": float(best), "tasks": figures[best]["tasks"],
                 "accuracy": {f"{scale:g}": figures[scale]["candidate"] for scale in scales},
                 "focused": {f"{scale:g}": figures[scale].get("candidate_focused") for scale in scales}}
    return chosen, selection, memories[best]


def evaluation_gate(backend, deployment: Deployment, clips: list[tuple[str, int]], sampler: TaskSampler,
                    judge: TaskJudge, candidate: SteeringAdapter, current: SteeringAdapter | None,
                    labelled: dict[str, tuple], restream: tuple[str, ...] = (),
                    on_clip: Callable[[], None] | None = None, written: dict[str, dict[str, str]] | None = None,
                    ) -> dict:
    """Greedy memories with the candidate and with the current adapter on held-out clips, judged in both
    orders against the clip's sampled questions (both written from the deployment's preceding memories, so
    the verdict is about this clip alone): wins, losses, ties and the hot-swap pauses; and memory-only
    accuracy on the `labelled` tasks of those clips (overall, and on the candidate's task types), with the
    streams memorized again by the adapters named in `restream` (`gate_restreams`; the other keeps the
    deployment's memories) unless `written` already holds that adapter's memories."""
    wins = losses = ties = 0
    pauses = []
    tokens = {"candidate": [], "current": []}
    adapters = {"current": current, "candidate": candidate}
    for stream_id, position in clips:
        request = deployment.request(stream_id, position, backend.frames_per_clip)
        ref = ClipRef(stream_id, deployment.streams[stream_id][position].index,
                      deployment.preceding_texts(stream_id, position))
        texts = {}
        for name, adapter in adapters.items():
            pauses.append(backend.set_adapter(adapter))
            result = backend.generate(request)
            texts[name] = description_of(result.text)
            tokens[name].append(result.output_tokens)
        task_type, questions = sampler.draw()
        forward = judge.prefer(ref, task_type, questions, texts["candidate"], texts["current"])
        backward = judge.prefer(ref, task_type, questions, texts["current"], texts["candidate"])
        if forward == "first" and backward == "second":
            wins += 1
        elif forward == "second" and backward == "first":
            losses += 1
        else:
            ties += 1
        if on_clip is not None:
            on_clip()
    decided = wins + losses
    accuracy = None
    if restream:
        written = dict(written or {})
        for name, adapter in adapters.items():
            if name in written:
                continue
            if name not in restream:
                written[name] = deployment.memories  # what the robot wrote with it is that adapter's stream
                continue
            pauses.append(backend.set_adapter(adapter))
            written[name] = restream_memories(backend, deployment, on_clip)
        accuracy = held_out_accuracy(deployment, clips, written, labelled, candidate.info.task_types)
    return {"clips": len(clips), "wins": wins, "losses": losses, "ties": ties,
            "win_rate": wins / decided if decided else 0.0, **({"accuracy": accuracy} if accuracy else {}),
            "swap_pause_ms_max": 1000 * max(pauses, default=0.0),
            "swap_pause_ms_median": 1000 * sorted(pauses)[len(pauses) // 2] if pauses else 0.0,
            "output_tokens": {k: sum(v) / max(1, len(v)) for k, v in tokens.items()}}


def gate_restreams(deployment: Deployment, clips: list[tuple[str, int]], labelled: dict[str, tuple],
                   model_version: str, current: SteeringAdapter | None) -> tuple[str, ...]:
    """Which of the gate's adapters memorize the streams again for its accuracy: none when no held-out task's
    answer is known (a real robot's log); the candidate; and the current adapter unless it (on this model)
    wrote every memory of the deployment, whose memories then stand for its stream."""
    if not held_out_tasks(deployment, clips, labelled):
        return ()
    wrote_all = deployment.written_only_by(model_version, current.version if current is not None else "")
    return ("candidate",) if wrote_all else ("current", "candidate")


def restream_memories(backend, deployment: Deployment, on_clip: Callable[[], None] | None = None) -> dict[str, str]:
    """Every archived clip memorized again, stream by stream in order, by the backend with the adapter it has
    now: each clip sees the memories this run wrote for the clips before it, as the memorizer on the robot
    does. Clip id -> memory (clips whose output was rejected have none)."""
    from taskmem_nodes.memorizer import Memorizer

    written = {}
    for _, archived in sorted(deployment.streams.items()):
        memorizer = Memorizer(backend)
        for clip in archived:
            record = memorizer.memorize(clip.clip)
            if isinstance(record, MemoryRecord):
                written[clip.clip.clip_id] = record.text
            if on_clip is not None:
                on_clip()
    return written


def held_out_tasks(deployment: Deployment, clips: list[tuple[str, int]], labelled: dict[str, tuple]) -> list:
    """(stream id, task) of the `labelled` tasks (`Deployment.labelled_tasks`) whose evidence lies in one of
    `clips`."""
    spans = defaultdict(list)
    for stream_id, position in clips:
        clip = deployment.streams[stream_id][position].clip
        spans[stream_id].append((clip.start, clip.end))
    return [(sid, task) for sid in spans for task in labelled.get(sid, ())
            if any(start < end_e and start_e < end for start, end in spans[sid] for start_e, end_e in task.evidence)]


def held_out_accuracy(deployment: Deployment, clips: list[tuple[str, int]], written: dict[str, dict[str, str]],
                      labelled: dict[str, tuple], focus: Sequence[str] = ()) -> dict | None:
    """Memory-only accuracy of each variant's memories (`written`: variant -> clip id -> memory, for every clip
    of the streams) on the `labelled` tasks whose evidence lies in a held-out clip, overall, per task type and
    (`<variant>_focused`, `<variant>_others`) pooled over the `focus` types and over the rest. The answerer is
    the benchmark's fixed lexical one. None when no task's answer is known."""
    from taskmem_nodes.answerer import LexicalAnswerer
    from taskmem_nodes.bench.harness import answer_task
    from taskmem_nodes.bench.judges import NormalizedMatchJudge
    from taskmem_nodes.bench.metrics import OVERALL, focus_groups, pooled, tally

    tasks = held_out_tasks(deployment, clips, labelled)
    if not tasks:
        return None
    answerer, judge, result = LexicalAnswerer(), NormalizedMatchJudge(), {"tasks": len(tasks)}
    for name, memories in written.items():
        records = {sid: [MemoryRecord(a.clip.clip_id, a.clip.clip_id, a.clip.start, a.clip.end, text)
                         for a in deployment.streams[sid] if (text := memories.get(a.clip.clip_id))]
                   for sid in {sid for sid, _ in tasks}}
        outcomes = [answer_task(task, [m for m in records[sid] if m.end <= task.arrival + 1e-6], answerer)
                    for sid, task in tasks]
        scores = tally(outcomes, judge)
        result[name] = scores[OVERALL].accuracy
        result[f"{name}_by_type"] = {t: s.accuracy for t, s in scores.items() if t != OVERALL}
        if not focus:
            continue
        for part, types in focus_groups(scores, focus).items():
            if (scores_of_part := pooled(scores, types)).tasks:
                result[f"{name}_{part}"] = scores_of_part.accuracy
                result[f"{part}_tasks"] = scores_of_part.tasks
    return result


def gate_reasons(gate: dict, config: PhaseTwoConfig, against: str) -> list[str]:
    """Why the gate's figures do not release the candidate (empty: release). It must win the pairwise
    comparisons; where the held-out tasks' answers are known, gain the configured memory-only accuracy overall,
    on its task types and on the others (at most the allowed loss there), and then one decided comparison
    suffices, since the accuracy on the logged tasks is the larger evidence; on a robot's log, without answers,
    `min_decided` comparisons must be."""
    reasons = []
    decided = gate["wins"] + gate["losses"]
    accuracy = gate.get("accuracy")
    needed = min(1, config.min_decided) if accuracy else config.min_decided
    if decided < needed:
        reasons.append(f"{decided} of {gate['clips']} held-out comparisons decided, fewer than {needed}: "
                       "too little evidence")
    if gate["win_rate"] < config.min_win_rate:
        reasons.append(f"win rate {gate['win_rate']:.2f} against {against} is below {config.min_win_rate:.2f}")
    if not accuracy:
        return reasons
    checks = [("", config.min_accuracy_gain, "tasks", "")]
    if "candidate_focused" in accuracy:
        checks.append(("_focused", config.min_focused_gain, "focused_tasks", "its task types' "))
    if "candidate_others" in accuracy:
        checks.append(("_others", config.min_others_gain, "others_tasks", "the other types' "))
    for suffix, gain, tasks, which in checks:
        new, old = accuracy[f"candidate{suffix}"], accuracy[f"current{suffix}"]
        if new < old + gain - 1e-9:  # a tie with the bound passes (accuracies are ratios of small counts)
            reasons.append(f"memory-only accuracy {new:.3f} on {which}{accuracy[tasks]} held-out tasks is below "
                           f"{against}'s {old:.3f}" + (f" {'+-'[gain < 0]} {abs(gain):.3f}" if gain else ""))
    return reasons


def next_version(out: Path, task_types: list[str]) -> str:
    """'<n>-<types>', n one more than any adapter released or rejected under `out`."""
    numbers = [int(p.name.split("-", 1)[0]) for p in out.glob(f"*/*{ADAPTER_SUFFIX}")
               if p.name.split("-", 1)[0].isdigit()]
    return f"{max(numbers, default=0) + 1:04d}-{'-'.join(task_types)}"[:64]


def start_adapter(current: SteeringAdapter | None, config: PhaseTwoConfig, layer: int, steer: str,
                  model_version: str) -> SteeringAdapter | None:
    """The adapter a run builds on (`build_on_current`): the current one, when it was trained for this model and
    steers `layer` at the positions `steer` names; None (train from zero) otherwise."""
    if not config.build_on_current or current is None:
        return None
    if current.info.base_model_version not in ("", model_version):
        log.warning("adapter %s was trained for model %s, this is %s: training from zero",
                    current.version, current.info.base_model_version, model_version)
        return None
    if (current.info.layer, current.info.steer) != (layer, steer):
        log.warning("adapter %s steers layer %d (%s), this run layer %d (%s): training from zero",
                    current.version, current.info.layer, current.info.steer, layer, steer)
        return None
    return current


def run_phase_two(deployment: Deployment, config: PhaseTwoConfig, *, current: SteeringAdapter | None = None,
                  judge: TaskJudge | None = None, progress: Callable[[str, int], Callable[[], None]] | None = None,
                  ) -> dict:
    """The whole pipeline; returns the report (also written to `<out>/report.json`). The gate compares against
    `current`, by default the adapter in use in `<out>/adapters` (the registry). An adapter that passes is
    written there and made current; one that does not goes to `<out>/rejected/` with the reason."""
    from taskmem_nodes.memorizer import backend_settings, load_backend, memorizer_parameters

    started = time.monotonic()
    out = Path(config.out_dir)
    registry = AdapterRegistry(out / "adapters")
    current = current if current is not None else registry.current()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    sampler = TaskSampler(deployment.tasks, config, rng)
    if not sampler.task_types:
        raise ValueError(f"no task type was asked at least {config.min_tasks} times in the recent task log")
    worlds = deployment.worlds()  # simulating a world is not free: once per run
    if judge is None:
        if config.judge.startswith("ground-truth") and set(deployment.streams) - set(worlds):
            raise ValueError("the ground-truth judge needs a simulated world for every stream; on real video use "
                             "judge: openai:<base_url>#<model> in the recipe")
        judge = make_task_judge(config.judge, worlds)
    settings = backend_settings({**memorizer_parameters(), "model_path": config.policy})
    policy = RestrictedPolicy.load(settings["model_path"])
    layer = resolve_layer(policy.model, config.layer)
    model_version = checkpoint_version(Path(settings["model_path"]))
    dpo = DpoSettings(**config.dpo)
    start = start_adapter(current, config, layer, dpo.steer, model_version)
    if start is not None:  # candidates, reference and steered policy all run with the adapter in use
        attach_adapter(policy.model, start, tokenizer=policy.tokenizer)
    train_clips, held_out = split_clips(deployment, config.validation_every)
    builds_on = start.version if start else ""
    key = pairs_key(deployment, config, model_version, builds_on)
    cached = load_pairs(out / PAIRS_FILE, key)
    if cached is not None:  # the same deployment, policy and judging settings: reuse the judged pairs
        stats, pairs = cached
    else:
        stats = PairStats()
        tick = progress("judging candidates", len(train_clips)) if progress else None
        decoding = inference_decoding(policy, settings, config.max_new_tokens)
        pairs, sampled = collect_pairs(policy, deployment, train_clips, sampler, judge, config, stats, worlds,
                                       decoding, tick)
        save_pairs(out / PAIRS_FILE, key, stats, pairs, sampled)
    judged_at = time.monotonic()
    if not pairs:
        raise ValueError(f"no preference pair survived selection: {dataclasses.asdict(stats)}")
    examples = [DpoExample(deployment.request(stream_id, position, policy.frames_per_clip), pair.chosen.output_ids,
                           pair.rejected.output_ids) for stream_id, position, pair in pairs]
    tick = progress("DPO steps", dpo.steps) if progress else None
    vector, dpo_log = train_steering_vector(policy, examples, layer, dpo, on_step=(lambda *_: tick()) if tick else None)
    if start is not None:  # the step was trained at scale 1 like a first vector; the whole is released at `scale`
        vector = start.vector * (start.info.scale / config.scale) + vector
    trained_at = time.monotonic()
    del policy

    backend = load_backend("transformers", **settings)
    backend.load()
    info = AdapterInfo(version=next_version(out, sampler.task_types), base_model_version=model_version,
                       layer=layer, scale=config.scale, task_types=sampler.task_types, data_window=sampler.window,
                       created_at=time.time(), steer=dpo.steer, builds_on=builds_on)
    candidate = SteeringAdapter(vector, info)
    labelled = deployment.labelled_tasks(worlds)
    clips_per_pass = sum(map(len, deployment.streams.values()))
    scales = [float(s) for s in config.scale_choices]
    choosing = len(scales) > 1 and bool(held_out_tasks(deployment, train_clips, labelled))
    if choosing:
        tick = progress("choosing the scale", len(scales) * clips_per_pass) if progress else None
        candidate, selection, chosen_memories = choose_scale(backend, deployment, train_clips, candidate, scales,
                                                             labelled, tick)
        info = candidate.info
    restream = gate_restreams(deployment, held_out, labelled, model_version, current)
    written = {"candidate": chosen_memories} if choosing else None
    restreamed = len(set(restream) - set(written or ())) * clips_per_pass
    tick = progress("evaluation gate", len(held_out) + restreamed) if progress else None
    gate_questions = TaskSampler(deployment.tasks, config, random.Random(config.seed + 1))  # same with a cache
    gate = evaluation_gate(backend, deployment, held_out, gate_questions, judge, candidate, current, labelled,
                           restream, tick, written)
    if choosing:
        gate["scale_selection"] = selection
    against = current.version if current else "base policy"
    reasons = gate_reasons(gate, config, against)
    released = not reasons
    gate |= {"released": released, "min_win_rate": config.min_win_rate, "min_decided": config.min_decided,
             "min_accuracy_gain": config.min_accuracy_gain, "min_focused_gain": config.min_focused_gain,
             "min_others_gain": config.min_others_gain, "against": against}
    if not released:
        gate["reason"] = "; ".join(reasons)
    info.validation = gate
    if released:
        target = candidate.save(registry.path(info.version))
        accuracy = (f", accuracy {gate['accuracy']['candidate']:.3f} vs {gate['accuracy']['current']:.3f}"
                    if "accuracy" in gate else "")
        registry.use(info.version, reason=f"released: won {gate['win_rate']:.2f} against {against}{accuracy}")
    else:
        target = candidate.save(out / "rejected" / f"{info.version}{ADAPTER_SUFFIX}")
    report = {
        "adapter": str(target), "version": info.version, "released": released, "layer": layer,
        "builds_on": info.builds_on,
        "task_types": sampler.task_types, "task_counts": dict(Counter(t.task_type for t in deployment.tasks)),
        "pairs": dataclasses.asdict(stats) | {"reused": cached is not None}, "dpo": dpo_log, "gate": gate,
        "seconds": {"judging": judged_at - started, "dpo": trained_at - judged_at,
                    "gate": time.monotonic() - trained_at},
        "config": dataclasses.asdict(config),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
