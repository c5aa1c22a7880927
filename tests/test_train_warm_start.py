"""The warm-start recipe: trains, checkpoints, and a killed run resumes exactly where it stopped."""

import json
import re
from pathlib import Path

import pytest
import torch

from taskmem_nodes.models.policy_spec import PolicySpec
from taskmem_nodes.models.tiny import is_complete
from taskmem_nodes.sim.world import World, WorldConfig, room_sentence
from taskmem_nodes.train.examples import clip_alone_examples, stream_examples
from taskmem_nodes.train.vision_probe import CellProbe, cell_classes, cell_labels
from taskmem_nodes.train.warm_start import ExampleSource, WarmStartConfig, learning_rate, train_warm_start

TINY = {"text_hidden": 64, "layers": 1, "heads": 2, "vision_depth": 1, "vision_hidden": 32, "batch_size": 2,
        "world": {"duration_s": 60.0}, "warmup_steps": 1, "checkpoint_every": 2, "single_clip_steps": 1,
        "cell_probe_weight": 1.0}


@pytest.mark.timeout(900)
def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = WarmStartConfig(out_dir=str(tmp_path / "whole"), steps=2, **TINY)  # 1 + 2 steps
    final = train_warm_start(whole)
    assert is_complete(final)  # a standard checkpoint directory
    assert PolicySpec.load(final).frames_per_clip == 2 and PolicySpec.load(final).allowed_token_ids
    assert (tmp_path / "whole" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    interrupted = WarmStartConfig(out_dir=str(tmp_path / "split"), steps=1, **TINY)
    train_warm_start(interrupted)  # stops after step 2, as a killed run would have left its last checkpoint
    resumed = WarmStartConfig(out_dir=str(tmp_path / "split"), steps=2, **TINY)
    train_warm_start(resumed)
    whole_log = json.loads((tmp_path / "whole" / "log.json").read_text())
    split_log = json.loads((tmp_path / "split" / "log.json").read_text())
    assert [e["step"] for e in split_log] == [1, 2, 3]
    assert [e["loss"] for e in split_log] == pytest.approx([e["loss"] for e in whole_log], rel=1e-5)
    assert [e["probe_loss"] for e in split_log] == pytest.approx([e["probe_loss"] for e in whole_log], rel=1e-5)
    assert all(e["probe_loss"] > 0 for e in whole_log)  # the cell probe trained alongside
    assert [e["stage"] for e in whole_log] == ["single clip", "window", "window"]


@pytest.mark.timeout(600)
def test_the_vision_stage_trains_the_tower_and_the_probe_alone(tmp_path):
    from safetensors.torch import load_file

    with pytest.raises(ValueError, match="cell_probe_weight"):
        WarmStartConfig(vision_steps=2)
    config = WarmStartConfig(out_dir=str(tmp_path / "v"), **{**TINY, "vision_steps": 2, "single_clip_steps": 1,
                                                              "steps": 1})
    assert [config.stage(step) for step in range(4)] == [("vision", 0), ("vision", 1), ("single clip", 2),
                                                         ("window", 0)]
    train_warm_start(config)
    log = json.loads((tmp_path / "v" / "log.json").read_text())
    assert [e["stage"] for e in log] == ["vision", "vision", "single clip", "window"]
    assert all(e["loss"] == 0 and e["probe_loss"] > 0 for e in log[:2])  # no memory text in the vision stage

    alone = WarmStartConfig(out_dir=str(tmp_path / "a"), **{**TINY, "vision_steps": 2, "single_clip_steps": 0,
                                                             "steps": 0})
    before, after = (load_file(str(path / "model.safetensors"))
                     for path in (tmp_path / "a" / "base", train_warm_start(alone)))
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(".visual." in name or name.startswith("visual.") for name in changed), sorted(changed)


def test_cell_labels_say_what_each_cell_shows_at_the_first_and_last_frame():
    world = World(WorldConfig(seed=7, duration_s=60.0))
    examples = list(stream_examples(world, frames_per_clip=2))
    classes = cell_classes(world.config)

    def cell(index: int, frame: int, head: int, row: int, column: int) -> str:
        labels = cell_labels(world, index, *examples[index].frame_span)
        assert labels.shape == (2, 3, 48)
        return list(classes.values())[head][int(labels[frame, head, row * 8 + column])]

    assert examples[1].frame_span == (10.0, 19.0)  # first and last sampled frame of clip 1
    assert "person 3 in orange enters the office" in examples[1].description
    slot = world.clips[1].end_state.people[3].slot
    column = {0: 1, 1: 3, 2: 6}[slot]  # the renderer's person slots, in cells
    assert cell(1, 1, 2, 4, column) == "3" and cell(1, 1, 0, 5, column) == "orange"
    assert cell(1, 0, 2, 4, column) == "-"  # not there yet at the first frame
    assert "a red mug appears on the office desk" in examples[0].description
    desk = [o for o in world.clips[0].end_state.objects if o.place == "office desk"]
    units = [(o.colour, o.kind) for o in sorted(desk, key=lambda o: (o.colour, o.kind)) for _ in range(o.count)]
    slot = units.index(("red", "mug"))  # the desk is the office's first place: cells 0-2 of row 2
    assert (cell(0, 1, 0, 2, slot), cell(0, 1, 1, 2, slot)) == ("red", "mug")
    assert cell(0, 0, 1, 2, slot) != "mug" or cell(0, 0, 0, 2, slot) != "red"
    assert cell(0, 1, 1, 0, 0) == "-"  # the wall holds no object
    with pytest.raises(ValueError, match="cell_px 32"):
        CellProbe(16, WorldConfig(cell_px=16))


def test_the_number_head_labels_units_by_their_number_and_learns_on_unit_cells_only():
    from taskmem_nodes.sim.render import GRID_COLUMNS, PLACE_COLUMNS, place_units

    world = World(WorldConfig(seed=555_001))
    example = next(e for e in stream_examples(world, frames_per_clip=2) if e.count_refs)
    labels = cell_labels(world, example.index, *example.frame_span, numbers="running")
    room = world.config.room_spec(world.clips[example.index].room)
    state = world.clips[example.index].state_at(example.frame_span[0])
    for column, place in zip(PLACE_COLUMNS, room.places):
        units = place_units(state, room.name, place)
        numbers = [int(labels[0, 3, 2 * GRID_COLUMNS + column + slot]) for slot in range(len(units))]
        assert numbers == [units[: k + 1].count(unit) for k, unit in enumerate(units)]
    assert int((labels[:, 3] > 0).sum()) == int((labels[:, 1] > 0).sum())  # a number exactly where a unit is

    probe = CellProbe(8, world.config, numbers=True)
    tokens = torch.randn(GRID_COLUMNS * 6, 8)
    shifted = probe.head.bias.detach().clone()
    shifted[-4] += 5.0  # the number head's "nothing there" logit, at both frames
    shifted[-4 - sum(probe.sizes)] += 5.0
    base = probe.loss(tokens, labels)
    with torch.no_grad():
        probe.head.bias.copy_(shifted)
    assert probe.loss(tokens, labels).item() > base.item()  # a unit cell read as "nothing" costs
    ones = CellProbe(8, world.config, numbers=True)  # reads every cell as number 1
    with torch.no_grad():
        ones.head.bias[[-3, -3 - sum(ones.sizes)]] += 50.0
    ones.loss(tokens, labels)
    assert ones.numbers_read == [int((labels[:, 3] == 1).sum()), int((labels[:, 3] > 0).sum())]
    assert 0 < ones.numbers_read[0] < ones.numbers_read[1]  # this clip has a second unit of a kind
    empty = labels.clone()
    empty[:, 3] = 0  # no unit anywhere: the number head adds nothing
    plain = CellProbe(8, world.config)  # the same probe without the number head
    rows = [f * sum(probe.sizes) + i for f in range(2) for i in range(sum(plain.sizes))]
    with torch.no_grad():
        plain.head.weight.copy_(probe.head.weight[rows])
        plain.head.bias.copy_(probe.head.bias[rows])
    assert probe.loss(tokens, empty).item() == pytest.approx(plain.loss(tokens, empty[:, :3]).item() * 3 / 4)


def test_single_clip_examples_show_the_clip_alone_with_everything_it_shows():
    world = World(WorldConfig(seed=7, duration_s=60.0))
    alone = list(clip_alone_examples(world, frames_per_clip=2))
    assert [e.description for e in alone] == [world.describe(i) for i in range(6)]
    assert all(len(e.request.video) == 2 and e.request.frame_times == (0.0, 9.0)  # the clip alone: 1st, last frame
               and "You have written no memories" in e.request.messages[-1]["content"][1]["text"] for e in alone)
    assert alone[3].target.endswith(json.dumps({"description": world.describe(3)}))


def test_a_fact_budget_keeps_the_room_and_a_random_choice_of_new_facts_shown_as_the_next_clips_memories():
    world = World(WorldConfig(seed=11, duration_s=300.0))
    full = list(stream_examples(world, frames_per_clip=2))
    budget = list(stream_examples(world, frames_per_clip=2, max_new_facts=2))

    def sentences(text: str) -> list[str]:
        return re.split(r"(?<=\.)\s+", text)

    for whole, chosen in zip(full, budget, strict=True):
        whole_s, chosen_s = sentences(whole.description), sentences(chosen.description)
        assert chosen_s[0] == whole_s[0] == room_sentence(world.clips[whole.index].room)  # the room, always
        assert len(chosen_s) == min(3, len(whole_s)) and set(chosen_s) <= set(whole_s)
    crowded = [k for k, e in enumerate(full) if len(sentences(e.description)) > 4]
    assert len(crowded) > 2, "the world should have clips with more new facts than the budget"
    assert len({sentences(budget[k].description)[1] for k in crowded}) > 1  # the choice is drawn, not fixed
    # the prompt shows the earlier clips' budgeted targets as their memories
    assert budget[1].description in budget[2].request.messages[-1]["content"][-1]["text"]
    again = list(stream_examples(world, frames_per_clip=2, max_new_facts=2))
    assert [e.description for e in again] == [e.description for e in budget]  # the same draw every time


def test_examples_are_addressed_deterministically_and_apart_from_benchmark_worlds(tmp_path):
    config = WarmStartConfig(**TINY)
    source = ExampleSource(config.world_config(), 2, seed=0)
    first = source[7]
    again = ExampleSource(config.world_config(), 2, seed=0)[7]
    assert first.description == again.description and first.index == again.index
    assert first.world.config.seed >= 1_000_000  # benchmark worlds are seed * 1000 + stream
    assert {source[k].index for k in range(6)} == set(range(6))  # one world's clips, each once
    assert learning_rate(WarmStartConfig(lr=1.0, warmup_steps=10, steps=110), 4) == pytest.approx(0.5)
    assert learning_rate(WarmStartConfig(lr=1.0, warmup_steps=10, steps=110), 110) == pytest.approx(0.0)
    staged = WarmStartConfig(lr=1.0, warmup_steps=10, cell_probe_weight=1.0, vision_steps=110, steps=110)
    assert [learning_rate(staged, step) for step in (4, 110, 114, 220)] == pytest.approx([0.5, 0.1, 0.5, 0.0])
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("steps: 3\nbogus: 1\n")
    with pytest.raises(ValueError, match="unknown settings"):
        WarmStartConfig.from_yaml(recipe)


def test_train_command_runs_a_recipe_file(tmp_path):
    import yaml
    from typer.testing import CliRunner

    from taskmem_nodes.cli import app

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "steps": 5}))
    result = CliRunner().invoke(app, ["train", "warm-start", "--config", str(recipe), "--steps", "1",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["steps"] == 1
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    bad = CliRunner().invoke(app, ["train", "phase-one", "--config", str(recipe)])
    assert bad.exit_code == 2 and "unknown settings" in bad.output


def test_untrained_baseline_has_the_recipes_sizes_and_the_warm_starts_first_weights(tmp_path):
    import yaml
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from taskmem_nodes.cli import app

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY, "steps": 1, "seed": 4}))
    result = CliRunner().invoke(app, ["model", "build-tiny", "--recipe", str(recipe), "--out", str(tmp_path / "u")])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "u" / "config.json").read_text())
    assert (config["text_config"]["hidden_size"], config["text_config"]["num_hidden_layers"]) == (64, 1)
    assert (config["vision_config"]["depth"], config["vision_config"]["hidden_size"]) == (1, 32)
    # the same weights a warm start from scratch begins with (its <out>/base, the recipe's seed)
    train_warm_start(WarmStartConfig.from_yaml(recipe, out_dir=str(tmp_path / "run"), steps=1, single_clip_steps=0))
    built = load_file(tmp_path / "u" / "model.safetensors")
    base = load_file(tmp_path / "run" / "base" / "model.safetensors")
    assert built.keys() == base.keys() and all(torch.equal(built[k], base[k]) for k in built)
    reseeded = CliRunner().invoke(app, ["model", "build-tiny", "--recipe", str(recipe), "--seed", "5",
                                        "--out", str(tmp_path / "u5")])
    assert reseeded.exit_code == 0, reseeded.output
    other = load_file(tmp_path / "u5" / "model.safetensors")
    assert not all(torch.equal(built[k], other[k]) for k in built)
    continued = CliRunner().invoke(app, ["model", "build-tiny", "--out", str(tmp_path / "c"), "--recipe",
                                         str(Path(__file__).parents[1] / "config/train/warm_start_rooms_tiny.yaml")])
    assert continued.exit_code == 2 and "no untrained model" in continued.output
    assert not (tmp_path / "c").exists()


@pytest.mark.timeout(600)
def test_inspect_counts_true_statements_by_kind(tmp_path, monkeypatch):
    from taskmem_nodes.train.inspect import group_counts, statement_kind, statement_truth
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    assert [statement_kind(s) for s in ("in the hall", "person 2 in red is walking", "2 red mugs on the desk")] == [
        "room", "person", "other"]
    assert group_counts("in the hall. 3 green boxes on the hall shelf. a red mug appears on the hall desk. "
                        "1 red mug on the hall desk.") == {"green box on the hall shelf": "3",
                                                           "red mug on the hall desk": "1"}
    one, two = group_counts("1 green box on the hall shelf."), group_counts("2 green boxes on the hall shelf.")
    assert one.keys() == two.keys() and (one | two) == {"green box on the hall shelf": "2"}
    final = train_warm_start(WarmStartConfig(out_dir=str(tmp_path / "w"), steps=1, **TINY))
    counts = statement_truth(RestrictedPolicy.load(final), 2, max_new_tokens=24)
    assert counts["entries"] + counts["unparsed"] == 2
    assert all(counts[f"{kind}_true"] <= counts[f"{kind}_said"] for kind in ("room", "person", "other"))
    assert counts["new_stated"] <= counts["new_facts"]
    sampled = statement_truth(RestrictedPolicy.load(final), 1, temperature=1.0, rollouts=3, max_new_tokens=24)
    assert sampled["entries"] + sampled["unparsed"] == 3

    from taskmem_nodes.train import inspect as inspect_module  # a policy that writes the targets themselves
    policy, shown, real_examples = RestrictedPolicy.load(final), {}, inspect_module.stream_examples

    def remembered(*args, **kwargs):
        for example in real_examples(*args, **kwargs):
            shown[id(example.request)] = example
            yield example

    def write_target(policy, request, *_):
        text = shown[id(request)].target.removeprefix("<think>\n")
        return [torch.tensor(policy.tokenizer.encode(text, add_special_tokens=False))]

    monkeypatch.setattr(inspect_module, "stream_examples", remembered)
    monkeypatch.setattr(inspect_module, "sample_group", write_target)
    perfect = statement_truth(policy, 3)
    assert perfect["entries"] == perfect["scan_right"] == perfect["written_right"] == 3
    assert perfect["count_wrong"] == perfect["groups_missed"] == 0
    assert perfect["count_right"] == sum(len(group_counts(e.description)) for e in shown.values())
    assert perfect["new_stated"] <= perfect["new_facts"] and perfect["other_true"] == perfect["other_said"]


@pytest.mark.timeout(600)
def test_counting_tallies_every_copied_word_of_the_memory(tmp_path, monkeypatch):
    from taskmem_nodes.train.counting import PERSON_COLOUR, copied_words, written_right
    from taskmem_nodes.train.inspect import HELD_OUT_SEEDS
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    final = train_warm_start(WarmStartConfig(out_dir=str(tmp_path / "w"), steps=1, **TINY))
    policy = RestrictedPolicy.load(final)
    rows: dict[str, int] = {}  # row -> words, read off the targets of the first 6 clips of each held-out world
    for seed in HELD_OUT_SEEDS:
        examples = stream_examples(World(WorldConfig(seed=seed)), frames_per_clip=policy.frames_per_clip)
        for _, example in zip(range(6), examples):
            for row, start, end in copied_words(example):
                word = example.target[start:end]
                if row == PERSON_COLOUR:
                    assert word.isalpha() and example.target[start - 4:start] == " in "
                else:
                    assert word == row.removeprefix("count of ")
                rows[row] = rows.get(row, 0) + 1
    assert {"count of 1", "count of 2", PERSON_COLOUR} <= set(rows)  # groups of more than one unit, and people
    tally = written_right(policy, clips_per_world=6)
    assert {row: total for row, (_, total) in tally.items()} == rows
    assert all(0 <= right <= total for right, total in tally.values())

    def teacher(sequence):  # a policy whose most likely token is always the target's
        return torch.nn.functional.one_hot(sequence.labels, len(policy.allowed)).float()

    monkeypatch.setattr(policy, "target_logits", teacher)
    assert all(right == total for right, total in written_right(policy, clips_per_world=6).values())

    def off_by_one(sequence):  # ... and one that always picks the next allowed token instead
        return torch.nn.functional.one_hot((sequence.labels + 1) % len(policy.allowed), len(policy.allowed)).float()

    monkeypatch.setattr(policy, "target_logits", off_by_one)
    assert all(right == 0 for right, _ in written_right(policy, clips_per_world=6).values())

    from typer.testing import CliRunner

    from taskmem_nodes.cli import app

    shown = CliRunner().invoke(app, ["train", "counting", "--checkpoint", str(final), "--clips-per-world", "6",
                                     "--numbered", "running"])
    assert shown.exit_code == 0, shown.output
    assert "count of 1" in shown.output and PERSON_COLOUR in shown.output
    refused = CliRunner().invoke(app, ["train", "counting", "--checkpoint", str(final), "--numbered", "yes"])
    assert refused.exit_code == 2 and "'running', 'size'" in refused.output


@pytest.mark.parametrize("recipe", sorted((Path(__file__).parents[1] / "config" / "train").glob("*.yaml")),
                         ids=lambda path: path.name)
def test_every_shipped_training_recipe_loads(recipe):
    from taskmem_nodes.train.gspo import PhaseOneConfig
    from taskmem_nodes.train.phase_two import PhaseTwoConfig

    kind = {"warm_start": WarmStartConfig, "phase_one": PhaseOneConfig, "phase_two": PhaseTwoConfig}
    config = kind[next(k for k in kind if recipe.name.startswith(k))].from_yaml(recipe)
    assert config.out_dir.startswith("runs/")
