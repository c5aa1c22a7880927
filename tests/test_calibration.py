"""The memorizer's calibration: statement confidences scored against the simulated world's ground truth."""

from __future__ import annotations

import pytest

from taskmem_nodes.memorizer import backend_settings, load_backend, memorizer_parameters
from taskmem_nodes.models.packed import ensure_default_model
from taskmem_nodes.train.calibration import ScoredStatement, kept_above, score_statements, separation


def test_separation_is_the_chance_that_a_true_statement_is_surer_than_a_wrong_one():
    scored = [ScoredStatement("other", 0.9, 1), ScoredStatement("other", 0.5, 1),
              ScoredStatement("other", 0.6, -1), ScoredStatement("other", 0.5, -1),
              ScoredStatement("person", 0.2, 1)]
    # pairs (true, wrong): (0.9, 0.6) win, (0.9, 0.5) win, (0.5, 0.6) loss, (0.5, 0.5) tie -> 2.5 / 4
    assert separation(scored, "other") == pytest.approx(0.625)
    assert separation(scored, "person") is None  # no wrong person statement to tell apart


def test_a_floor_keeps_the_rooms_and_the_statements_at_least_as_sure_as_it():
    scored = [ScoredStatement("room", 0.1, 0), ScoredStatement("other", 0.9, 1),
              ScoredStatement("person", 0.4, -1), ScoredStatement("other", 0.5, -1)]
    assert kept_above(scored, 0.0) == {"true": 1, "wrong": 2, "fidelity": pytest.approx(2 / 4)}
    assert kept_above(scored, 0.5) == {"true": 1, "wrong": 1, "fidelity": pytest.approx(2 / 3)}
    assert kept_above(scored, 0.95) == {"true": 0, "wrong": 0, "fidelity": 1.0}


def test_the_default_models_statements_are_scored_on_held_out_streams():
    backend = load_backend("transformers", **backend_settings({**memorizer_parameters(),
                                                               "model_path": str(ensure_default_model())}))
    backend.load()
    scored = score_statements(backend, seeds=(557_001,), clips_per_world=4)
    backend.unload()
    rooms = [s for s in scored if s.kind == "room"]
    assert len(rooms) == 4  # one room sentence per memory, every memory scored
    assert all(0.0 < s.confidence <= 1.0 for s in scored)
    assert {s.value for s in scored} <= {-1, 0, 1} and any(s.kind != "room" for s in scored)
