"""The simulated world: seeded, consistent with its own rules, its facts visible in the pixels, exportable."""

import copy
import hashlib
import itertools

import numpy as np
import pytest

from taskmem_nodes.paths import default_world
from taskmem_nodes.sim.dataset import export_stream, load_sim_config, make_stream, world_detections, world_frames
from taskmem_nodes.sim.render import PERSON_COLUMNS, PLACE_COLUMNS, render_frame
from taskmem_nodes.sim.tasks import TaskConfig
from taskmem_nodes.sim.world import COLOURS, ObjectGroup, Person, World, WorldConfig, apply_event
from taskmem_nodes.video_source import open_source

SHORT = WorldConfig(seed=5, duration_s=120.0)


def frame_digest(world: World) -> str:
    digest = hashlib.sha256()
    for _, frame in world_frames(world):
        digest.update(frame.tobytes())
    return digest.hexdigest()


def test_same_seed_same_world_frames_and_facts():
    a, b, c = World(SHORT), World(SHORT), World(WorldConfig(seed=6, duration_s=120.0))
    assert [a.describe(i) for i in range(12)] == [b.describe(i) for i in range(12)]
    assert frame_digest(a) == frame_digest(b)
    assert [a.describe(i) for i in range(12)] != [c.describe(i) for i in range(12)]


def test_the_world_keeps_its_rules_over_a_long_stream():
    world = World(WorldConfig(seed=11, duration_s=1800.0))
    config = world.config
    kinds = set()
    for clip in world.clips:
        state = copy.deepcopy(clip.start_state)
        for event in clip.events:
            assert clip.start < event.time < clip.end and event.room == clip.room
            apply_event(state, event)
            kinds.add(event.kind)
        assert state == clip.end_state
        for place in world.places:
            assert state.units_at(place) <= config.max_units_per_place
        assert all(group.count > 0 for group in state.objects)
        for room in clip.start_state.rooms:
            people = state.in_room(room)
            assert len(people) <= 3 and len({p.slot for p in people}) == len(people)
        assert all(pid <= config.people for pid in state.people)
    assert kinds == {"enter", "leave", "pick", "put", "activity", "appear", "disappear", "lights", "door"}
    for before, after in itertools.pairwise(world.clips):  # objects change only by events the camera sees
        assert after.start_state.objects == before.end_state.objects


def test_new_content_states_changes_and_events_once():
    world = World(WorldConfig(seed=2, duration_s=600.0))
    for index, clip in enumerate(world.clips):
        new = world.describe_new(index)
        assert new.startswith(f"in the {clip.room}.")
        for fact in clip.facts:
            if fact.key[0] == "event":
                assert fact.text in new  # events are never redundant
    # a room seen in consecutive clips with nothing happening adds nothing but the room
    quiet = [i for i, c in enumerate(world.clips[1:], 1)
             if not c.events and c.room == world.clips[i - 1].room and c.end_state == world.clips[i - 1].end_state]
    assert quiet, "expected at least one uneventful clip in ten minutes"
    assert all(world.describe_new(i) == f"in the {world.clips[i].room}." for i in quiet)


def cell(image, column, row, cell_px=32):
    return image[row * cell_px:(row + 1) * cell_px, column * cell_px:(column + 1) * cell_px]


def has_colour(patch, rgb, tolerance=10):
    return bool(np.any(np.all(np.abs(patch.astype(int) - rgb) <= tolerance, axis=-1)))


def test_what_the_facts_say_is_in_the_pixels():
    world = World(SHORT)
    room = world.config.room_specs[0]
    state = copy.deepcopy(world.clips[0].start_state)
    state.objects = [ObjectGroup("purple", "ball", f"{room.name} {room.places[1]}", 2)]
    state.people = {3: Person(3, "orange", room.name, "waving", slot=1)}
    frame = render_frame(state, room, 32)
    assert frame.shape == (192, 256, 3) and frame.dtype == np.uint8
    first = PLACE_COLUMNS[1]
    assert has_colour(cell(frame, first, 2), COLOURS["purple"]) and has_colour(cell(frame, first + 1, 2),
                                                                               COLOURS["purple"])
    assert not has_colour(cell(frame, first + 2, 2), COLOURS["purple"])  # two units, not three
    assert not has_colour(frame[:, : PLACE_COLUMNS[1] * 32], COLOURS["purple"])
    shirt = frame[int(4.5 * 32): int(5.4 * 32), int(PERSON_COLUMNS[1] * 32) - 10: int(PERSON_COLUMNS[1] * 32) + 10]
    assert has_colour(shirt, COLOURS["orange"])
    state.rooms[room.name].lights_on = False
    assert render_frame(state, room, 32).mean() < 0.6 * frame.mean()
    state.rooms[room.name].lights_on = True
    # every object kind draws a different shape
    shapes = set()
    for kind in world.config.object_kinds:
        state.objects = [ObjectGroup("red", kind, f"{room.name} {room.places[0]}", 1)]
        patch = cell(render_frame(state, room, 32), PLACE_COLUMNS[0], 2)
        shapes.add(np.all(np.abs(patch.astype(int) - COLOURS["red"]) <= 10, axis=-1).tobytes())
    assert len(shapes) == len(world.config.object_kinds)


def test_world_file_defaults_and_validation(tmp_path):
    world_config, task_config = load_sim_config(default_world())
    assert world_config == WorldConfig() and task_config == TaskConfig()
    assert load_sim_config(default_world(), seed=9)[0].seed == 9
    with pytest.raises(ValueError, match="unknown world settings"):
        WorldConfig.from_dict({"sede": 1})
    with pytest.raises(ValueError, match="unknown colours"):
        WorldConfig.from_dict({"colours": ["red", "mauve"]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("world: {seed: 1}\nextra: 2\n")
    with pytest.raises(ValueError, match="sections"):
        load_sim_config(bad)


def test_streams_as_camera_source_video_and_rosbag(tmp_path):
    info, frames = open_source(default_world(), sim_seed=5)
    assert info.kind == "sim" and info.fps == 2.0
    offsets = [t for t, _ in itertools.islice(frames, 5)]
    assert offsets == [0.0, 0.5, 1.0, 1.5, 2.0]
    sim = make_stream(SHORT, TaskConfig(per_minute=6), "s5")
    written = export_stream(sim, tmp_path / "out")
    expected = list(world_frames(sim.world))
    bag_info, bag_frames = open_source(written["bag"])
    bag_frames = list(bag_frames)
    assert bag_info.kind == "rosbag2" and len(bag_frames) == len(expected) == 240
    assert bag_frames[37][0] == pytest.approx(expected[37][0]) and np.array_equal(bag_frames[37][1], expected[37][1])
    # the simulated tracker is in the bag too, one output per image (people in view, possibly nobody)
    tracker = world_detections(sim.world)
    assert info.detections is not None and bag_info.detections is not None
    def people(found):
        return [(d.entity_id, round(d.x, 4), round(d.y, 4)) for d in found]  # float32 in the message
    assert [people(bag_info.detections(t)) for t, _ in bag_frames] == [people(tracker(t)) for t, _ in expected]
    assert any(tracker(t) for t, _ in expected)
    video_info, video_frames = open_source(written["video"])
    assert video_info.kind == "video" and video_info.fps == pytest.approx(2.0)
    video_frames = list(video_frames)
    assert len(video_frames) == 240 and np.abs(video_frames[37][1].astype(int) - expected[37][1]).mean() < 8
    assert written["tasks"].read_text().count('"task_id"') == len(sim.stream.tasks) > 0
    with pytest.raises(FileExistsError):
        export_stream(sim, tmp_path / "out", video=False)
