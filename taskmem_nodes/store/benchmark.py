"""`taskmem bench-store`: the store at 10k-1M synthetic memories against Milvus Lite, on the same memories
and queries in the same run. Prints figures; not a test.

Memories: a few thousand distinct sentences from a household grammar are embedded for real with MiniLM
(that throughput is measured and reported); each stored memory is one such sentence plus a second, shorter
one, and its vector is the normalised mix 0.8 a + 0.2 b of their real embeddings plus small noise. Embedding
a million texts at ~200/s is not possible here, so this is how the 1M rows get honest, clustered vectors.
Queries are real MiniLM embeddings of questions from the same grammar; "exact" is a float32 brute force.
Resumable: the database and the Milvus Lite file in `out` keep what earlier runs wrote.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store.memory_store import MemoryStore
from taskmem_nodes.store.recall import RecallQuery

ROOMS = ["kitchen", "hall", "bedroom", "office", "garage", "garden", "bathroom", "attic"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple", "grey", "brown"]
OBJECTS = ["mug", "box", "bottle", "book", "laptop", "chair", "lamp", "bag", "phone", "plant", "ball", "vase"]
ACTIONS = ["picks up", "puts down", "carries", "walks past", "looks at", "opens", "moves", "drops"]
PLACES = ["table", "sofa", "shelf", "floor", "desk", "counter"]
PEOPLE = 40
CLIP_SECONDS = 10.0
MIX = 0.2
NOISE = 0.02
BLOCK = 1000


def sentence(rng: random.Random) -> str:
    room, room2 = rng.sample(ROOMS, 2)
    colour, colour2 = rng.choice(COLOURS), rng.choice(COLOURS)
    thing, place, person = rng.choice(OBJECTS), rng.choice(PLACES), rng.randint(1, PEOPLE)
    return rng.choice([
        f"In the {room}, person {person} in a {colour} shirt {rng.choice(ACTIONS)} the {colour2} {thing}.",
        f"A {colour} {thing} is on the {place} in the {room}.",
        f"Person {person} walks from the {room} to the {room2} carrying a {colour} {thing}.",
        f"The {room} is empty; the {colour} {thing} is still on the {place}.",
    ])


def question(rng: random.Random) -> str:
    room, colour, thing, person = rng.choice(ROOMS), rng.choice(COLOURS), rng.choice(OBJECTS), rng.randint(1, PEOPLE)
    return rng.choice([
        f"Where was the {colour} {thing} last seen?",
        f"What did person {person} carry in the {room}?",
        f"When did person {person} go to the {room}?",
        f"Is there a {colour} {thing} on the {rng.choice(PLACES)}?",
    ])


@dataclass
class Corpus:
    """Distinct sentences with their real embeddings, and the rule that builds memory i from them."""

    texts: list[str]
    vectors: np.ndarray  # (n, 384) float32, unit length
    seed: int = 0

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sentence pairs and vectors of memories block * BLOCK .. (block + 1) * BLOCK - 1."""
        rng = np.random.default_rng([self.seed, block])
        first, second = rng.integers(0, len(self.texts), BLOCK), rng.integers(0, len(self.texts), BLOCK)
        noise = rng.standard_normal((BLOCK, self.vectors.shape[1]), dtype=np.float32)
        vectors = (1 - MIX) * self.vectors[first] + MIX * self.vectors[second] + NOISE * noise
        return first, second, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def rows(self, start: int, stop: int) -> tuple[list[MemoryRecord], np.ndarray]:
        """Memories start..stop-1 and their vectors (the same for a row however the range is cut)."""
        memories, vectors = [], []
        for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            first, second, block_vectors = self._block(block)
            low, high = max(start, block * BLOCK) - block * BLOCK, min(stop, (block + 1) * BLOCK) - block * BLOCK
            vectors.append(block_vectors[low:high])
            for offset in range(low, high):
                i = block * BLOCK + offset
                text = f"{self.texts[first[offset]]} {self.texts[second[offset]]}"
                people = sorted({f"person_{w}" for w in text.replace(",", " ").split() if w.isdigit()})
                memories.append(MemoryRecord(f"bench-{i}", f"clip-{i}", i * CLIP_SECONDS, (i + 1) * CLIP_SECONDS,
                                             text, entity_ids=tuple(people), model_version="bench",
                                             created_at=float(i)))
        return memories, np.concatenate(vectors).astype(np.float32)


def build_corpus(embed: Callable[[list[str]], np.ndarray], distinct: int, out: Path, seed: int = 0
                 ) -> tuple[Corpus, float]:
    """The distinct sentences and their embeddings (cached in `out`), and the embedding rate measured."""
    cache = out / f"corpus-{distinct}-{seed}.npz"
    rng = random.Random(seed)
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < distinct:
        text = sentence(rng)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    if cache.exists():
        data = np.load(cache)
        return Corpus(texts, data["vectors"], seed), float(data["rate"])
    started = time.perf_counter()
    vectors = embed(texts)
    rate = distinct / (time.perf_counter() - started)
    np.savez(cache, vectors=vectors, rate=rate)
    return Corpus(texts, vectors, seed), rate


@dataclass
class SizeResult:
    size: int
    figures: dict[str, float] = field(default_factory=dict)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    values = np.array(seconds) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def exact_top(corpus: Corpus, size: int, queries: np.ndarray, k: int = 10, chunk: int = 100_000) -> np.ndarray:
    """Row indices of the exact float32 top-k per query over memories 0..size-1."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, size, chunk):
        stop = min(size, start + chunk)
        _, vectors = corpus.rows(start, stop)
        scores = queries @ vectors.T
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, np.arange(start, stop)[None, :].repeat(len(queries), 0)], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, 1)
        best_rows = np.take_along_axis(rows, top, 1)
    return best_rows


def recall_at_k(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e.tolist())) / len(e) for f, e in zip(found, exact)]))


def ingest_store(store: MemoryStore, corpus: Corpus, size: int, figures: dict, batch: int = 1000,
                 on_progress: Callable[[int], None] | None = None) -> None:
    """Write memories up to `size` (text, then vectors), timing each part."""
    have = store.counts()["memories"]
    if have < size:
        written, started = 0, time.perf_counter()
        for start in range(have, size, batch):
            memories, _ = corpus.rows(start, min(size, start + batch))
            store.add_memories(memories)
            written += len(memories)
            if on_progress:
                on_progress(len(memories))
        figures["ingest_per_s"] = written / (time.perf_counter() - started)
    started, written = time.perf_counter(), 0
    while pending := store.pending_embeddings(5000):
        rowids = [rowid for rowid, _ in pending]
        low = rowids[0] - 1  # memory i has row id i + 1 (written in order)
        _, vectors = corpus.rows(low, rowids[-1])
        vectors = vectors[[rowid - 1 - low for rowid in rowids]]
        written += store.store_embeddings(rowids, vectors, "all-MiniLM-L6-v2")
    if written:
        figures["vector_writes_per_s"] = written / (time.perf_counter() - started)
    if store.vectors.needs_training():
        started = time.perf_counter()
        figures["ivf_lists"] = store.vectors.train()
        figures["ivf_train_s"] = time.perf_counter() - started


def time_store_queries(store: MemoryStore, texts: list[str], vectors: np.ndarray, warm_up: list[str],
                       warm_vectors: np.ndarray, probes: int, figures: dict, k: int = 10
                       ) -> dict[int, list[list[int]]]:
    """Latency of text and hybrid recall, and of vector recall at `probes` and twice as many lists, after
    `warm_up` queries of each mode (a running store's pages are in the page cache). The vector hits (row
    indices) per probe count."""
    lookup = {t: v for t, v in zip(texts, vectors)}
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    hits: dict[int, list[list[int]]] = {}
    for name, mode, lists in (("text", "text", probes), ("hybrid", "hybrid", probes), ("vector", "vector", probes),
                              ("vector_wide", "vector", 2 * probes)):
        store.vectors.probes = lists
        for text, vector in zip(warm_up, warm_vectors):
            store.search(RecallQuery(text=text, k=k, mode=mode), embed=lambda _, v=vector: v)
        seconds, found = [], []
        for text in texts:
            started = time.perf_counter()
            result = store.search(RecallQuery(text=text, k=k, mode=mode), embed=lookup.__getitem__)
            seconds.append(time.perf_counter() - started)
            found.append([int(m.memory_id.split("-")[1]) for m, _ in result.hits])
        figures[f"{name}_p50_ms"], figures[f"{name}_p95_ms"] = percentiles(seconds)
        if mode == "vector":
            hits[lists] = found
    store.vectors.probes = probes
    return hits


RSS_PROBE = """
import sys, numpy as np, psutil
from taskmem_nodes.store import MemoryStore, RecallQuery
store = MemoryStore(sys.argv[1], readonly=True, vector_probes=int(sys.argv[3]))
data = np.load(sys.argv[2])
for text, vector in zip(data["texts"], data["vectors"]):
    store.search(RecallQuery(text=str(text), k=10), embed=lambda _, v=vector: v)
print(psutil.Process().memory_info().rss)
"""


def store_rss_mb(path: Path, texts: list[str], vectors: np.ndarray, probes: int) -> float:
    """RSS of a fresh process that opens the store and runs the hybrid queries (no model, no benchmark data)."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "queries.npz"
        np.savez(queries, texts=np.array(texts), vectors=vectors)
        out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(path), str(queries), str(probes)],
                             capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 2**20


def milvus_run(path: Path, corpus: Corpus, size: int, vectors: np.ndarray, lists: int, probes: int, figures: dict,
               k: int = 10, batch: int = 5000) -> dict[int, list[list[int]]]:
    """The same memories into Milvus Lite (IVF_FLAT, cosine, as many lists; `probes` and twice as many read),
    and the same query vectors; the hits (row ids) per probe count."""
    from pymilvus import MilvusClient

    rss_before = psutil.Process().memory_info().rss

    client = MilvusClient(str(path))
    name = "memories"
    if not client.has_collection(name):
        client.create_collection(name, dimension=vectors.shape[1], metric_type="COSINE", auto_id=False,
                                 id_type="int", primary_field_name="id", vector_field_name="vector",
                                 consistency_level="Strong")
    have = int(client.get_collection_stats(name)["row_count"])
    if have < size:
        started = time.perf_counter()
        for start in range(have, size, batch):
            memories, rows = corpus.rows(start, min(size, start + batch))
            client.insert(name, [{"id": start + i, "vector": v.tolist(), "text": m.text, "start_time": m.start}
                                 for i, (m, v) in enumerate(zip(memories, rows))])
        client.flush(name)
        figures["milvus_ingest_per_s"] = (size - have) / (time.perf_counter() - started)
    client.release_collection(name)
    for index in client.list_indexes(name):
        client.drop_index(name, index)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="IVF_FLAT", metric_type="COSINE", params={"nlist": lists})
    started = time.perf_counter()
    client.create_index(name, params)
    client.load_collection(name)
    figures["milvus_index_s"] = time.perf_counter() - started
    hits: dict[int, list[list[int]]] = {}
    for label, nprobe in (("milvus_vector", probes), ("milvus_vector_wide", 2 * probes)):
        params = {"metric_type": "COSINE", "params": {"nprobe": nprobe}}
        for vector in vectors[:20]:  # warm-up, as for the store
            client.search(name, [vector.tolist()], limit=k, search_params=params)
        seconds, found = [], []
        for vector in vectors:
            started = time.perf_counter()
            result = client.search(name, [vector.tolist()], limit=k, search_params=params)
            seconds.append(time.perf_counter() - started)
            found.append([int(h["id"]) for h in result[0]])
        figures[f"{label}_p50_ms"], figures[f"{label}_p95_ms"] = percentiles(seconds)
        hits[nprobe] = found
    children = sum(p.memory_info().rss for p in psutil.Process().children(recursive=True))
    figures["milvus_rss_mb"] = (psutil.Process().memory_info().rss - rss_before + children) / 2**20
    client.close()
    return hits


def run_store_benchmark(out: Path, sizes: list[int], *, embed: Callable[[list[str]], np.ndarray],
                        embed_query: Callable[[list[str]], np.ndarray], distinct: int = 4000, queries: int = 200,
                        probes: int = 16, milvus: bool = True, seed: int = 0,
                        on_progress: Callable[[int], None] | None = None,
                        report: Callable[[SizeResult], None] | None = None) -> list[SizeResult]:
    """Grow one store (and one Milvus Lite collection) through `sizes`, measuring at each."""
    out.mkdir(parents=True, exist_ok=True)
    corpus, embed_rate = build_corpus(embed, distinct, out, seed)
    rng = random.Random(seed + 1)
    query_texts = [question(rng) for _ in range(queries)]
    started = time.perf_counter()
    query_vectors = embed_query(query_texts)
    query_embed_ms = (time.perf_counter() - started) * 1000 / queries
    warm_up = [question(rng) for _ in range(20)]
    warm_vectors = embed_query(warm_up)
    store = MemoryStore(out / "store.db", vector_probes=probes)
    store.db.execute("PRAGMA synchronous=NORMAL")  # figures for bulk loading; the node keeps FULL
    results = []
    try:
        for size in sorted(sizes):
            result = SizeResult(size, {"embed_per_s": embed_rate, "query_embed_ms": query_embed_ms})
            figures = result.figures
            ingest_store(store, corpus, size, figures, on_progress=on_progress)
            ours = time_store_queries(store, query_texts, query_vectors, warm_up, warm_vectors, probes, figures)
            exact = exact_top(corpus, size, query_vectors)
            figures["recall_at_10"] = recall_at_k(ours[probes], exact)
            figures["recall_wide_at_10"] = recall_at_k(ours[2 * probes], exact)
            figures["db_mb"] = store.size_bytes() / 2**20
            figures["store_rss_mb"] = store_rss_mb(out / "store.db", query_texts, query_vectors, probes)
            figures["bench_rss_mb"] = psutil.Process().memory_info().rss / 2**20
            if report:
                report(result)  # ours, before Milvus Lite runs
            if milvus:
                lists = len(store.vectors.centroids) if store.vectors.centroids is not None else 1
                theirs = milvus_run(out / "milvus.db", corpus, size, query_vectors, lists, probes, figures)
                figures["milvus_recall_at_10"] = recall_at_k(theirs[probes], exact)
                figures["milvus_recall_wide_at_10"] = recall_at_k(theirs[2 * probes], exact)
                figures["vector_p95_ratio"] = figures["vector_p95_ms"] / figures["milvus_vector_p95_ms"]
                figures["vector_wide_p95_ratio"] = figures["vector_wide_p95_ms"] / figures["milvus_vector_wide_p95_ms"]
                if report:
                    report(result)
            results.append(result)
            with open(out / "results.jsonl", "a") as f:
                f.write(json.dumps({"size": size, "probes": probes, **figures, "at": time.time()}) + "\n")
    finally:
        store.close()
    return results


def markdown_table(results: list[SizeResult], probes: int) -> str:
    """The README table: latencies in ms as p50/p95, recall@10 against exact float search in brackets."""
    wide = 2 * probes

    def ms(f: dict, key: str, recall: str | None = None) -> str:
        if f"{key}_p50_ms" not in f:
            return "-"
        cell = f"{f[key + '_p50_ms']:.1f}/{f[key + '_p95_ms']:.1f}"
        return cell + (f" ({f[recall]:.2f})" if recall and recall in f else "")

    def number(f: dict, key: str, digits: int = 0) -> str:
        return f"{f[key]:,.{digits}f}" if key in f else "-"

    header = ["memories", "ingest/s", "vector writes/s", "text", "hybrid", f"vector, {probes} probes",
              f"vector, {wide} probes", f"Milvus Lite, {probes} probes", f"Milvus Lite, {wide} probes",
              "p95 ours/Milvus", "DB MB", "store RSS MB", "Milvus RSS MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    for r in results:
        f = r.figures
        ratio = (f"{f['vector_p95_ratio']:.2f} / {f['vector_wide_p95_ratio']:.2f}"
                 if "vector_p95_ratio" in f else "-")
        lines.append("| " + " | ".join([
            f"{r.size:,}", number(f, "ingest_per_s"), number(f, "vector_writes_per_s"), ms(f, "text"),
            ms(f, "hybrid"), ms(f, "vector", "recall_at_10"), ms(f, "vector_wide", "recall_wide_at_10"),
            ms(f, "milvus_vector", "milvus_recall_at_10"), ms(f, "milvus_vector_wide", "milvus_recall_wide_at_10"),
            ratio, number(f, "db_mb"), number(f, "store_rss_mb"), number(f, "milvus_rss_mb")]) + " |")
    return "\n".join(lines)


def default_threads() -> None:
    """Keep the benchmark to one core's worth of BLAS threads (the machine is shared)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
