"""The memorizer core with the shipped default model on a simulated stream: the confidence floor."""

from __future__ import annotations

import pytest

from taskmem_nodes.memorizer import Memorizer, backend_settings, load_backend, memorizer_parameters
from taskmem_nodes.models.packed import ensure_default_model
from taskmem_nodes.policy import parse_output
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import stream_clips
from taskmem_nodes.train.fact_judge import statements


def test_statements_below_the_confidence_floor_are_left_out_and_kept_in_the_raw_output():
    backend = load_backend("transformers", **backend_settings({**memorizer_parameters(),
                                                               "model_path": str(ensure_default_model())}))
    backend.load()
    clips = stream_clips(World(WorldConfig(seed=557_010, duration_s=40.0)), 1.0)
    floored = Memorizer(backend, min_statement_confidence=0.9)
    dropped = 0
    for clip in clips:
        kept = floored.memorize(clip)
        assert isinstance(kept, MemoryRecord)
        raw = statements(parse_output(kept.raw_output).description)  # what the model wrote, all of it
        said = statements(kept.text)
        assert said[0] == raw[0] and set(said) <= set(raw)
        dropped += len(raw) - len(said)
    assert dropped > 0  # the tiny model is rarely this sure of a statement
    with pytest.raises(ValueError, match="min_statement_confidence"):
        Memorizer(backend, min_statement_confidence=1.5)
    backend.unload()


def test_the_benchmark_gives_each_policy_system_its_own_confidence_floor(tiny_checkpoint):
    from taskmem_nodes.bench.runner import SystemFactory, memorizer_settings

    settings = memorizer_settings(str(tiny_checkpoint), device="cpu", max_thinking_tokens=8, max_description_tokens=8)
    assert settings["min_statement_confidence"] == memorizer_parameters()["min_statement_confidence"]
    factory = SystemFactory({}, settings, {"floored": {**settings, "min_statement_confidence": 0.7}})
    assert factory.make("policy:floored")._memorizer.min_statement_confidence == 0.7
    assert factory.make("policy")._memorizer.min_statement_confidence == settings["min_statement_confidence"]
