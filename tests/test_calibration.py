"""The memorizer's calibration: statement confidences scored against the simulated world's ground truth."""

from __future__ import annotations

import pytest

from taskmem_nodes.memorizer import backend_settings, load_backend, memorizer_parameters
from taskmem_nodes.models.packed import ensure_default_model
from taskmem_nodes.train.calibration import (
    ScoredStatement,
    breakdown,
    error_of,
    kept_above,
    score_statements,
    separation,
)


def test_separation_is_the_chance_that_a_true_statement_is_surer_than_a_wrong_one():
    scored = [ScoredStatement("other", 0.9, "new"), ScoredStatement("other", 0.5, "new"),
              ScoredStatement("other", 0.6, "false"), ScoredStatement("other", 0.5, "repeated"),
              ScoredStatement("person", 0.2, "new")]
    # pairs (true, wrong): (0.9, 0.6) win, (0.9, 0.5) win, (0.5, 0.6) loss, (0.5, 0.5) tie -> 2.5 / 4
    assert separation(scored, "other") == pytest.approx(0.625)
    assert separation(scored, "person") is None  # no wrong person statement to tell apart


def test_a_floor_keeps_the_rooms_and_the_statements_at_least_as_sure_as_it():
    scored = [ScoredStatement("room", 0.1, "room"), ScoredStatement("other", 0.9, "new"),
              ScoredStatement("person", 0.4, "copied"), ScoredStatement("group", 0.5, "false", "count"),
              ScoredStatement("group", 0.45, "repeated")]  # wrong to state, but true: fidelity counts it true
    assert kept_above(scored, 0.0) == {"true": 1, "wrong": 3, "fidelity": pytest.approx(3 / 5)}
    assert kept_above(scored, 0.5) == {"true": 1, "wrong": 1, "fidelity": pytest.approx(2 / 3)}
    assert kept_above(scored, 0.95) == {"true": 0, "wrong": 0, "fidelity": 1.0}


def test_a_false_group_or_person_is_told_apart_by_how_it_is_wrong():
    truth = {"in the kitchen", "2 red mugs on the kitchen table", "1 blue book on the kitchen shelf",
             "person 3 in green is cooking", "person 5 in black picks up a red mug from the kitchen table"}
    assert error_of("group", "3 red mugs on the kitchen table", truth) == "count"
    assert error_of("group", "1 red mug on the kitchen table", truth) == "count"  # the singular is the same group
    assert error_of("group", "1 blue book on the kitchen table", truth) == "place"
    assert error_of("group", "2 yellow boxes on the kitchen table", truth) == "thing"
    assert error_of("person", "person 3 in green is reading", truth) == "doing"
    assert error_of("person", "person 3 in red is cooking", truth) == "shirt"
    assert error_of("person", "person 4 in green is cooking", truth) == "id"  # person 3's shirt, another id
    assert error_of("person", "person 4 in white is cooking", truth) == "nobody"
    assert error_of("other", "the kitchen lights are off", truth) == ""


def test_the_breakdown_counts_each_kind_by_verdict_and_false_groups_by_error():
    scored = [ScoredStatement("room", 0.9, "room"), ScoredStatement("person", 0.8, "new"),
              ScoredStatement("person", 0.3, "copied"), ScoredStatement("person", 0.2, "false", "id"),
              ScoredStatement("group", 0.6, "false", "count"), ScoredStatement("group", 0.4, "false", "place"),
              ScoredStatement("group", 0.9, "repeated")]
    rows = breakdown(scored)
    assert rows["person"] == {"said": 3, "new": 1, "copied": 1, "false": 1, "id": 1}
    assert rows["group"] == {"said": 3, "false": 2, "count": 1, "place": 1, "repeated": 1}
    assert not rows["other"] and "room" not in rows


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
    assert all(s.value == 0 for s in rooms) and {s.kind for s in scored} <= {"room", "person", "group", "other"}
    assert all(bool(s.error) == (s.kind in ("group", "person") and s.verdict == "false") for s in scored)
