"""Tasks that arrive online during a simulated stream, with answers computed from what the camera saw.

Every question is generated at its arrival time from the clips that ended by then, so its answer is in the
stream's past. Types follow the paper's benchmarks: object location, counting, temporal order, person
activity, attributes, and "not seen" questions whose right answer is to abstain. Most are multiple choice;
a configurable fraction are open (the wrong answers are kept as `alternatives` for the judge).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields

from taskmem_nodes.bench.types import BenchTask
from taskmem_nodes.sim.world import (
    ACTIVITIES,
    COLOURS,
    PLURALS,
    ClipTruth,
    Fact,
    World,
    object_phrase,
    person_name,
)

TASK_TYPES = ("location", "count", "temporal_order", "activity", "attribute", "not_seen")

ANSWERING_FACTS = {  # task type -> the kinds of fact its builder below reads answers from ("event:*" = any event)
    "location": ("object", "event:put", "event:pick", "event:appear"),
    "count": ("object",),
    "temporal_order": ("event:*",),
    "activity": ("person", "event:activity", "event:pick"),
    "attribute": ("person", "object"),
    "not_seen": (),
}


def answers_task_type(fact: Fact, task_type: str) -> bool:
    """Whether questions of `task_type` are answered from facts like `fact`."""
    kinds = ANSWERING_FACTS.get(task_type, ())
    kind = fact.key[0]
    return kind in kinds or (kind == "event" and ("event:*" in kinds or f"event:{fact.key[1]}" in kinds))


def parse_mix(text: str) -> dict[str, float]:
    """'location=3,count=1' -> {'location': 3.0, 'count': 1.0} (types not named get weight 0)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in TASK_TYPES:
            raise ValueError(f"unknown task type {name!r} in task mix; known: {', '.join(TASK_TYPES)}")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(f"task mix weight for {name!r} must be a number, got {value!r}") from None
        if weight < 0:
            raise ValueError(f"task mix weight for {name!r} must not be negative")
        mix[name] = weight
    if not mix or sum(mix.values()) <= 0:
        raise ValueError(f"task mix {text!r} names no task type with a positive weight")
    return mix


@dataclass
class TaskConfig:
    """How many tasks arrive, of which types, and in which form."""

    per_minute: float = 20.0
    """Tasks per minute of stream (they arrive at random times)."""
    mix: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TASK_TYPES, 1.0))
    """Relative weight of each task type (see `parse_mix`)."""
    open_fraction: float = 0.2
    """Fraction of questions asked without options (not for temporal order)."""
    options: int = 4
    """Options per multiple-choice question."""
    min_delay_s: float = 20.0
    """No question before this much of the stream has been seen."""
    repeat_after_s: float = 60.0
    """The same question with the same answer is not asked again within this many seconds."""

    @classmethod
    def from_dict(cls, data: dict) -> TaskConfig:
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown task settings {unknown}; known: {sorted(known)}")
        data = dict(data)
        if isinstance(data.get("mix"), str):
            data["mix"] = parse_mix(data["mix"])
        elif "mix" in data:
            data["mix"] = parse_mix(",".join(f"{k}={v}" for k, v in data["mix"].items()))
        return cls(**data)


@dataclass(frozen=True)
class _Draft:
    question: str
    answer: str  # "" when the right answer is to abstain
    wrong: tuple[str, ...]  # wrong answers to draw options from
    evidence: tuple[ClipTruth, ...]
    allow_open: bool = True


def _mentions(clip: ClipTruth, subject: str) -> bool:
    return any(subject in fact.subjects for fact in clip.facts)


def _last_mention(history: list[ClipTruth], subject: str) -> ClipTruth | None:
    return next((clip for clip in reversed(history) if _mentions(clip, subject)), None)


class TaskGenerator:
    """Questions about one simulated stream (deterministic for a given world, config and seed)."""

    def __init__(self, world: World, config: TaskConfig, seed: int):
        self.world = world
        self.config = config
        self.rng = random.Random(seed)
        self.builders = {"location": self._location, "count": self._count, "temporal_order": self._order,
                         "activity": self._activity, "attribute": self._attribute, "not_seen": self._not_seen}

    def generate(self, stream_id: str) -> tuple[BenchTask, ...]:
        config, rng, world = self.config, self.rng, self.world
        duration = world.config.clips * world.config.clip_seconds
        count = round(config.per_minute * duration / 60)
        arrivals = sorted(rng.uniform(config.min_delay_s, duration) for _ in range(count))
        types = [t for t in TASK_TYPES if config.mix.get(t, 0) > 0]
        weights = [config.mix[t] for t in types]
        tasks: list[BenchTask] = []
        last_asked: dict[tuple[str, str], float] = {}
        owed: list[str] = []  # types drawn when they had nothing to ask yet: asked first later, to keep the mix
        for arrival in arrivals:
            history = [c for c in world.clips if c.end <= arrival]
            candidates = [*dict.fromkeys(owed), *(rng.choices(types, weights)[0] for _ in range(10))]
            for task_type in candidates:
                drafts = [d for d in self.builders[task_type](history)
                          if arrival - last_asked.get((d.question, d.answer), -1e9) >= config.repeat_after_s]
                if not drafts:
                    if task_type not in owed:
                        owed.append(task_type)
                    continue
                if task_type in owed:
                    owed.remove(task_type)
                draft = rng.choice(drafts)
                last_asked[(draft.question, draft.answer)] = arrival
                tasks.append(self._finish(draft, task_type, stream_id, len(tasks), arrival))
                break
        return tuple(tasks)

    def _finish(self, draft: _Draft, task_type: str, stream_id: str, number: int, arrival: float) -> BenchTask:
        rng = self.rng
        wrong = rng.sample(sorted(set(draft.wrong) - {draft.answer}), self.config.options - (1 if draft.answer else 0))
        evidence = tuple((c.start, c.end) for c in draft.evidence)
        task_id = f"{stream_id}-t{number:03d}"
        if draft.allow_open and rng.random() < self.config.open_fraction:
            return BenchTask(task_id, stream_id, task_type, draft.question, (), draft.answer, -1, arrival, evidence,
                             alternatives=tuple(wrong))
        options = [*wrong, draft.answer] if draft.answer else list(wrong)
        rng.shuffle(options)
        index = options.index(draft.answer) if draft.answer else -1
        return BenchTask(task_id, stream_id, task_type, draft.question, tuple(options), draft.answer, index, arrival,
                         evidence)

    # ---- one builder per task type: every question it could ask now
    def _location(self, history: list[ClipTruth]) -> list[_Draft]:
        places = self.world.places
        drafts = []
        templates = {  # event kind -> question about where it happened
            "put": "Where did {who}{again} put the {thing}?",
            "pick": "Where did {who}{again} pick up the {thing} from?",
            "appear": "Where did the {thing}{again} appear?",
        }
        happened: dict[tuple, list[tuple[str, ClipTruth]]] = {}
        for clip in history:
            for event in clip.events:
                if event.kind in templates:
                    key = (event.kind, event.pid, event.colour, event.object_kind)
                    happened.setdefault(key, []).append((event.place, clip))
        for (kind, pid, colour, object_kind), where in happened.items():
            place, clip = where[-1]
            again = " last" if len({p for p, _ in where}) > 1 else ""
            question = templates[kind].format(who=person_name(pid) if pid else "", again=again,
                                              thing=f"{colour} {object_kind}")
            drafts.append(_Draft(question, place, tuple(places), (clip,)))
        for colour in COLOURS:
            for kind in self.world.config.object_kinds:
                clip = _last_mention(history, f"{colour} {kind}")
                if clip is None:
                    continue
                state = clip.end_state
                on = {o.place for o in state.objects if (o.colour, o.kind) == (colour, kind)
                      and o.place.startswith(clip.room + " ")}
                carried = any(p.carrying == (colour, kind) for p in state.in_room(clip.room))
                if len(on) == 1 and not carried:
                    drafts.append(_Draft(f"Where was the {colour} {kind} last seen?", on.pop(), tuple(places), (clip,)))
        return drafts

    def _count(self, history: list[ClipTruth]) -> list[_Draft]:
        drafts = []
        for room in sorted({c.room for c in history}):  # sorted: set order changes with PYTHONHASHSEED
            clip = next(c for c in reversed(history) if c.room == room)
            for group in clip.end_state.objects:
                if group.place.startswith(room + " "):
                    plural = PLURALS.get(group.kind, group.kind + "s")
                    drafts.append(_Draft(f"How many {group.colour} {plural} were on the {group.place} when it was "
                                         "last seen?", str(group.count), ("1", "2", "3", "4"), (clip,)))
        return drafts

    def _order(self, history: list[ClipTruth]) -> list[_Draft]:
        by_text: dict[str, list[ClipTruth]] = {}
        for clip in history:
            for fact in clip.facts:
                if fact.key[0] == "event":
                    text = fact.text.rstrip(".")
                    pid = fact.key[3]
                    if pid is not None:  # options name the person by id only
                        text = text.replace(f" in {self.world.shirt_of(pid)}", "", 1)
                    by_text.setdefault(text, []).append(clip)
        unique = {text: clips[0] for text, clips in by_text.items() if len(clips) == 1}
        if len({c.index for c in unique.values()}) < self.config.options:
            return []
        drafts = []
        for _ in range(3):
            chosen: dict[int, str] = {}
            for text in self.rng.sample(sorted(unique), len(unique)):
                chosen.setdefault(unique[text].index, text)
                if len(chosen) == self.config.options:
                    break
            first, last = chosen[min(chosen)], chosen[max(chosen)]
            clips = tuple(unique[t] for t in chosen.values())
            wrong = tuple(t for t in chosen.values())
            drafts.append(_Draft("Which of these happened first?", first, wrong, clips, allow_open=False))
            drafts.append(_Draft("Which of these happened last?", last, wrong, clips, allow_open=False))
        return drafts

    def _doing_options(self) -> tuple[str, ...]:
        colour = self.rng.choice(self.world.config.colours)
        kind = self.rng.choice(self.world.config.object_kinds)
        return (*ACTIVITIES, f"carrying {object_phrase(colour, kind)}")

    def _activity(self, history: list[ClipTruth]) -> list[_Draft]:
        drafts = []
        for pid in range(1, self.world.config.people + 1):
            clip = _last_mention(history, person_name(pid))
            person = clip.end_state.people[pid] if clip else None
            if person is None or person.room != clip.room:
                continue
            doing = f"carrying {object_phrase(*person.carrying)}" if person.carrying else person.activity
            drafts.append(_Draft(f"What was {person_name(pid)} doing when last seen?", doing,
                                 self._doing_options(), (clip,)))
        return drafts

    def _attribute(self, history: list[ClipTruth]) -> list[_Draft]:
        drafts = []
        colours = tuple(COLOURS)
        for pid in range(1, self.world.config.people + 1):
            clip = _last_mention(history, person_name(pid))
            if clip is not None:
                drafts.append(_Draft(f"What colour does {person_name(pid)} wear?", self.world.shirt_of(pid),
                                     colours, (clip,)))
        for room in sorted({c.room for c in history}):  # sorted: set order changes with PYTHONHASHSEED
            clip = next(c for c in reversed(history) if c.room == room)
            groups = [o for o in clip.end_state.objects if o.place.startswith(room + " ")]
            for group in groups:
                if sum(1 for o in groups if (o.kind, o.place) == (group.kind, group.place)) == 1:
                    drafts.append(_Draft(f"What colour was the {group.kind} on the {group.place} when it was last "
                                         "seen?", group.colour, tuple(self.world.config.colours), (clip,)))
        return drafts

    def _not_seen(self, history: list[ClipTruth]) -> list[_Draft]:
        drafts = []
        for pid in range(1, self.world.config.max_person_id + 1):
            if _last_mention(history, person_name(pid)) is None:
                drafts.append(_Draft(f"What was {person_name(pid)} doing when last seen?", "",
                                     self._doing_options(), ()))
                drafts.append(_Draft(f"What colour does {person_name(pid)} wear?", "", tuple(COLOURS), ()))
        for colour in self.world.config.colours:
            for kind in self.world.config.object_kinds:
                if _last_mention(history, f"{colour} {kind}") is None:
                    drafts.append(_Draft(f"Where was the {colour} {kind} last seen?", "", tuple(self.world.places), ()))
        return drafts
