"""The warm-start recipe: trains, checkpoints, and a killed run resumes exactly where it stopped."""

import json

import pytest

from taskmem_nodes.models.policy_spec import PolicySpec
from taskmem_nodes.models.tiny import is_complete
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import stream_examples
from taskmem_nodes.train.vision_probe import label_names, scene_labels
from taskmem_nodes.train.warm_start import ExampleSource, WarmStartConfig, learning_rate, train_warm_start

TINY = {"text_hidden": 64, "layers": 1, "heads": 2, "vision_depth": 1, "vision_hidden": 32, "batch_size": 2,
        "world": {"duration_s": 60.0, "cell_px": 16}, "warmup_steps": 1, "checkpoint_every": 2}


@pytest.mark.timeout(900)
def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    whole = WarmStartConfig(out_dir=str(tmp_path / "whole"), steps=3, **TINY)
    final = train_warm_start(whole)
    assert is_complete(final)  # a standard checkpoint directory
    assert PolicySpec.load(final).frames_per_clip == 2 and PolicySpec.load(final).allowed_token_ids
    assert (tmp_path / "whole" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    interrupted = WarmStartConfig(out_dir=str(tmp_path / "split"), steps=2, **TINY)
    train_warm_start(interrupted)  # stops after step 2, as a killed run would have left its last checkpoint
    resumed = WarmStartConfig(out_dir=str(tmp_path / "split"), steps=3, **TINY)
    train_warm_start(resumed)
    whole_log = json.loads((tmp_path / "whole" / "log.json").read_text())
    split_log = json.loads((tmp_path / "split" / "log.json").read_text())
    assert [e["step"] for e in split_log] == [1, 2, 3]
    assert [e["loss"] for e in split_log] == pytest.approx([e["loss"] for e in whole_log], rel=1e-5)
    assert [e["probe_loss"] for e in split_log] == pytest.approx([e["probe_loss"] for e in whole_log], rel=1e-5)
    assert all(e["probe_loss"] > 0 for e in whole_log)  # the vision probe trained alongside


def test_vision_probe_labels_say_what_the_first_and_last_frame_show():
    world = World(WorldConfig(seed=7, duration_s=60.0))
    names = label_names(world.config)
    examples = list(stream_examples(world, frames_per_clip=2))

    def shown(index: int) -> set[str]:
        labels = scene_labels(world, index, *examples[index].frame_span, names)
        return {names[i] for i in labels.nonzero().flatten().tolist()}

    assert examples[1].frame_span == (10.0, 19.0)  # first and last sampled frame of clip 1
    assert "person 3 in orange enters the office" in examples[1].description
    assert {"last: person 3", "last: person 3 in orange", "last: person 3 walking"} <= shown(1)
    assert "first: person 3" not in shown(1)
    assert "a red mug appears on the office desk" in examples[0].description
    assert "last: red mug" in shown(0) and "first: red mug" not in shown(0)
    assert len(names) == len(set(names)) == 184


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
