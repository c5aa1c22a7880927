"""Phase One groundwork: training examples from the simulated world, the world's vocabulary, and a Qwen3-VL
policy trained with logits over that vocabulary only (identical to the full model's, decoding masked to it)."""

import pytest
import torch

from taskmem_nodes.memorizer import Memorizer
from taskmem_nodes.models.packed import ensure_default_model
from taskmem_nodes.models.policy_spec import POLICY_FILE, PolicySpec
from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer
from taskmem_nodes.models.transformers_backend import TransformersBackend, TransformersBackendConfig
from taskmem_nodes.policy import parse_output
from taskmem_nodes.sim.world import World, WorldConfig, object_phrase, room_sentence
from taskmem_nodes.train.examples import (
    own_reading_target,
    read_right,
    stream_clips,
    stream_examples,
    streamed_example,
    target_description,
    target_output,
    thinking_for,
)
from taskmem_nodes.train.fact_judge import statements
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.vision_probe import cell_classes, cell_labels
from taskmem_nodes.train.vocab import training_vocabulary

SHORT = WorldConfig(seed=1, duration_s=60.0)

def test_examples_follow_the_policy_io():
    world = World(SHORT)
    examples = list(stream_examples(world, sample_fps=0.5))
    assert [e.index for e in examples] == list(range(6))
    for example in examples:
        clips_in_window = min(example.index + 1, 5)
        assert example.request.video.shape[0] == clips_in_window * 5  # 0.5 fps x 10 s per clip
        parsed = parse_output(example.target)
        assert parsed.description == example.description == target_description(world, example.index,
                                                                              example.frame_span)
        assert set(statements(example.description)) <= set(statements(world.describe_new(example.index)))
        room = world.clips[example.index].room
        new_room = room not in {world.clips[i].room for i in range(max(0, example.index - 4), example.index)}
        assert parsed.thinking == thinking_for(world, example.index, example.frame_span, new_room=new_room)
        assert parsed.thinking.startswith(f"The {room}{', new' if new_room else ''}. first: ")
    assert any(", new. first:" in e.target for e in examples[1:]) and ", new." in examples[0].target
    prompt = examples[5].request.messages[1]["content"][1]["text"]
    for earlier in range(1, 5):  # the memories of the four preceding clips, not of clip 0
        assert world.describe_new(earlier) in prompt
    assert prompt.count("\n[") == 4 and "[0s-10s]" in prompt  # window of 50 s: clips 1-4 at 0-40 s
    own = [f"my memory of clip {i}." for i in range(6)]
    on_policy = list(stream_examples(world, sample_fps=0.5, preceding=own))[5]
    assert "my memory of clip 4." in on_policy.request.messages[1]["content"][1]["text"]


def test_an_on_policy_target_states_what_the_policys_own_memories_left_out():
    """With the policy's own memories shown, the target is what is new to them (DAgger's expert, as the judge
    counts new): the clip's new content plus every true fact the frames show that those memories miss."""
    world = World(SHORT)
    clips = stream_clips(world, 0.5)
    truth = [world.describe_new(i) for i in range(len(clips))]
    index = next(i for i in range(1, len(clips)) if set(statements(world.describe(i)))
                 - set(statements(world.describe_new(i))))  # a clip with old, still true states
    as_truth = streamed_example(world, clips, index, truth, own_memories=True)
    assert as_truth.target == streamed_example(world, clips, index, truth).target  # nothing was missed
    room_only = [statements(t)[0] + "." for t in truth]  # memories that stated the room and nothing else
    missed = streamed_example(world, clips, index, room_only, own_memories=True)
    old_states = set(statements(missed.description)) - set(statements(as_truth.description))
    assert old_states and old_states <= set(statements(world.describe(index)))
    assert set(statements(as_truth.description)) <= set(statements(missed.description))
    assert parse_output(missed.target).description == missed.description


def test_an_untold_target_restates_nothing_the_policys_memories_already_speak_of():
    """`untold_only`: a group the policy's memories miscounted is not restated (the policy would learn to copy
    what its memory mentions); a group they never mention is, as in the plain on-policy target."""
    world = World(SHORT)
    clips = stream_clips(world, 0.5)
    index = next(i for i in range(1, len(clips)) if any(
        f.key[0] == "object" and f not in world.new_facts(i) for f in world.clips[i].facts))
    old_groups = [f for f in world.clips[index].facts if f.key[0] == "object" and f not in world.new_facts(index)]

    def miscounted(i: int) -> str:  # the room, then every group the clip shows with one too many
        return " ".join([room_sentence(world.clips[i].room)] + [
            f"{object_phrase(colour, kind, count + 1)} on the {place}."
            for _, colour, kind, place, count in (f.key for f in world.clips[i].facts if f.key[0] == "object")])

    misread = [miscounted(i) for i in range(len(clips))]
    unstated = set(statements(streamed_example(world, clips, index, misread, own_memories=True).description))
    untold = set(statements(streamed_example(world, clips, index, misread, own_memories=True,
                                             untold_only=True).description))
    restated = {statements(f.text)[0] for f in old_groups}
    assert restated <= unstated and not restated & untold
    assert set(statements(world.describe_new(index))) <= untold
    room_only = [room_sentence(world.clips[i].room) for i in range(len(clips))]
    assert (streamed_example(world, clips, index, room_only, own_memories=True, untold_only=True).target
            == streamed_example(world, clips, index, room_only, own_memories=True).target)


def test_an_own_reading_target_states_only_what_the_policys_scan_read_right():
    """After a scan that miscounts a group and misreads a shirt, the target keeps that scan as its thinking and
    states what is new and read right, neither the miscounted group nor the misread person."""
    world = World(SHORT)
    clips = stream_clips(world, 0.5)
    example = next(e for e in stream_examples(world, sample_fps=0.5) if
                   any(f.key[0] == "object" and f.key[4] > 1 for f in world.new_facts(e.index)) and
                   any(f.key[0] == "person" for f in world.new_facts(e.index)))
    truth = parse_output(example.target).thinking
    room = world.clips[example.index].room
    group = next(f for f in world.new_facts(example.index) if f.key[0] == "object" and f.key[4] > 1)
    person = next(f for f in world.new_facts(example.index) if f.key[0] == "person")
    assert read_right(truth, room, group) and read_right(truth, room, person)
    unit = f"{group.key[1]} {group.key[2]}"
    misread = truth.replace(f"{unit}, {unit}", unit, 1).replace(f" {person.key[1]} {person.key[2]} ",
                                                              f" {person.key[1]} plaid ")
    assert not read_right(misread, room, group) and not read_right(misread, room, person)
    memories = [world.describe_new(i) for i in range(example.index)]
    _, target = own_reading_target(world, clips, example.index, memories, misread)
    assert parse_output(target).thinking == misread
    stated = set(statements(parse_output(target).description))
    assert stated == set(statements(example.description)) - set(statements(group.text + " " + person.text))


def test_vocabulary_covers_unseen_worlds():
    tokenizer = build_qwen_tokenizer()
    allowed = set(training_vocabulary(tokenizer, WorldConfig(), worlds=5))
    assert 60 < len(allowed) < 400
    for seed in range(30, 36):
        world = World(WorldConfig(seed=seed))
        for index in range(len(world.clips)):
            span = (world.clips[index].start, world.clips[index].end - 0.5)
            for new_room in (False, True):
                text = target_output(world.describe_new(index), thinking_for(world, index, span, new_room))
                assert set(tokenizer.encode(text + "<|im_end|>", add_special_tokens=False)) <= allowed

@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    allowed = training_vocabulary(build_qwen_tokenizer(), WorldConfig(), worlds=2)
    return RestrictedPolicy.load(tiny_checkpoint, allowed, frames_per_clip=2)

def test_restricted_logits_equal_the_full_models(policy):
    example = list(stream_examples(World(SHORT), sample_fps=0.2))[2]
    sequence = policy.encode(example.request, example.target)
    with torch.no_grad():
        full = policy.model(**sequence.inputs).logits[0, sequence.prompt_tokens - 1: -1][:, policy.allowed]
        assert torch.allclose(full, policy.target_logits(sequence), atol=1e-5)
    with pytest.raises(ValueError, match="outside the allowed ids"):
        policy.encode(example.request, "<think>\nok\n</think>\n\n{\"description\": \"a zebra\"}")

def test_training_lowers_the_loss_and_the_checkpoint_decodes_only_allowed_ids(policy, tmp_path):
    example = list(stream_examples(World(SHORT), sample_fps=1.0, frames_per_clip=2))[1]
    assert example.request.video.shape[0] == 4  # two clips, first and last frame of each
    sequence = policy.encode(example.request, example.target)
    embedding_before = policy.embedding.weight.detach().clone()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = policy.loss(sequence)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        policy.write_back()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    changed = (policy.embedding.weight != embedding_before).any(dim=1).nonzero().flatten()
    assert set(changed.tolist()) <= set(policy.allowed.tolist()) and len(changed) > 0  # only the allowed rows
    policy.save(tmp_path / "trained")
    reloaded = RestrictedPolicy.load(tmp_path / "trained")  # the saved full matrix holds the trained rows
    with torch.no_grad():
        full = reloaded.model(**sequence.inputs).logits[0, sequence.prompt_tokens - 1: -1][:, policy.allowed]
        assert torch.allclose(full, policy.target_logits(sequence), atol=1e-4)
    backend = TransformersBackend(TransformersBackendConfig(str(tmp_path / "trained"), max_thinking_tokens=16,
                                                            max_description_tokens=40))
    backend.load()
    assert backend.frames_per_clip == 2 and Memorizer(backend).frames_per_clip == 2  # from the policy spec
    result = backend.generate(example.request)
    tokens = policy.tokenizer.encode(result.text.removeprefix("<think>\n"), add_special_tokens=False)
    assert set(tokens) <= set(policy.allowed.tolist())


def test_policy_spec_round_trip_and_errors(tmp_path):
    assert PolicySpec.load(tmp_path) == PolicySpec()  # no spec: no restriction, all frames
    PolicySpec((5, 3, 9), 2).save(tmp_path)
    assert PolicySpec.load(tmp_path) == PolicySpec((5, 3, 9), 2)
    for bad in ("[1, 2]", '{"frames_per_clip": -1}', '{"allowed_token_ids": ["x"]}', "{"):
        (tmp_path / POLICY_FILE).write_text(bad)
        with pytest.raises(ValueError, match=r"policy spec|must not be negative"):
            PolicySpec.load(tmp_path)


def test_thinking_scans_the_first_frame_and_what_changed_by_the_last():
    world = World(WorldConfig(seed=5))
    examples = list(stream_examples(world, frames_per_clip=2, tracker=False))
    assert examples[0].target.startswith(
        "<think>\nThe kitchen, new. first: table: purple bottle, yellow book, yellow book. "
        "counter: green ball, green ball. people: left 2 red walking. last: same.\n</think>")
    assert "first: table: purple bottle, yellow book, yellow book. counter: green ball, green ball. people: left 2 " \
           "red walking. last: people: none." in examples[1].target
    assert "person 2 in red leaves the kitchen." in examples[1].description
    # person 5 enters and leaves between the two frames shown: nothing tells of it, so the target leaves it out
    assert "person 5 in black enters the kitchen." in world.describe_new(2)
    assert examples[2].description == "in the kitchen." and "last: same." in examples[2].target
    assert examples[2].target.startswith("<think>\nThe kitchen. first:")  # its preceding memories are about it

    refs = [(examples[0].target[a:b], cell) for a, b, cell in examples[0].cell_refs]
    assert refs == [("purple bottle", 16), ("yellow book", 17), ("yellow book", 18), ("green ball", 21),
                    ("green ball", 22), ("left 2 red walking", 33)]  # row 2: the places' units; row 4: person slot 0
    labels = cell_labels(world, 0, *examples[0].frame_span)  # the cell probe's labels agree on every cell named
    colours, kinds, people = (cell_classes(world.config)[head] for head in ("colour", "kind", "person"))
    for text, cell in refs[:5]:
        assert f"{colours[labels[0, 0, cell]]} {kinds[labels[0, 1, cell]]}" == text
    assert people[labels[0, 2, 33]] == "2"
    # with the tracker's ids in the prompt the id is copied from there: the cell keeps the side, shirt and doing
    tracked = next(stream_examples(world, frames_per_clip=2))
    assert tracked.target == examples[0].target and not examples[0].id_refs
    assert [(tracked.target[a:b], cell) for a, b, cell in tracked.cell_refs][-2:] == [("left", 33), ("red walking", 33)]
    thinking_id, description_id = tracked.id_refs  # "left 2 red" in the thinking, "person 2 in red" in the JSON
    assert tracked.target[thinking_id[0] - 5: thinking_id[1]] == "left 2" and thinking_id[2] == "person_2"
    assert tracked.target[description_id[0] - 7: description_id[1] + 7] == "person 2 in red"


def test_attention_guide_pairs_scanned_tokens_with_their_cells_vision_tokens(tmp_path):
    from taskmem_nodes.models.tiny import build_tiny_checkpoint
    from taskmem_nodes.train.warm_start import WarmStartConfig, _AttentionGuide

    full_frames = build_tiny_checkpoint(tmp_path / "tiny", text_hidden=64, layers=1, heads=2, vision_depth=1,
                                        vision_hidden=32, video_max_pixels=256 * 192)  # one vision token per cell
    allowed = training_vocabulary(build_qwen_tokenizer(), WorldConfig(), worlds=2)
    policy = RestrictedPolicy.load(full_frames, allowed, frames_per_clip=2)
    example = list(stream_examples(World(WorldConfig(seed=5)), frames_per_clip=2))[3]  # a 4-clip window
    sequence = policy.encode(example.request, example.target)
    guide = _AttentionGuide(policy, WarmStartConfig(attention_guide_weight=1.0))
    queries, keys, owners = guide.pairs(example, sequence)
    ids = sequence.inputs["input_ids"][0]
    video = (ids == policy.model.config.video_token_id).nonzero().flatten()
    cells = len(queries) - 2  # the scanned items' tokens; then the id "1" in the thinking and in the description
    assert len(video) == 4 * 48 and set(keys[owners < cells].tolist()) <= set(video[-48:].tolist())  # newest clip
    predicted = policy.tokenizer.decode(ids[queries[:cells] + 1])  # the tokens those positions predict
    assert predicted.replace(" ", "") == "".join(example.target[a:b] for a, b, _ in example.cell_refs).replace(" ", "")
    # the copied ids: "left 1 purple" looks at the tracker line's "<person_1>", the description at both
    tracker_digit, thinking_digit = int(keys[owners == cells][0]), int(queries[cells]) + 1
    assert policy.tokenizer.decode(ids[tracker_digit - 2: tracker_digit + 1]) == "person_1"
    assert [policy.tokenizer.decode(ids[q + 1]) for q in queries[cells:]] == ["1", "1"]
    assert keys[owners == cells + 1].tolist() == [tracker_digit, thinking_digit]
    assert (keys[:2] - video[-48]).tolist() == [example.cell_refs[0][2]] * 2  # "purple ball" -> its cell, twice


def test_count_refs_tie_each_object_count_to_the_units_the_scan_lists():
    world = World(WorldConfig(seed=555_001))
    examples = list(stream_examples(world, frames_per_clip=2))[:30]
    changed_place = 0
    for example in examples:
        objects = [s for s in statements(example.description) if s[0].isdigit()]
        assert len(example.count_refs) == len(objects)  # every object statement is counted from the scan
        for (start, end, spans), sentence in zip(example.count_refs, objects, strict=True):
            count = example.target[start:end]
            label, *units = (example.target[a:b] for a, b in spans)
            assert int(count) == len(units) and len(set(units)) == 1  # "2 green boxes": "green box", twice
            assert sentence.startswith(f"{count} {units[0]}") and sentence.rstrip(".").endswith(f" {label}")
            changed_place += spans[0][0] > example.target.index(" last:")
    assert changed_place  # a place that changed is counted as the last frame shows it


def test_counting_guide_asks_for_an_even_split_over_the_place_and_its_units(tmp_path):
    from taskmem_nodes.models.tiny import build_tiny_checkpoint
    from taskmem_nodes.train.warm_start import WarmStartConfig, _AttentionGuide

    checkpoint = build_tiny_checkpoint(tmp_path / "tiny", text_hidden=64, layers=1, heads=2, vision_depth=1,
                                       vision_hidden=32)
    allowed = training_vocabulary(build_qwen_tokenizer(), WorldConfig(), worlds=2)
    policy = RestrictedPolicy.load(checkpoint, allowed, frames_per_clip=2)
    example = next(e for e in stream_examples(World(WorldConfig(seed=555_001)), frames_per_clip=2)
                   if any(len(spans) == 4 for _, _, spans in e.count_refs))  # one statement counts 3 units
    sequence = policy.encode(example.request, example.target)
    guide = _AttentionGuide(policy, WarmStartConfig(count_guide_weight=1.0))
    pairs = guide.count_pairs(example, sequence)
    ids = sequence.inputs["input_ids"][0]
    for (query, keys), (start, end, spans) in zip(pairs, example.count_refs, strict=True):
        assert policy.tokenizer.decode(ids[query + 1]) == example.target[start:end]  # the count it predicts
        label, *units = (policy.tokenizer.decode(ids[k]).strip() for k in keys)
        assert example.target[spans[0][0]:spans[0][1]] == label and len(units) == len(spans) - 1
        assert all(example.target[a:b].endswith(unit) for (a, b), unit in zip(spans[1:], units, strict=True))
    length = ids.shape[0]
    even = torch.zeros(2, length, length)
    for query, keys in pairs:
        even[:, query, keys] = 1.0 / len(keys)
    expected = sum(torch.log(torch.tensor(float(len(keys)))) for _, keys in pairs) / len(pairs)
    assert guide.count_loss(example, sequence, even).item() == pytest.approx(expected.item(), rel=1e-5)
    on_label = torch.zeros(2, length, length)
    for query, keys in pairs:
        on_label[:, query, keys[0]] = 1.0  # all on the place: the units are not counted
    assert guide.count_loss(example, sequence, on_label).item() > expected.item() + 3


def test_a_numbered_scan_ends_each_group_with_its_count_and_the_pointing_guide_copies_it(tmp_path):
    """`numbered`: repeated units carry their number outside their cell's span; an object statement's count is
    the number of the last unit of its group (1 when it has none), and the "point" counting guide asks the count's
    position to attend to that token; what follows each unit's name attends to the unit before it."""
    from taskmem_nodes.models.tiny import build_tiny_checkpoint
    from taskmem_nodes.train.warm_start import WarmStartConfig, _AttentionGuide, target_tokens

    examples = list(stream_examples(World(WorldConfig(seed=555_001)), frames_per_clip=2, numbered="running"))[:30]
    plain = list(stream_examples(World(WorldConfig(seed=555_001)), frames_per_clip=2))[:30]
    assert [e.description for e in examples] == [e.description for e in plain]  # the memories do not change
    groups = 0
    for example in examples:
        assert all(not example.target[a:b][-1].isdigit() for a, b, _ in example.cell_refs)  # a number is no cell's
        for start, end, spans in example.count_refs:
            last = example.target[spans[-1][0]:spans[-1][1]]
            number = last.rsplit(" ", 1)[-1] if last[-1].isdigit() else "1"
            assert example.target[start:end] == number
            groups += number != "1"
    assert groups  # some groups hold more than one unit

    checkpoint = build_tiny_checkpoint(tmp_path / "tiny", text_hidden=64, layers=1, heads=2, vision_depth=1,
                                       vision_hidden=32)
    allowed = training_vocabulary(build_qwen_tokenizer(), WorldConfig(), worlds=2)
    policy = RestrictedPolicy.load(checkpoint, allowed, frames_per_clip=2)
    example = next(e for e in examples if any(len(spans) == 4 for _, _, spans in e.count_refs))
    sequence = policy.encode(example.request, example.target)
    guide = _AttentionGuide(policy, WarmStartConfig(count_guide_weight=1.0, count_guide="point",
                                                    numbered_units="running"))
    pairs = guide.count_pairs(example, sequence)
    ids = sequence.inputs["input_ids"][0]
    pointed = torch.zeros(2, ids.shape[0], ids.shape[0])
    for query, keys in pairs:
        counted = policy.tokenizer.decode(ids[query + 1])
        assert counted == "1" or policy.tokenizer.decode(ids[keys[-1]]) == counted  # a copy of the group's number
        pointed[:, query, keys[-1]] = 1.0
    assert guide.count_loss(example, sequence, pointed).item() == pytest.approx(0.0, abs=1e-5)
    spread = torch.zeros_like(pointed)
    for query, keys in pairs:
        spread[:, query, keys] = 1.0 / len(keys)
    assert guide.count_loss(example, sequence, spread).item() > 0.5
    # the successor guide: what follows a unit's name looks at the unit before it
    assert all(example.target[a:b] in (",", ".") or example.target[a:b].strip().isdigit()
               for a, b, _, _ in example.successor_refs) and example.successor_refs
    tokens_in = target_tokens(policy, example)
    queries, keys, _ = guide.pairs(example, sequence)
    cells = sum(len(tokens_in(a, b)) for a, b, _ in example.cell_refs)
    successors = [(a, b, c, d) for a, b, c, d in example.successor_refs for _ in tokens_in(a, b)]
    end = cells + len(successors)
    for (a, b, c, d), query, key in zip(successors, queries[cells:end], keys[cells:end], strict=True):
        assert policy.tokenizer.decode(ids[query + 1]) in example.target[a:b]
        assert example.target[c:d].endswith(policy.tokenizer.decode(ids[key]).strip())
    assert not next(stream_examples(World(WorldConfig(seed=555_001)), frames_per_clip=2)).successor_refs
    with pytest.raises(ValueError, match="count_guide"):
        WarmStartConfig(count_guide="even")


def test_count_digits_can_weigh_more_in_the_text_loss():
    from taskmem_nodes.train.warm_start import count_positions, text_loss

    policy = RestrictedPolicy.load(ensure_default_model())  # a real tokenizer and vocabulary; the weights do not matter
    example = next(e for e in stream_examples(World(WorldConfig(seed=555_001)), frames_per_clip=2)
                   if len(e.count_refs) >= 2)
    sequence = policy.encode(example.request, example.target)
    weights = count_positions(policy, example, 10.0)
    digits = [policy.tokenizer.decode([int(policy.allowed[sequence.labels[j]])]) for j in weights]
    assert digits == [example.target[a:b] for a, b, _ in example.count_refs]
    assert count_positions(policy, example, 1.0) == {}
    with torch.no_grad():
        logits = policy.target_logits(sequence)
    each = torch.nn.functional.cross_entropy(logits, sequence.labels, reduction="none")
    assert text_loss(logits, sequence, {}).item() == pytest.approx(each.mean().item())
    n, on_digits = len(each), each[list(weights)].sum()
    expected = (each.sum() + 9 * on_digits) / (n + 9 * len(weights))
    assert text_loss(logits, sequence, weights).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("numbering", ["running", "size"])
def test_numbers_read_from_cells_point_each_number_at_its_units_cell_whose_label_is_that_number(tmp_path, numbering):
    """`number_guide: cell`: what follows a unit's name attends to the vision token of that unit's own cell, and
    the cell probe's number head labels that cell with the number the scan writes there (1 when none)."""
    from taskmem_nodes.models.tiny import build_tiny_checkpoint
    from taskmem_nodes.train.examples import unit_numbers
    from taskmem_nodes.train.vision_probe import NUMBER_HEAD
    from taskmem_nodes.train.warm_start import WarmStartConfig, _AttentionGuide, target_tokens

    with pytest.raises(ValueError, match="number_guide"):
        WarmStartConfig(number_guide="previous")
    with pytest.raises(ValueError, match="numbered_units"):
        WarmStartConfig(numbered_units="twice")
    assert not WarmStartConfig(number_guide="cell").numbers_from_cells  # only with a numbered scan
    config = WarmStartConfig(numbered_units=numbering, number_guide="cell")
    assert config.numbers_from_cells
    world = World(WorldConfig(seed=555_001))
    examples = list(stream_examples(world, frames_per_clip=2, numbered=numbering))[:30]
    example = next(e for e in examples if any(len(spans) >= 3 for _, _, spans in e.count_refs))
    checkpoint = build_tiny_checkpoint(tmp_path / "tiny", text_hidden=64, layers=1, heads=2, vision_depth=1,
                                       vision_hidden=32)
    allowed = training_vocabulary(build_qwen_tokenizer(), WorldConfig(), worlds=2)
    policy = RestrictedPolicy.load(checkpoint, allowed, frames_per_clip=2)
    sequence = policy.encode(example.request, example.target)
    guide = _AttentionGuide(policy, config)
    _, keys, _ = guide.pairs(example, sequence)
    ids = sequence.inputs["input_ids"][0]
    video = (ids == policy.model.config.video_token_id).nonzero().flatten()
    newest = int(video[-policy.tokens_per_group(sequence):][0])
    tokens_in = target_tokens(policy, example)
    cells = sum(len(tokens_in(a, b)) for a, b, _ in example.cell_refs)
    successors = [(a, b) for a, b, _, _ in example.successor_refs for _ in tokens_in(a, b)]
    assert successors
    cell_of = {end: cell for _, end, cell in example.cell_refs}
    numbers = cell_labels(world, example.index, *example.frame_span, numbers=numbering)[:, -1]  # (frames, cells)
    assert cell_labels(world, example.index, *example.frame_span).shape[1] + 1 == \
        cell_labels(world, example.index, *example.frame_span, numbers=numbering).shape[1]
    last = example.target.index(" last:")
    for (a, b), key in zip(successors, keys[cells: cells + len(successors)], strict=True):
        cell = int(key) - newest
        assert cell == cell_of[a]  # the unit's own cell, not the unit before it
        written = example.target[a:b].strip()
        frame = int(a > last)  # a number of the last frame's scan is read at the last frame
        assert int(numbers[frame, cell]) == (int(written) if written.isdigit() else 1)
    assert cell_classes(WorldConfig(), numbers=True)[NUMBER_HEAD] == ["-", "1", "2", "3"]
    units = ["red ball", "red ball", "red ball", "blue box"]
    expected = {"running": ["", " 2", " 3", ""], "size": [" 3", " 3", " 3", ""]}
    assert unit_numbers(units, numbering) == expected[numbering]
    with pytest.raises(ValueError, match="numbered 'running' or 'size'"):
        unit_numbers(units, "twice")
