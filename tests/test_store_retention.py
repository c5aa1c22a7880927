"""Bounded growth: near-duplicates merge, old memories consolidate into summaries within the budget, with
provenance; memories cited by logged answers are never deleted. And the answer context within a budget."""

import pytest

from taskmem_nodes.records import MemoryRecord, TaskLogRecord
from taskmem_nodes.store import MemoryStore
from taskmem_nodes.store.context import approximate_tokens, assemble_context, whole_context
from taskmem_nodes.store.retention import RetentionConfig, apply_retention, similarity


@pytest.fixture
def store(tmp_path):
    store = MemoryStore(tmp_path / "memory.db")
    yield store
    store.close()


def add(store, texts, step=10.0):
    store.add_memories([MemoryRecord(f"m{i}", f"c{i}", step * i, step * i + step, t, entity_ids=(f"e{i % 2}",))
                        for i, t in enumerate(texts)])


def test_near_duplicate_consecutive_memories_merge_with_provenance(store):
    add(store, ["Person 1 sits on the sofa in the hall.", "Person 1 sits on the sofa in the hall.",
                "Person 1 is sitting on the sofa in the hall. The lamp is on.", "A red mug is on the table.",
                "Person 1 sits on the sofa in the hall."])
    assert apply_retention(store, RetentionConfig()).merged == 0  # no budget: memory is left as written
    report = apply_retention(store, RetentionConfig(max_memories=1000))
    assert report.merged == 3 and report.written == 1
    memories = store.memories()
    assert [m.kind for m in memories] == ["merged", "clip", "clip"]
    merged = memories[0]
    assert (merged.start, merged.end) == (0.0, 30.0) and "The lamp is on." in merged.text
    assert merged.text.count("sofa") == 1 and set(merged.entity_ids) == {"e0", "e1"}
    assert store.provenance(merged.memory_id) == ["m0", "m1", "m2"]
    assert store.get_memory("m1") is None and store.summary_of("m1") == merged.memory_id
    assert similarity("a red mug", "the red mugs") == 1.0  # content words, inflections folded


def test_consolidation_keeps_the_budget_and_never_deletes_cited_memories(store):
    add(store, [f"Person {i % 7} carries the {['red', 'blue', 'green'][i % 3]} box to room {i % 5}."
                for i in range(120)])
    store.log_task(TaskLogRecord("t1", "Who carried the box?", 500.0, answered=True, answer="person 3",
                                 memory_ids=("m3", "m40")))
    config = RetentionConfig(max_memories=20, merge_similarity=2, keep_recent_seconds=100,
                             summary_span_seconds=60)
    report = apply_retention(store, config)
    counts = store.counts()
    assert counts["active_memories"] <= 20 and not report.over_budget
    assert report.summarised > 0 and report.active_before == 120 and report.active_after == counts["active_memories"]
    recent = [m for m in store.memories() if m.kind == "clip"]
    assert {m.memory_id for m in recent} >= {f"m{i}" for i in range(110, 120)}  # the last 100 s untouched
    for cited in ("m3", "m40"):
        kept = store.get_memory(cited)
        assert kept is not None and store.replacement_of(cited) is not None  # kept, marked as replaced
    assert "m3" not in {m.memory_id for m in store.memories()}  # but no longer recalled by default
    assert "m3" in {m.memory_id for m in store.memories(include_replaced=True)}
    summaries = [m for m in store.memories() if m.kind == "summary"]
    assert summaries and all(len(s.text) <= config.summary_chars for s in summaries)
    covered = sorted(s.start for s in summaries)
    assert covered == sorted(covered) and store.integrity_check() == "ok"
    assert store.recall("green box", k=3, mode="text")  # summaries are searchable


def test_byte_budget(store):
    add(store, [f"Event number {i}: " + "a long description of what happened " * 5 for i in range(60)])
    budget = store.payload_bytes() // 3
    report = apply_retention(store, RetentionConfig(max_bytes=budget, merge_similarity=2, keep_recent_seconds=50,
                                                    summary_span_seconds=60, summary_chars=300))
    assert store.payload_bytes() <= budget and not report.over_budget


def test_budget_that_cannot_be_met_is_reported(store):
    add(store, ["Something new happens here."] * 3 + ["Another thing."] * 2)
    report = apply_retention(store, RetentionConfig(max_memories=1, merge_similarity=2, keep_recent_seconds=1e6))
    assert report.over_budget and store.counts()["active_memories"] == 5


def test_context_takes_the_best_that_fit_in_time_order():
    ranked = [MemoryRecord(f"m{i}", "c", 100.0 - 10 * i, 110.0 - 10 * i, f"Memory number {i} says something.")
              for i in range(6)]
    one = approximate_tokens("00:01:40-00:01:50\nMemory number 0 says something.")
    context = assemble_context(ranked, budget_tokens=3 * one + 2 * approximate_tokens("\n\n"))
    assert [m.memory_id for m in context.memories] == ["m2", "m1", "m0"]  # the best three, oldest first
    assert context.left_out == 3 and context.tokens <= 3 * one + 4
    assert context.text.splitlines()[0] == "00:01:20-00:01:30"
    whole = whole_context(ranked)
    assert [m.memory_id for m in whole.memories] == [f"m{i}" for i in range(5, -1, -1)] and whole.left_out == 0
    with pytest.raises(ValueError):
        assemble_context(ranked, 0)
