"""Phase One training data from the simulated world: for every clip, the policy's input (the 50-s window and
the memories of up to four preceding clips) and what it should write (the clip's new content).

The input is built by `taskmem_nodes.policy.build_request`, the same function the memorizer node and the
benchmark use, so training sees exactly the prompts of inference.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass

from taskmem_nodes.clips import Clip, ClipCutter
from taskmem_nodes.policy import (
    PRECEDING_MEMORIES,
    WINDOW_CLIPS,
    PolicyRequest,
    PrecedingMemory,
    build_request,
    person_mentions,
    pick_frames,
    select_window,
)
from taskmem_nodes.sim.dataset import world_detections, world_frames
from taskmem_nodes.sim.world import ClipTruth, Fact, RoomSpec, World, WorldState, room_sentence, touched_slots
from taskmem_nodes.train.fact_judge import statements


def target_output(description: str, thinking: str) -> str:
    """The policy's output format: `<think>...</think>` then the JSON object with the description."""
    return f"<think>\n{thinking}\n</think>\n\n" + json.dumps({"description": description})


CellRef = tuple[int, int, int]
"""(start, end, cell): characters of the thinking that name what one layout cell of the newest clip shows."""
IdRef = tuple[int, int, str]
"""(start, end, entity): characters of the target that copy a tracker id (its digits), and the entity id."""
CountRef = tuple[int, int, tuple[tuple[int, int], ...]]
"""(start, end, spans): the count digit of an object statement in the target, and the spans of the thinking it is
counted from: the place's label, then each unit of that colour and kind the scan lists there."""
SuccessorRef = tuple[int, int, int, int]
"""(start, end, key_start, key_end): in a numbered scan, what follows a unit's name (its number, or the comma or
full stop when it has none) and the unit listed before it in the same place, whose number it continues."""


def _scan_part(text: str, items: list[tuple[str, int]], suffixes: list[str] | None = None
               ) -> tuple[str, list[CellRef]]:
    """`text` followed by its items joined by commas (or the empty word), each item's span and cell kept; an
    item's suffix (its number) follows it outside that span."""
    refs = []
    for k, (item, cell) in enumerate(items):
        text += ", " if k else " "
        refs.append((len(text), len(text) + len(item), cell))
        text += item + (suffixes[k] if suffixes else "")
    return text, refs


NUMBERINGS = ("running", "size")
"""How a numbered scan numbers a place's units (`unit_number`)."""
SCAN_NUMBERINGS = ("", *NUMBERINGS)
"""What a recipe's `numbered_units` may be: "" (a plain scan) or one of `NUMBERINGS`."""


def unit_number(units: list, k: int, numbering: str) -> int:
    """The number of unit `k` of a place's units (grouped by colour and kind, `place_units`): "running", its
    place among the units of its group (1, 2, 3); "size", how many units its group holds."""
    if numbering not in NUMBERINGS:
        raise ValueError(f"a scan's units are numbered {' or '.join(map(repr, NUMBERINGS))}, not {numbering!r}")
    return units[: k + 1].count(units[k]) if numbering == "running" else units.count(units[k])


def unit_numbers(units: list[str], numbering: str = "running") -> list[str]:
    """The number each unit of a place is written with in a numbered scan (`unit_number`; none for a 1), so the
    last unit of a group says how many there are and a count is a copy of it."""
    numbers = [unit_number(units, k, numbering) for k in range(len(units))]
    return [f" {n}" if n > 1 else "" for n in numbers]


ScanPart = tuple[str, list[CellRef], list[IdRef]]


def scene_scan(state: WorldState, room: RoomSpec, tracked: bool = False, numbered: str = "") -> list[ScanPart]:
    """What one frame shows, part by part in the renderer's left-to-right order (lights, door, each place's
    object units, the people: side of the view, id, shirt, what they do), each part with the cells its items
    are drawn in. With a tracker a person's id is copied from the prompt's tracker line (the id after the same
    side): the id's digits are an id reference instead of part of the cell's span. `numbered` ("running" or
    "size", `NUMBERINGS`; "" none): a place's repeated units carry their number (`unit_numbers`)."""
    from taskmem_nodes.policy import view_side
    from taskmem_nodes.sim.render import GRID_COLUMNS, PLACE_COLUMNS, person_detections, place_units, shirt_columns

    room_state = state.rooms[room.name]
    parts: list[ScanPart] = [("lights off." if not room_state.lights_on else "lights on.", [], []),
                             ("door open." if room_state.door_open else "door closed.", [], [])]
    for column, place in zip(PLACE_COLUMNS, room.places):
        units = [f"{colour} {kind}" for colour, kind in place_units(state, room.name, place)]
        text, refs = _scan_part(f"{place}:", [(u, 2 * GRID_COLUMNS + column + k) for k, u in enumerate(units)],
                                unit_numbers(units, numbered) if numbered else None)
        parts.append((text + ("." if units else " nothing."), refs, []))
    present = list(zip(state.in_room(room.name), person_detections(state, room.name)))  # as the tracker reports
    people = [(f"{view_side(seen.x)} {p.pid} {p.shirt} "
               f"{'carrying ' + ' '.join(p.carrying) if p.carrying else p.activity}",
               4 * GRID_COLUMNS + shirt_columns(p.slot)[0]) for p, seen in present]
    text, refs = _scan_part("people:", people)
    id_refs: list[IdRef] = []
    if tracked:  # side | id | shirt and doing: the side and the rest tied to the cell, the id to the tracker line
        split = []
        for (start, end, cell), (person, seen) in zip(refs, present):
            id_start = text.index(" ", start) + 1
            id_end = id_start + len(str(person.pid))
            split += [(start, id_start - 1, cell), (id_end + 1, end, cell)]
            id_refs.append((id_start, id_end, seen.entity_id))
        refs = split
    parts.append((text + ("." if people else " none."), refs, id_refs))
    return parts


def scan_thinking(world: World, index: int, frame_span: tuple[float, float], tracked: bool = False,
                  new_room: bool = False, numbered: str = "") -> tuple[str, list[CellRef], list[IdRef]]:
    """The plan the warm start teaches: the room (", new" when no preceding memory shown is about it: then
    everything the clip shows is new content), a scan of the clip's first frame shown, and what differs at its
    last, with the cells each scanned item is drawn in (and, with a tracker, where each id is copied). Reading
    each cell into the thinking first makes the memory a matter of comparing and copying text (a count of new
    facts here, as the only plan, taught the model to say "0" and write the room only)."""
    clip = world.clips[index]
    room = world.config.room_spec(clip.room)
    first, last = (scene_scan(clip.state_at(t), room, tracked, numbered) for t in frame_span)
    shown = [part for part in first if part[0] not in ("lights on.", "door closed.")]
    changed = [b for a, b in zip(first, last, strict=True) if a[0] != b[0]] or [("same.", [], [])]
    text, refs, id_refs = f"The {clip.room}{', new' if new_room else ''}.", [], []
    for label, parts in (("first:", shown), ("last:", changed)):
        text += f" {label}"
        for part, part_refs, part_ids in parts:
            refs += [(len(text) + 1 + start, len(text) + 1 + end, cell) for start, end, cell in part_refs]
            id_refs += [(len(text) + 1 + start, len(text) + 1 + end, entity) for start, end, entity in part_ids]
            text += f" {part}"
    return text, refs, id_refs


def thinking_for(world: World, index: int, frame_span: tuple[float, float], new_room: bool = False) -> str:
    """The thinking text of `scan_thinking`."""
    return scan_thinking(world, index, frame_span, new_room=new_room)[0]


def is_new_room(room: str, preceding: list[PrecedingMemory]) -> bool:
    """Whether none of the preceding memories shown is about `room` (every memory starts with its room)."""
    return not any(m.text.startswith(room_sentence(room)) for m in preceding)


@dataclass(frozen=True)
class ClipExample:
    """One memorization step of a simulated stream."""

    world: World
    index: int  # clip index in the stream
    request: PolicyRequest
    description: str  # the ground-truth new content the frames shown tell of: the warm-start target
    target: str  # the whole output text for supervised training
    frame_span: tuple[float, float] = (0.0, 0.0)  # stream times of the clip's first and last frame shown
    cell_refs: tuple[CellRef, ...] = ()  # spans of `target` naming what a cell of the newest clip shows
    id_refs: tuple[IdRef, ...] = ()  # spans of `target` copying a tracker id (none without a tracker)
    count_refs: tuple[CountRef, ...] = ()  # each object statement's count digit and the scan's units it counts
    successor_refs: tuple[SuccessorRef, ...] = ()  # a numbered scan's units and the unit each one follows


def stream_clips(world: World, sample_fps: float, *, tracker: bool = True) -> list[Clip]:
    """The stream's 10-s clips, sampled to `sample_fps` frames per second, with the simulated person tracker's
    detections in every frame (or without a tracker)."""
    cutter = ClipCutter(clip_seconds=world.config.clip_seconds, sample_fps=sample_fps, stream_id="sim")
    detections = world_detections(world) if tracker else None
    clips: list[Clip] = []
    for offset, frame in world_frames(world):
        if cutter.wants(offset):
            clips += cutter.add(offset, frame, detections(offset) if detections else None)
    return clips + list(cutter.flush())


def stream_examples(world: World, *, sample_fps: float = 1.0, frames_per_clip: int = 0,
                    preceding: list[str] | None = None, tracker: bool = True,
                    max_new_facts: int = 0, numbered: str = "") -> Iterator[ClipExample]:
    """Examples for every clip of `world`, in stream order. The preceding memories shown are `preceding[i]`
    for clip i when given (the policy's own outputs: the on-policy curriculum), else the ground truth (with a
    fact budget: the earlier clips' own budgeted targets); the prompts name the tracker's people unless
    `tracker` is False. `max_new_facts` > 0 caps each target at the room and that many new facts; `numbered`
    numbers the scan's repeated units."""
    clips = stream_clips(world, sample_fps, tracker=tracker)
    if preceding is None and max_new_facts:
        preceding = [target_description(world, i, _frame_span(clip, frames_per_clip), max_new_facts=max_new_facts)
                     for i, clip in enumerate(clips)]
    texts = preceding if preceding is not None else [world.describe_new(i) for i in range(len(clips))]
    for index in range(len(clips)):
        yield streamed_example(world, clips, index, texts, frames_per_clip=frames_per_clip, tracker=tracker,
                               max_new_facts=max_new_facts, numbered=numbered)


def streamed_example(world: World, clips: list[Clip], index: int, memories: list[str], *, frames_per_clip: int = 0,
                     tracker: bool = True, max_new_facts: int = 0, numbered: str = "",
                     own_memories: bool = False, untold_only: bool = False) -> ClipExample:
    """The example of clip `index` of a stream whose clips' memories so far are `memories` (one per clip, ""
    when there is none), the policy input showing up to four of them. `own_memories`: they are the policy's
    own, and the target is what is new to them (`target_facts`' `unstated_by`, and `untold_only`): the on-policy
    expert of DAgger."""
    request, shown = streamed_request(clips, index, memories, frames_per_clip)
    return _example(world, index, request, _frame_span(clips[index], frames_per_clip), new_only=True,
                    tracked=tracker, new_room=is_new_room(world.clips[index].room, shown),
                    max_new_facts=max_new_facts, numbered=numbered,
                    unstated_by=[m.text for m in shown] if own_memories else None, untold_only=untold_only)


def own_reading_target(world: World, clips: list[Clip], index: int, memories: list[str], thinking: str, *,
                       frames_per_clip: int = 0) -> tuple[PolicyRequest, str]:
    """DAgger's example after the policy's own reading: the input of clip `index` of a stream (its own memories
    shown, as `streamed_example`) and the target output `thinking` (the scan the policy itself wrote for the
    clip) followed by the facts new to those memories that the scan read right (`read_right`): what to write
    after its own reading, never a state it misread."""
    request, shown = streamed_request(clips, index, memories, frames_per_clip)
    facts = target_facts(world, index, _frame_span(clips[index], frames_per_clip), unstated_by=[m.text for m in shown])
    kept = [f for f in facts if read_right(thinking, world.clips[index].room, f)]
    return request, target_output(" ".join(f.text for f in kept), thinking)


def read_right(thinking: str, room: str, fact: Fact) -> bool:
    """Whether a scan (the thinking of `scan_thinking`'s format) lists the state `fact` gives as it is: an object
    group with its count at its place, a person with their shirt and what they do (as the scan's last people list
    gives them). Rooms, lights and events are not read off one list and count as read."""
    if fact.key[0] == "object":
        try:
            return len(counted_units(thinking, room, fact)) - 1 == fact.key[4]
        except ValueError:  # a place list that never ends: a malformed scan
            return False
    if fact.key[0] == "person":
        _, pid, shirt, doing = fact.key
        lists = re.findall(r"people: ([^.]*)\.", thinking)
        entry = f"{pid} {shirt} {doing.replace('carrying a ', 'carrying ')}"
        return bool(lists) and any(item.partition(" ")[2] == entry for item in lists[-1].split(", "))
    return True


def streamed_request(clips: list[Clip], index: int, memories: list[str],
                     frames_per_clip: int = 0) -> tuple[PolicyRequest, list[PrecedingMemory]]:
    """The policy input for clip `index` of a stream (its 50-s window and the memories of up to four preceding
    clips, `memories[i]` for clip i, "" when there is none), and the memories it shows."""
    window = select_window(clips[: index + 1], clips[index], WINDOW_CLIPS)
    earlier = range(max(0, index - PRECEDING_MEMORIES), index)
    shown = [PrecedingMemory(clips[i].start, clips[i].end, memories[i]) for i in earlier if memories[i]]
    return build_request(window, shown, frames_per_clip), shown


def _frame_span(clip: Clip, frames_per_clip: int) -> tuple[float, float]:
    """Stream times of the first and last frame of `clip` the policy is shown."""
    shown = pick_frames(clip.frames, frames_per_clip)
    return shown[0].stamp, shown[-1].stamp


def clip_alone_examples(world: World, *, sample_fps: float = 1.0, frames_per_clip: int = 0,
                        tracker: bool = True, numbered: str = "") -> Iterator[ClipExample]:
    """Every clip of `world` on its own (no window, no preceding memories) with everything it shows as target:
    the warm start's first stage, where seeing is learned apart from "only new content"."""
    for index, clip in enumerate(stream_clips(world, sample_fps, tracker=tracker)):
        yield _example(world, index, build_request([clip], [], frames_per_clip), _frame_span(clip, frames_per_clip),
                       new_only=False, tracked=tracker, new_room=True, numbered=numbered)


def seen_between(clip: ClipTruth, fact: Fact, frame_span: tuple[float, float]) -> bool:
    """Whether the frames shown tell of `fact`: an event is seen when a person or object group it touches looks
    different at the last frame than at the first (entering and leaving between the two is not); the room and
    the states at the clip's end always are."""
    slots = touched_slots(fact)
    if not slots:
        return True
    first, last = (clip.state_at(t) for t in frame_span)

    def look(state: WorldState, slot: tuple):
        if slot[0] == "person":
            person = state.people[slot[1]]
            return (person.activity, person.carrying) if person.room == clip.room else None
        _, colour, kind, place = slot
        return sum(o.count for o in state.objects_at(place) if (o.colour, o.kind) == (colour, kind))

    return any(look(first, slot) != look(last, slot) for slot in slots)


def target_facts(world: World, index: int, frame_span: tuple[float, float], *, new_only: bool = True,
                 max_new_facts: int = 0, unstated_by: list[str] | None = None,
                 untold_only: bool = False) -> list[Fact]:
    """The warm start's target facts: the clip's new content (or everything it shows) that the frames shown tell
    of; with `max_new_facts` > 0, the room and at most that many of the other facts (`within_budget`).
    `unstated_by`: the memories shown are the policy's own, so the new content is what the judge counts as new
    to the memory: the clip's new content and every other fact it shows that none of those memories states
    (a state the policy missed or misread earlier is worth stating now). `untold_only`: of those other facts,
    only the ones about a thing none of the memories speaks of (`speaks_of`), so a misreading is not corrected
    by restating the thing it is about."""
    clip = world.clips[index]
    facts = world.new_facts(index) if new_only else clip.facts
    if new_only and unstated_by is not None:
        stated = {s for memory in unstated_by for s in statements(memory)}
        facts = [f for f in clip.facts if f in facts or (
            statements(f.text)[0] not in stated and not (untold_only and any(speaks_of(s, f.slot) for s in stated)))]
    facts = [f for f in facts if seen_between(clip, f, frame_span)]
    if max_new_facts:
        facts = within_budget(facts, max_new_facts, random.Random(f"{world.config.seed}/{index}"))
    return facts


def speaks_of(statement: str, slot: tuple) -> bool:
    """Whether a memory's (normalized) statement gives the state of the thing in `slot`, rightly or not: a
    person's by their id, an object group's by its colour and kind or by its kind at its place (so a miscounted
    or misplaced group is spoken of); a room's lights by the room."""
    if not slot:
        return False
    if slot[0] == "person":
        return statement.startswith(f"person {slot[1]} ")
    if slot[0] == "lights":
        return statement.startswith(f"the {slot[1]} lights ")
    _, colour, kind, place = slot
    if not statement[:1].isdigit():  # a group's state begins with its count; events begin otherwise
        return False
    return f" {colour} {kind}" in statement or (f" {kind}" in statement and statement.endswith(f" on the {place}"))


def target_description(world: World, index: int, frame_span: tuple[float, float], *, new_only: bool = True,
                       max_new_facts: int = 0) -> str:
    """The text of `target_facts`: the warm start's target memory."""
    return " ".join(f.text for f in target_facts(world, index, frame_span, new_only=new_only,
                                                 max_new_facts=max_new_facts))


def counted_units(thinking: str, room: str, fact: Fact) -> tuple[tuple[int, int], ...]:
    """Where the scan lists what an object statement counts: the span of the place's label (`shelf`) and of each
    unit of the fact's colour and kind there (with its number in a numbered scan), in the scan of the last frame
    if that place changed, else of the first (a statement gives the place as it is at the clip's end). Empty when
    the scan does not list them."""
    _, colour, kind, place, _ = fact.key
    label = f" {place.removeprefix(room + ' ')}:"
    last = thinking.find(" last:")
    at = thinking.find(label, last) if last >= 0 else -1
    if at < 0:
        at = thinking.find(label)
    if at < 0:
        return ()
    start = at + 1
    end = thinking.index(".", start)
    spans, cursor = [(start, start + len(label) - 2)], start + len(label)
    for item in thinking[cursor:end].split(","):
        item_start = thinking.index(item.strip(), cursor)
        if item.strip().rstrip("0123456789").strip() == f"{colour} {kind}":  # a numbered unit's span ends in it
            spans.append((item_start, item_start + len(item.strip())))
        cursor = item_start + len(item.strip())
    return tuple(spans) if len(spans) > 1 else ()


PLACE_LIST = re.compile(r"(?<=[ :.]) ?([a-z][a-z ]*): ([a-z0-9 ,]+)\.")


def successor_refs(thinking: str) -> tuple[SuccessorRef, ...]:
    """Each unit after a place's first, in a numbered scan: the characters after its name (" 2", or the "," or "."
    after it) and the span of the unit before it. Whether a unit gets a number, and which, is decided there, by
    comparing it with the one before; people are not numbered."""
    refs = []
    for match in PLACE_LIST.finditer(thinking):
        if match.group(1) == "people":
            continue
        previous, cursor = None, match.start(2)
        for item in match.group(2).split(", "):
            name = item.rstrip("0123456789").rstrip()
            if previous is not None:
                after_name = cursor + len(name)
                refs.append((after_name, cursor + len(item) if name != item else after_name + 1, *previous))
            previous, cursor = (cursor, cursor + len(item)), cursor + len(item) + 2
    return tuple(refs)


def within_budget(facts: list[Fact], max_facts: int, rng: random.Random) -> list[Fact]:
    """The room, then `max_facts` of the other facts drawn uniformly at random, in the order drawn: a memory that
    cannot hold all that is new must choose, and a policy taught on these draws starts its memory with any new
    fact alike, with no preference of its own (which is what Phase Two then learns from the tasks)."""
    others = [f for f in facts if f.key[0] != "room"]
    return [f for f in facts if f.key[0] == "room"] + rng.sample(others, min(max_facts, len(others)))


def description_start(target: str, description: str) -> int:
    """Where `description` begins in the output `target` (the JSON string holds it verbatim: plain ASCII)."""
    return target.rindex(json.dumps(description)) + 1


def _example(world: World, index: int, request: PolicyRequest, span: tuple[float, float], *,
             new_only: bool, tracked: bool = False, new_room: bool = False, max_new_facts: int = 0,
             numbered: str = "", unstated_by: list[str] | None = None,
             untold_only: bool = False) -> ClipExample:
    facts = target_facts(world, index, span, new_only=new_only, max_new_facts=max_new_facts, unstated_by=unstated_by,
                         untold_only=untold_only)
    description = " ".join(f.text for f in facts)
    thinking, refs, thinking_ids = scan_thinking(world, index, span, tracked, new_room, numbered)
    target = target_output(description, thinking)
    offset = target.index(thinking)
    described = description_start(target, description)
    id_refs = [(offset + start, offset + end, entity) for start, end, entity in thinking_ids]
    if tracked:
        id_refs += [(described + start, described + end, entity)
                    for start, end, entity in person_mentions(description)]
    count_refs, cursor = [], described
    for fact in facts:
        at = target.index(fact.text, cursor)
        cursor = at + len(fact.text)
        units = counted_units(thinking, world.clips[index].room, fact) if fact.key[0] == "object" else ()
        if units:
            digits = len(str(fact.key[4]))
            count_refs.append((at, at + digits, tuple((offset + a, offset + b) for a, b in units)))
    successors = tuple((offset + a, offset + b, offset + c, offset + d) for a, b, c, d in successor_refs(thinking)) \
        if numbered else ()
    return ClipExample(world, index, request, description, target, span,
                       tuple((offset + start, offset + end, cell) for start, end, cell in refs), tuple(id_refs),
                       tuple(count_refs), successors)
