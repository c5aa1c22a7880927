"""A seeded procedural indoor world with ground truth: rooms, furniture, objects, people and events.

The world advances one 10-s clip at a time. A camera (the robot) dwells in one room for a few clips, then
moves on; it sees that room whole. Events happen in the camera's room at times inside the clip (people enter,
leave, pick up and put down objects, change activity; objects appear and disappear; lights and doors change);
people also move between rooms unseen. For every clip the world records what the camera saw as atomic
`Fact`s with a canonical sentence each, so memories and answers can be checked against ground truth.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

ACTIVITIES = ("walking", "sitting", "waving")
COLOURS = {  # name -> RGB, chosen to stay distinct after downscaling
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 210, 40),
    "white": (245, 245, 245), "purple": (140, 50, 180), "orange": (250, 140, 20), "black": (25, 25, 25),
}
KINDS = ("mug", "box", "ball", "book", "bottle")
PLURALS = {"box": "boxes"}


@dataclass
class RoomSpec:
    """One room: its two pieces of furniture (places) and its wall and floor colours (RGB)."""

    name: str
    places: tuple[str, str]
    wall: tuple[int, int, int]
    floor: tuple[int, int, int]


DEFAULT_ROOMS = (
    RoomSpec("kitchen", ("table", "counter"), (190, 215, 235), (150, 150, 150)),
    RoomSpec("hall", ("shelf", "bench"), (225, 205, 160), (95, 120, 135)),
    RoomSpec("office", ("desk", "cabinet"), (170, 200, 170), (175, 165, 140)),
    RoomSpec("living room", ("sofa", "cupboard"), (220, 180, 190), (170, 130, 90)),
)


@dataclass
class WorldConfig:
    """Everything that shapes a world; the defaults are `sim/worlds/default.yaml`."""

    seed: int = 0
    """Random seed: the same seed and config give the same world, frames and tasks."""
    duration_s: float = 600.0
    """Length of the stream in seconds (a multiple of `clip_seconds`)."""
    clip_seconds: float = 10.0
    """Clip length (the paper: 10 s); events happen inside clips."""
    fps: float = 2.0
    """Rendered frames per second."""
    cell_px: int = 32
    """Pixels per layout cell; a frame is 8 x 6 cells (256 x 192 at 32 px)."""
    rooms: int = 4
    """How many of the standard rooms (kitchen, hall, office, living room) the house has."""
    people: int = 6
    """People who live in the house (ids 1..people); higher ids never appear ("not seen" questions)."""
    max_person_id: int = 8
    """Ids up to this are used by questions; ids above `people` are never seen."""
    object_kinds: tuple[str, ...] = KINDS
    """Kinds of object, each drawn with its own shape."""
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow", "white", "purple", "orange")
    """Object colours (shirts use the same palette plus black)."""
    initial_objects: int = 8
    """Object groups (one colour and kind, 1-3 units, on one place) at the start."""
    max_units_per_place: int = 3
    """Object units a place holds."""
    dwell_clips: tuple[int, int] = (2, 4)
    """The camera stays in a room for this many clips (inclusive range) before moving."""
    events_per_clip: tuple[float, float, float] = (0.25, 0.5, 0.25)
    """Probability of 0, 1 and 2 events in a clip."""
    event_weights: dict[str, float] = field(default_factory=lambda: {
        "enter": 2.0, "leave": 1.5, "pick": 2.0, "put": 2.5, "activity": 1.5,
        "appear": 0.7, "disappear": 0.4, "lights": 0.3, "door": 0.3})
    """Relative frequency of each event kind (among those possible at the time)."""
    offscreen_move: float = 0.1
    """Per clip and person out of view: chance to move to another room (or out of the house) unseen."""

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> WorldConfig:
        data = yaml.safe_load(Path(path).read_text()) or {}
        data.update(overrides)
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict) -> WorldConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown world settings {unknown}; known: {sorted(known)}")
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        if not 1 <= self.rooms <= len(DEFAULT_ROOMS):
            raise ValueError(f"rooms must be 1..{len(DEFAULT_ROOMS)}")
        if not 1 <= self.people <= self.max_person_id <= len(COLOURS):
            raise ValueError(f"need 1 <= people <= max_person_id <= {len(COLOURS)} (each id has its own shirt colour)")
        if self.duration_s < self.clip_seconds or self.fps <= 0 or self.cell_px < 8:
            raise ValueError("need duration_s >= clip_seconds, fps > 0 and cell_px >= 8")
        if unknown := set(self.object_kinds) - set(KINDS):
            raise ValueError(f"unknown object kinds {sorted(unknown)}; known: {KINDS}")
        if unknown := set(self.colours) - set(COLOURS):
            raise ValueError(f"unknown colours {sorted(unknown)}; known: {sorted(COLOURS)}")
        if len(self.events_per_clip) != 3 or abs(sum(self.events_per_clip) - 1) > 1e-6:
            raise ValueError("events_per_clip must be three probabilities summing to 1")

    @property
    def room_specs(self) -> tuple[RoomSpec, ...]:
        return DEFAULT_ROOMS[: self.rooms]

    def room_spec(self, name: str) -> RoomSpec:
        """The spec of the room called `name`."""
        return next(r for r in self.room_specs if r.name == name)

    @property
    def clips(self) -> int:
        return int(self.duration_s // self.clip_seconds)


def object_phrase(colour: str, kind: str, count: int | None = None) -> str:
    """'a red mug' (one object), '1 red mug', '2 red mugs' (a counted group)."""
    if count is None:
        return f"a {colour} {kind}"
    return f"{count} {colour} {kind if count == 1 else PLURALS.get(kind, kind + 's')}"


@dataclass
class ObjectGroup:
    """Units of one colour and kind lying on one place (`room place`, e.g. 'kitchen table')."""

    colour: str
    kind: str
    place: str
    count: int


@dataclass
class Person:
    pid: int
    shirt: str
    room: str | None  # None: out of the house
    activity: str = "walking"
    carrying: tuple[str, str] | None = None  # (colour, kind)
    slot: int = 0  # where in the room they stand (0..2)


@dataclass
class RoomState:
    lights_on: bool = True
    door_open: bool = False


@dataclass
class WorldState:
    rooms: dict[str, RoomState]
    objects: list[ObjectGroup]
    people: dict[int, Person]

    def in_room(self, room: str) -> list[Person]:
        return sorted((p for p in self.people.values() if p.room == room), key=lambda p: p.slot)

    def objects_at(self, place: str) -> list[ObjectGroup]:
        return [o for o in self.objects if o.place == place]

    def units_at(self, place: str) -> int:
        return sum(o.count for o in self.objects_at(place))


@dataclass(frozen=True)
class Event:
    """Something that happens at `time` (seconds from the stream start) in the camera's room."""

    time: float
    kind: str  # enter | leave | pick | put | activity | appear | disappear | lights | door
    room: str
    pid: int | None = None
    colour: str = ""
    object_kind: str = ""
    place: str = ""
    value: str = ""  # the new activity, "on"/"off" for lights, "open"/"closed" for doors


@dataclass(frozen=True)
class Fact:
    """An atomic thing the camera saw in a clip, with its canonical sentence.

    `key` identifies the fact regardless of wording (used to judge fidelity); `slot` is the thing whose state
    it gives (an object group at a place, a person, a room's lights), so a later fact with the same slot and
    key repeats it; events have no slot and never repeat. `subjects` names what the fact is about
    ('person 2', 'red mug', 'kitchen table', 'kitchen')."""

    key: tuple
    text: str
    time: float
    subjects: tuple[str, ...]
    slot: tuple = ()


@dataclass
class ClipTruth:
    """Ground truth of one clip: where the camera was, what it saw at the start, what happened."""

    index: int
    start: float
    end: float
    room: str
    start_state: WorldState
    events: tuple[Event, ...]
    end_state: WorldState
    facts: tuple[Fact, ...] = ()

    def state_at(self, time: float) -> WorldState:
        """The world as the camera sees it at `time` (events up to then applied)."""
        state = copy.deepcopy(self.start_state)
        for event in self.events:
            if event.time <= time:
                apply_event(state, event)
        return state


class World:
    """A simulated stream: `clips[k]` is the ground truth of [k * 10, (k + 1) * 10) s."""

    def __init__(self, config: WorldConfig):
        config.validate()
        self.config = config
        self.rng = random.Random(config.seed)
        self.state = self._initial_state()
        self.clips: list[ClipTruth] = []
        self._camera_room = self.rng.choice([r.name for r in config.room_specs])
        self._dwell = self.rng.randint(*config.dwell_clips)
        for index in range(config.clips):
            self.clips.append(self._advance(index))

    # ---- set-up
    def _initial_state(self) -> WorldState:
        config, rng = self.config, self.rng
        rooms = {r.name: RoomState() for r in config.room_specs}
        places = [f"{r.name} {p}" for r in config.room_specs for p in r.places]
        shirts = rng.sample(sorted(set(COLOURS)), config.max_person_id)
        people = {}
        for pid in range(1, config.people + 1):
            room = rng.choice([*rooms, None])
            people[pid] = Person(pid, shirts[pid - 1], None)
            if room is not None and len([p for p in people.values() if p.room == room]) < 3:
                people[pid].slot = self._free_slot(people.values(), room)
                people[pid].room = room
        self._shirts = shirts
        objects: list[ObjectGroup] = []
        combos = [(c, k) for c in config.colours for k in config.object_kinds]
        rng.shuffle(combos)
        for colour, kind in combos[: config.initial_objects]:
            free = [p for p in places if sum(o.count for o in objects if o.place == p) < config.max_units_per_place]
            if not free:
                break
            place = rng.choice(free)
            room_left = config.max_units_per_place - sum(o.count for o in objects if o.place == place)
            objects.append(ObjectGroup(colour, kind, place, rng.randint(1, min(3, room_left))))
        return WorldState(rooms, objects, people)

    def describe(self, index: int) -> str:
        """Everything the camera saw in clip `index`, as sentences."""
        return " ".join(f.text for f in self.clips[index].facts)

    def describe_new(self, index: int, preceding: int = 4) -> str:
        """What clip `index` adds to the `preceding` clips' facts (the paper's "only new content"): the room,
        then the facts not already stated; the oracle memory and the warm-start target."""
        return " ".join(f.text for f in self.new_facts(index, preceding))

    def new_facts(self, index: int, preceding: int = 4) -> list[Fact]:
        """The facts of `describe_new`."""
        latest: dict[tuple, tuple] = {}  # slot -> key of the latest statement about it
        for clip in self.clips[max(0, index - preceding): index + 1]:
            for fact in clip.facts:
                if fact.slot and clip.index < index:
                    latest[fact.slot] = fact.key
                for slot in touched_slots(fact):  # after an event the state is worth stating again
                    latest.pop(slot, None)
        facts = self.clips[index].facts
        return [f for f in facts if f.key[0] == "room" or not f.slot or latest.get(f.slot) != f.key]

    @property
    def places(self) -> list[str]:
        return [f"{r.name} {p}" for r in self.config.room_specs for p in r.places]

    def shirt_of(self, pid: int) -> str:
        """Shirt colour of any person id up to `max_person_id` (seen or not)."""
        return self._shirts[pid - 1]

    @staticmethod
    def _free_slot(people, room: str) -> int:
        taken = {p.slot for p in people if p.room == room}
        return min(set(range(3)) - taken)

    # ---- one clip
    def _advance(self, index: int) -> ClipTruth:
        config, rng = self.config, self.rng
        if self._dwell == 0:
            self._camera_room = rng.choice([r.name for r in config.room_specs if r.name != self._camera_room]
                                           or [self._camera_room])
            self._dwell = rng.randint(*config.dwell_clips)
        self._dwell -= 1
        room = self._camera_room
        self._move_offscreen(room)
        start = index * config.clip_seconds
        start_state = copy.deepcopy(self.state)
        events = []
        count = rng.choices((0, 1, 2), weights=config.events_per_clip)[0]
        # events at least 3 s apart and 1.5 s from the clip's edges, so frames show before and after
        times = sorted(rng.sample([1.5 + 3 * i for i in range(int((config.clip_seconds - 3) // 3) + 1)], count))
        for offset in times:
            event = self._propose(start + offset, room)
            if event is not None:
                apply_event(self.state, event)
                events.append(event)
        clip = ClipTruth(index, start, start + config.clip_seconds, room, start_state, tuple(events),
                         copy.deepcopy(self.state))
        clip.facts = tuple(clip_facts(clip))
        return clip

    def _move_offscreen(self, camera_room: str) -> None:
        rooms = [r.name for r in self.config.room_specs]
        for person in self.state.people.values():
            if person.room == camera_room or self.rng.random() >= self.config.offscreen_move:
                continue
            target = self.rng.choice([r for r in [*rooms, None] if r != camera_room and r != person.room])
            if target is None or len(self.state.in_room(target)) < 3:
                if target is not None:
                    person.slot = self._free_slot(self.state.people.values(), target)
                person.room = target
                person.activity = "walking"

    def _propose(self, time: float, room: str) -> Event | None:
        """A random event that is possible in `room` now."""
        config, rng, state = self.config, self.rng, self.state
        spec = config.room_spec(room)
        places = [f"{room} {p}" for p in spec.places]
        present = state.in_room(room)
        absent = [p for p in state.people.values() if p.room != room]
        idle = [p for p in present if p.carrying is None]
        carrying = [p for p in present if p.carrying is not None]
        groups = [o for o in state.objects if o.place in places]
        free_places = [p for p in places if state.units_at(p) < config.max_units_per_place]
        options: dict[str, callable] = {}
        if absent and len(present) < 3:
            options["enter"] = lambda: Event(time, "enter", room, rng.choice(absent).pid)
        if present:
            options["leave"] = lambda: Event(time, "leave", room, rng.choice(present).pid)
        if idle and groups:
            def pick():
                group = rng.choice(groups)
                return Event(time, "pick", room, rng.choice(idle).pid, group.colour, group.kind, group.place)
            options["pick"] = pick
        if carrying and free_places:
            def put():
                person = rng.choice(carrying)
                return Event(time, "put", room, person.pid, *person.carrying, rng.choice(free_places))
            options["put"] = put
        if idle:
            def activity():
                person = rng.choice(idle)
                return Event(time, "activity", room, person.pid,
                             value=rng.choice([a for a in ACTIVITIES if a != person.activity]))
            options["activity"] = activity
        if free_places:
            def appear():
                colour, kind = rng.choice(config.colours), rng.choice(config.object_kinds)
                return Event(time, "appear", room, None, colour, kind, rng.choice(free_places))
            options["appear"] = appear
        if groups:
            def disappear():
                group = rng.choice(groups)
                return Event(time, "disappear", room, None, group.colour, group.kind, group.place)
            options["disappear"] = disappear
        options["lights"] = lambda: Event(time, "lights", room, value="off" if state.rooms[room].lights_on else "on")
        options["door"] = lambda: Event(time, "door", room, value="closed" if state.rooms[room].door_open else "open")
        kinds = [k for k in options if config.event_weights.get(k, 0) > 0]
        if not kinds:
            return None
        kind = rng.choices(kinds, weights=[config.event_weights[k] for k in kinds])[0]
        return options[kind]()


def apply_event(state: WorldState, event: Event) -> None:
    """Change `state` by `event` (the one place the world's rules live)."""
    person = state.people.get(event.pid) if event.pid is not None else None
    if event.kind == "enter":
        person.slot = min(set(range(3)) - {p.slot for p in state.in_room(event.room)})
        person.room, person.activity = event.room, "walking"
    elif event.kind == "leave":
        person.room = None
    elif event.kind == "pick":
        _take_unit(state, event.colour, event.object_kind, event.place)
        person.carrying, person.activity = (event.colour, event.object_kind), "walking"
    elif event.kind == "put":
        _add_unit(state, event.colour, event.object_kind, event.place)
        person.carrying = None
    elif event.kind == "activity":
        person.activity = event.value
    elif event.kind == "appear":
        _add_unit(state, event.colour, event.object_kind, event.place)
    elif event.kind == "disappear":
        _take_unit(state, event.colour, event.object_kind, event.place)
    elif event.kind == "lights":
        state.rooms[event.room].lights_on = event.value == "on"
    elif event.kind == "door":
        state.rooms[event.room].door_open = event.value == "open"
    else:
        raise ValueError(f"unknown event kind {event.kind!r}")


def _take_unit(state: WorldState, colour: str, kind: str, place: str) -> None:
    group = next(o for o in state.objects if (o.colour, o.kind, o.place) == (colour, kind, place))
    group.count -= 1
    if group.count == 0:
        state.objects.remove(group)


def _add_unit(state: WorldState, colour: str, kind: str, place: str) -> None:
    group = next((o for o in state.objects if (o.colour, o.kind, o.place) == (colour, kind, place)), None)
    if group is None:
        state.objects.append(ObjectGroup(colour, kind, place, 1))
    else:
        group.count += 1


def touched_slots(fact: Fact) -> list[tuple]:
    """The state slots an event fact changes (the person it is about, the object group at its place)."""
    if fact.key[0] != "event":
        return []
    _, _, _, pid, colour, kind, place, _ = fact.key
    return [slot for slot, present in ((("person", pid), pid is not None),
                                       (("object", colour, kind, place), bool(colour))) if present]


def person_name(pid: int) -> str:
    return f"person {pid}"


def event_fact(event: Event, state: WorldState) -> Fact:
    """The canonical sentence of an event (present tense, as a memory would state it)."""
    who = person_name(event.pid) if event.pid is not None else ""
    shirt = f" in {state.people[event.pid].shirt}" if event.pid is not None else ""
    thing = object_phrase(event.colour, event.object_kind) if event.colour else ""
    text = {
        "enter": f"{who}{shirt} enters the {event.room}.",
        "leave": f"{who}{shirt} leaves the {event.room}.",
        "pick": f"{who}{shirt} picks up {thing} from the {event.place}.",
        "put": f"{who}{shirt} puts {thing} on the {event.place}.",
        "activity": f"{who}{shirt} starts {event.value}.",
        "appear": f"{thing} appears on the {event.place}.",
        "disappear": f"{thing} disappears from the {event.place}.",
        "lights": f"the {event.room} lights turn {event.value}.",
        "door": f"the {event.room} door {'opens' if event.value == 'open' else 'closes'}.",
    }[event.kind]
    subjects = tuple(s for s in (who, f"{event.colour} {event.object_kind}".strip(), event.place, event.room) if s)
    key = ("event", event.kind, event.room, event.pid, event.colour, event.object_kind, event.place, event.value)
    return Fact(key, text, event.time, subjects)


def room_sentence(room: str) -> str:
    """The sentence every memory of a clip in `room` starts with."""
    return f"in the {room}."


def clip_facts(clip: ClipTruth) -> list[Fact]:
    """What the camera saw in a clip: the room, the events in order, then the room as it is at the clip's end."""
    end, state = clip.end, clip.end_state
    facts = [Fact(("room", clip.room), room_sentence(clip.room), clip.start, (clip.room,))]
    before = copy.deepcopy(clip.start_state)
    for event in clip.events:
        facts.append(event_fact(event, before))
        apply_event(before, event)
    if not state.rooms[clip.room].lights_on:
        facts.append(Fact(("lights", clip.room, "off"), f"the {clip.room} lights are off.", end, (clip.room,),
                              ("lights", clip.room)))
    for group in sorted(state.objects, key=lambda o: (o.place, o.colour, o.kind)):
        if group.place.startswith(clip.room + " "):
            text = f"{object_phrase(group.colour, group.kind, group.count)} on the {group.place}."
            facts.append(Fact(("object", group.colour, group.kind, group.place, group.count), text, end,
                              (f"{group.colour} {group.kind}", group.place),
                              ("object", group.colour, group.kind, group.place)))
    for person in state.in_room(clip.room):
        doing = f"carrying {object_phrase(*person.carrying)}" if person.carrying else person.activity
        text = f"{person_name(person.pid)} in {person.shirt} is {doing}."
        facts.append(Fact(("person", person.pid, person.shirt, doing), text, end, (person_name(person.pid),),
                          ("person", person.pid)))
    return facts
