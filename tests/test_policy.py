"""The policy's prompt (50-s window + own memories) and the robust output parser."""

import json

import numpy as np
import pytest

from taskmem_nodes.clips import Clip, Detection, Frame
from taskmem_nodes.policy import (
    MemoryParseError,
    PrecedingMemory,
    build_request,
    confident_statements,
    entity_tag_id,
    parse_output,
    pick_frames,
    select_window,
    tracked_people,
)


def make_clip(start, frames=10, size=(24, 32)):
    images = [Frame(start + i, np.full((*size, 3), i, np.uint8)) for i in range(frames)]
    return Clip(f"c-{start:.0f}", start, start + 10.0, tuple(images), 1.0)


def test_window_is_current_clip_and_four_before_it():
    clips = [make_clip(100 + 10 * i) for i in range(7)]
    window = select_window(clips, clips[6])
    assert [c.start for c in window] == [120, 130, 140, 150, 160]
    assert select_window(clips, clips[1]) == clips[:2]
    # a gap: clips older than 50 s before the current end are not in the window
    assert select_window([clips[0], clips[6]], clips[6]) == [clips[6]]


def test_request_holds_window_frames_and_preceding_memories():
    clips = [make_clip(100 + 10 * i) for i in range(6)]
    window = select_window(clips, clips[5])
    memories = [PrecedingMemory(100 + 10 * i, 110 + 10 * i, f"memory {i}") for i in range(5)]
    request = build_request(window, memories)
    assert request.video.shape == (50, 24, 32, 3)
    assert request.frame_times[0] == 0.0 and request.frame_times[-1] == 49.0
    user = request.messages[-1]
    assert user["role"] == "user" and user["content"][0] == {"type": "video"}
    text = user["content"][1]["text"]
    assert "The newest clip is from 40s to 50s" in text
    # memories of clips 1..4 are in the window; memory 0 (100-110 s) is older than the window
    assert "memory 0" not in text
    assert all(f"[{10 * (i - 1)}s-{10 * i}s] memory {i}" in text for i in range(1, 5))
    assert '{"description": "..."}' in text


def test_a_few_frames_per_clip_keep_the_first_and_the_last():
    assert pick_frames(list(range(10)), 2) == [0, 9]
    assert pick_frames(list(range(10)), 4) == [0, 3, 6, 9]
    assert pick_frames(list(range(10)), 0) == list(range(10)) == pick_frames(list(range(10)), 12)
    clips = [make_clip(100 + 10 * i) for i in range(3)]
    request = build_request(clips, [], frames_per_clip=2)
    assert request.video.shape == (6, 24, 32, 3)
    assert request.frame_times == (0.0, 9.0, 10.0, 19.0, 20.0, 29.0)


def test_frames_of_another_size_are_resized_to_the_newest():
    window = [make_clip(0, size=(48, 64)), make_clip(10)]
    assert build_request(window, []).video.shape == (20, 24, 32, 3)


@pytest.mark.parametrize("raw,description", [
    ('<think>a person enters</think>\n\n{"description": "<face_1> enters the hall."}', "<face_1> enters the hall."),
    ('people walk</think>{"description": "Two people walk left."}', "Two people walk left."),
    ('<think></think>\n```json\n{"description": "A red mug on the table."}\n```', "A red mug on the table."),
    ('<think>x</think>{"description": "tab\\tand\\nnewline"}', "tab and newline"),
    ('<think>x</think>{"description": "in the hall. person 5 leaves. person 5 leaves.  a ball! person 5 leaves."}',
     "in the hall. person 5 leaves. a ball!"),  # a sentence the entry repeats is stated once
])
def test_parses_well_formed_outputs(raw, description):
    assert parse_output(raw).description == description


def test_entity_ids_are_extracted_once_each():
    parsed = parse_output('<think></think>{"description": "<face_2> hands a cup to <face_10>; <face_2> leaves."}')
    assert parsed.entity_ids == ("face_2", "face_10")
    simulated = parse_output('<think></think>{"description": "person 3 in red enters. <face_1> waves to person 3 '
                             'and person 12. a personal mug."}')
    assert simulated.entity_ids == ("person_3", "face_1", "person_12")


@pytest.mark.parametrize("raw,reason", [
    ('{"description": "no thinking"}', "no </think>"),
    ("<think>a</think><think>b</think>{}", "exactly one"),
    ("<think>x</think>plain text", "no JSON object"),
    ('<think>x</think>{"description": "unterminated', "invalid JSON"),
    ('<think>x</think>{"description": "a"} and more', "text after"),
    ('<think>x</think>{"description": "a", "extra": 1}', "only"),
    ('<think>x</think>["description"]', "no JSON object"),
    ('<think>x</think>{"description": 42}', "not a string"),
    ('<think>x</think>{"description": "   "}', "empty"),
    ('<think>x</think>{"description": "\\u0000\\u0007"}', "empty"),
    ("<think>x</think>{" + '"description": "' + "a" * 5000 + '"}', "more than"),
    ("<think>x</think>" + "{" * 100000, "invalid JSON"),
])
def test_rejects_malformed_and_hostile_outputs_with_a_reason(raw, reason):
    with pytest.raises(MemoryParseError, match=reason):
        parse_output(raw)


def test_lone_surrogates_and_control_characters_are_removed():
    raw = "<think></think>" + json.dumps({"description": "ok\ud800 text\x1b[31m red"})
    assert parse_output(raw).description == "ok text [31m red"


def tracked_clip(start, people_per_frame):
    """A clip whose frame i carries the tracker output people_per_frame[i] (None: no tracker)."""
    frames = [Frame(start + i, np.zeros((24, 32, 3), np.uint8), people) for i, people in enumerate(people_per_frame)]
    return Clip(f"c-{start:.0f}", start, start + 10.0, tuple(frames), 1.0)


def prompt_of(clip):
    return build_request([clip], []).messages[1]["content"][1]["text"]


def test_tracker_ids_are_in_the_prompt_left_to_right_at_their_last_sighting():
    walker = [Detection("person_3", 0.9, 0.8), Detection("person_3", 0.5, 0.8), Detection("person_3", 0.1, 0.8)]
    clip = tracked_clip(0.0, [(walker[0], Detection("17", 0.55, 0.8)), (walker[1],), (walker[2],)])
    assert tracked_people(clip) == [("person_3", "left"), ("face_17", "middle")]
    assert "The person tracker sees in the newest clip: left: <person_3>, middle: <face_17>." in prompt_of(clip)


def test_no_tracker_no_line_and_a_tracker_that_sees_nobody_says_so():
    assert tracked_people(tracked_clip(0.0, [None, None])) is None
    assert "tracker" not in prompt_of(tracked_clip(0.0, [None, None]))
    assert "The person tracker sees nobody in the newest clip." in prompt_of(tracked_clip(0.0, [(), None]))


@pytest.mark.parametrize("raw, tag", [("face_2", "face_2"), ("person_11", "person_11"), ("17", "face_17"),
                                      ("<b>x</b>", "face_bxb"), ("Ω", "face_unknown"), ("a" * 100, "face_" + "a" * 32)])
def test_tracker_ids_become_entity_tags_the_parser_reads(raw, tag):
    assert entity_tag_id(raw) == tag
    assert parse_output(f'</think>{{"description": "<{tag}> waves."}}').entity_ids == (tag,)


def _tokens(raw: str, pieces: list[tuple[str, float]]) -> tuple[list[int], list[float]]:
    """Token starts and probabilities of `raw`, written as (text, probability) pieces that spell it."""
    assert "".join(text for text, _ in pieces) == raw
    starts = [sum(len(text) for text, _ in pieces[:k]) for k in range(len(pieces))]
    return starts, [prob for _, prob in pieces]


def test_statements_the_model_was_unsure_of_are_left_out_but_never_the_first():
    pieces = [("<think>\nkitchen.</think>\n\n", 0.4), ('{"description": "', 0.99), ("In the kitchen.", 0.3),
              (" 2 red", 0.95), (" cups on the table.", 0.9), (" Person 3", 0.97), (" is", 0.5),
              (" sitting.", 0.96), (" The lights are on.", 0.8), ('"}', 0.99)]
    raw = "".join(text for text, _ in pieces)
    starts, probs = _tokens(raw, pieces)
    assert parse_output(confident_statements(raw, starts, probs, 0.0)).description == parse_output(raw).description
    kept = parse_output(confident_statements(raw, starts, probs, 0.6))
    assert kept.description == "In the kitchen. 2 red cups on the table. The lights are on."
    assert kept.entity_ids == ()  # person 3 went with its statement
    assert parse_output(confident_statements(raw, starts, probs, 0.99)).description == "In the kitchen."
    # the thinking's doubts do not count: only the description's tokens do
    assert "Person 3" in confident_statements(raw, starts, probs, 0.45)


@pytest.mark.parametrize("raw", ["no json at all", '<think>x</think>{"description": "A. B."}'])
def test_outputs_without_token_figures_or_a_description_come_back_unchanged(raw):
    assert confident_statements(raw, [], [], 0.9) == raw
    assert confident_statements(raw, [38], [0.1], 0.9) == raw  # the tokens start after the description does
