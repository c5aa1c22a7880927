"""Hybrid recall: fusion, filters, around-time, FTS syntax, vectors (IVF) against exact search; property
tests of ordering and filters. A deterministic bag-of-words embedder stands in for MiniLM here so the
properties run fast; tests/test_store_embedder.py uses the real model."""

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store import MemoryStore, RecallQuery, StoreError
from taskmem_nodes.store.embedder import embed_pending
from taskmem_nodes.store.recall import reciprocal_rank_fusion
from taskmem_nodes.store.text import query_terms

WORDS = ["red", "blue", "mug", "box", "kitchen", "hall", "person", "carries", "table", "lamp", "garden", "book"]


def word_vectors(texts):
    """Sum of fixed random unit vectors of each word: similar texts, similar vectors."""
    out = np.zeros((len(texts), 32), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in query_terms(text):
            seed = int.from_bytes(hashlib.sha1(word.encode()).digest()[:4], "little")
            out[i] += np.random.default_rng(seed).standard_normal(32).astype(np.float32)
        out[i] /= np.linalg.norm(out[i]) or 1.0
    return out


def embed_query(text):
    return word_vectors([text])[0]


def fill(store, texts, *, entities=None, embed=True):
    memories = [MemoryRecord(f"m{i}", f"c{i}", 10.0 * i, 10.0 * i + 10, text,
                             entity_ids=tuple(entities[i]) if entities else ())
                for i, text in enumerate(texts)]
    store.add_memories(memories)
    while embed and embed_pending(store, word_vectors, "words", batch_size=500):
        pass
    return memories


@pytest.fixture
def store(tmp_path):
    store = MemoryStore(tmp_path / "memory.db")
    yield store
    store.close()


def test_reciprocal_rank_fusion_rewards_agreement():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d", "a"]], k=3)
    assert [item for item, _ in fused] == ["b", "a", "d"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_hybrid_finds_by_text_before_embedding_and_by_both_after(store):
    fill(store, ["The red mug is in the kitchen.", "A blue box in the hall.", "Person carries a lamp."],
         embed=False)
    result = store.search(RecallQuery("red mug", k=2), embed=embed_query)
    assert [m.memory_id for m, _ in result.hits][:1] == ["m0"]
    assert any("embedded yet" in n for n in result.notes)
    while embed_pending(store, word_vectors, "words"):
        pass
    result = store.search(RecallQuery("red mug", k=2), embed=embed_query)
    assert result.hits[0][0].memory_id == "m0" and not result.notes
    assert store.counts()["pending_embeddings"] == 0


def test_vector_mode_finds_what_no_word_matches(store):
    fill(store, ["red mug kitchen", "blue box hall", "garden lamp book"])
    hits = store.recall("mug kitchen red", mode="vector", embed=embed_query)
    assert hits[0][0].memory_id == "m0" and hits[0][1] == pytest.approx(1.0, abs=0.02)
    assert store.recall("xyzzy", mode="vector") == []  # no embedder: nothing, and no error


def test_filters_time_entity_task_type_and_around(store):
    fill(store, ["red mug"] * 6, entities=[["person_1"], ["person_2"], [], ["person_1"], [], ["person_2"]])
    store.add_adapter("loc-v1", "/adapters/loc.pt", "tiny", ["location"])
    store.add_memory(MemoryRecord("m6", "c6", 60, 70, "red mug on the table", adapter_version="loc-v1"))
    ids = lambda **kw: sorted(m.memory_id for m, _ in store.recall("red mug", k=10, embed=embed_query, **kw))  # noqa: E731
    assert ids(start=20.0, end=35.0) == ["m1", "m2", "m3"]
    assert ids(entity_ids=("person_2",)) == ["m1", "m5"]
    assert ids(task_type="location") == ["m6"]
    assert ids(task_type="count") == []
    near = store.recall("", k=3, around=42.0, around_seconds=15.0)
    assert [m.memory_id for m, _ in near] == ["m4", "m3", "m5"]  # by closeness of the clip's middle to 42 s


def test_fts_syntax_errors_are_reported_clearly(store):
    fill(store, ["The red mug is in the kitchen.", "A red box."])
    assert [m.memory_id for m, _ in store.recall("red NOT mug", syntax="fts", mode="text")] == ["m1"]
    for bad in ['"unbalanced', "red AND", "NEAR(", "col:value", "*"]:
        with pytest.raises(StoreError, match="not valid FTS5 syntax"):
            store.recall(bad, syntax="fts", mode="text")
        store.recall(bad)  # as plain words it is always fine


def test_common_terms_are_dropped_in_large_stores(store, monkeypatch):
    monkeypatch.setattr("taskmem_nodes.store.memory_store.PRUNE_FROM_ROWS", 10)
    fill(store, [f"person walks in the hall number {i}" + (" red mug" if i == 7 else "") for i in range(50)],
         embed=False)
    result = store.search(RecallQuery("person hall red mug", k=3, mode="text"))
    assert result.hits[0][0].memory_id == "m7"
    assert any("ignored common terms" in n for n in result.notes)


def test_ivf_lists_keep_recall_close_to_exact(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((40, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 40, 3000)] + 0.3 * rng.standard_normal((3000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = MemoryStore(tmp_path / "ivf.db", vector_probes=8)
    store.vectors.train_at = 1000
    store.add_memories([MemoryRecord(f"m{i}", f"c{i}", i, i + 1, f"memory {i}") for i in range(3000)])
    store.store_embeddings(list(range(1, 3001)), vectors, "synthetic")
    assert store.vectors.needs_training()
    assert store.vectors.train() == 55  # about sqrt(3000) lists
    queries = centres[:20] + 0.3 * rng.standard_normal((20, 32)).astype(np.float32)
    found = []
    for q in queries:
        q /= np.linalg.norm(q)
        exact = set(np.argsort(-(vectors @ q))[:10] + 1)
        ivf = {rowid for rowid, _ in store.vectors.search(q, 10)}
        found.append(len(exact & ivf) / 10)
    assert np.mean(found) >= 0.9
    store.close()


texts = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=texts, query=st.lists(st.sampled_from(WORDS), min_size=0, max_size=3).map(" ".join),
       k=st.integers(1, 10), window=st.tuples(st.floats(0, 250), st.floats(0, 250)),
       mode=st.sampled_from(["hybrid", "text", "vector"]), entity=st.sampled_from(["", "e0", "e1"]))
def test_recall_properties(tmp_path_factory, texts, query, k, window, mode, entity):
    """Every hit passes every filter, there are at most k, no duplicates, scores never increase, and in
    text mode every hit contains a query word."""
    store = MemoryStore(tmp_path_factory.mktemp("prop") / "memory.db")
    entities = [[f"e{i % 3}"] for i in range(len(texts))]
    fill(store, texts, entities=entities)
    start, end = min(window), max(window)
    hits = store.recall(query, k=k, start=start, end=end, mode=mode, embed=embed_query,
                        entity_ids=(entity,) if entity else ())
    ids = [m.memory_id for m, _ in hits]
    assert len(ids) <= k and len(ids) == len(set(ids))
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) or not query_terms(query)
    for memory, _ in hits:
        assert memory.end >= start and memory.start <= end
        assert not entity or entity in memory.entity_ids
        if mode == "text" and query_terms(query):  # (an empty query lists the most recent memories)
            assert set(query_terms(query)) & set(query_terms(memory.text))
    store.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=texts, k=st.integers(2, 10))
def test_a_memorys_own_text_finds_it(tmp_path_factory, texts, k):
    """Asked with a memory's own text: vector recall puts it (or a memory of the same words) first, hybrid
    within the first two (reciprocal rank fusion: only a memory first by BM25 and second by vector can
    tie it), and text recall returns it whenever k covers every memory."""
    store = MemoryStore(tmp_path_factory.mktemp("self") / "memory.db")
    fill(store, texts)
    target = set(query_terms(texts[-1]))
    same = lambda hits: [set(query_terms(m.text)) == target for m, _ in hits]  # noqa: E731
    assert same(store.recall(texts[-1], k=k, mode="vector", embed=embed_query))[0]
    assert any(same(store.recall(texts[-1], k=k, mode="hybrid", embed=embed_query))[:2])
    text_hits = store.recall(texts[-1], k=len(texts), mode="text")
    assert f"m{len(texts) - 1}" in {m.memory_id for m, _ in text_hits}
    store.close()


def test_text_work_stays_bounded_as_the_store_grows(store, monkeypatch):
    """A term in every memory is scored over the latest memories only, and 'latest' follows the growth."""
    monkeypatch.setattr("taskmem_nodes.store.memory_store.PRUNE_FROM_ROWS", 10)
    monkeypatch.setattr("taskmem_nodes.store.memory_store.MAX_SCORED_MATCHES", 20)
    monkeypatch.setattr("taskmem_nodes.store.memory_store.COMMON_TERM_SHARE", 1.0)
    fill(store, [f"the door opens, number {i}" for i in range(40)], embed=False)
    first = store.search(RecallQuery("door", k=5, mode="text"))
    assert any("latest 20 memories" in n for n in first.notes)
    store.add_memories([MemoryRecord(f"n{i}", f"d{i}", 1000.0 + i, 1001.0 + i,
                                     "door" if i < 380 else f"the door shuts slowly with a long creak, item {i}")
                        for i in range(400)])  # BM25 prefers the short older ones: only the window excludes them
    second = store.search(RecallQuery("door", k=5, mode="text"))
    assert any("latest 20 memories" in n for n in second.notes), second.notes
    assert all(m.memory_id.startswith("n") and int(m.memory_id[1:]) >= 380 for m, _ in second.hits)
