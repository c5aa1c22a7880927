"""The vector index: int8 embeddings in plain SQLite tables, clustered by inverted list (IVF).

Each embedding is stored as int8 (scaled by its own largest component, so cosine is nearly unchanged) in
`memory_vectors`, whose primary key (list_id, memory_rowid) keeps the rows of one list together on disk.
Lists are k-means centroids of the embeddings (`vector_lists`); a query reads only the `probes` lists
nearest to it and ranks their rows exactly with sqlite-vec's `vec_distance_cosine`. Until enough rows
exist to train the lists (`train_at`), everything is in list 0 and every query is an exact scan.
The tables need no extension; only the distance function needs sqlite-vec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import numpy as np

TRAIN_AT = 4_096
"""Embedded rows at which the inverted lists are first trained."""
RETRAIN_GROWTH = 8
"""Retrain when the rows have grown this many times since the last training."""
DEFAULT_PROBES = 16
REASSIGN_CHUNK = 20_000
EXACT_LIMIT = 20_000
"""A filter that leaves at most this many rows is searched exactly."""


def quantize(vectors: np.ndarray) -> np.ndarray:
    """float (n, d) -> int8 (n, d), each row scaled by its own largest magnitude."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    scale = np.abs(vectors).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    return np.rint(vectors * (127.0 / scale)).astype(np.int8)


def list_count(rows: int) -> int:
    """Inverted lists for `rows` embeddings: about sqrt(rows), so a list holds about as many rows as there are lists."""
    return int(min(4096, max(1, round(rows ** 0.5))))


def kmeans(vectors: np.ndarray, lists: int, *, iterations: int = 8, seed: int = 0) -> np.ndarray:
    """Spherical k-means: unit centroids (lists, d) of unit vectors."""
    rng = np.random.default_rng(seed)
    centroids = vectors[rng.choice(len(vectors), size=lists, replace=False)].copy()
    for _ in range(iterations):
        assignment = nearest_lists(vectors, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assignment, vectors)
        empty = np.linalg.norm(sums, axis=1) == 0
        sums[empty] = vectors[rng.choice(len(vectors), size=int(empty.sum()))]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return centroids.astype(np.float32)


def nearest_lists(vectors: np.ndarray, centroids: np.ndarray, batch: int = 8192) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), batch):
        out[start:start + batch] = np.argmax(vectors[start:start + batch] @ centroids.T, axis=1)
    return out


class VectorIndex:
    """Reads and writes the vector tables through the store's connection; `write` opens its write transaction."""

    def __init__(self, conn, write: Callable[[], AbstractContextManager], *,
                 train_at: int = TRAIN_AT, probes: int = DEFAULT_PROBES):
        self.conn = conn
        self.execute = conn.execute
        self.write = write
        self.train_at = train_at
        self.probes = probes
        self.centroids = self._load_centroids()

    def _load_centroids(self) -> np.ndarray | None:
        rows = self.execute("SELECT centroid FROM vector_lists ORDER BY list_id").fetchall()
        if not rows:
            return None
        return np.stack([np.frombuffer(r[0], dtype=np.float32) for r in rows])

    def reload(self) -> None:
        """Pick up lists trained by another connection (readers)."""
        self.centroids = self._load_centroids()

    def count(self) -> int:
        return self.execute("SELECT count(*) FROM memory_vectors").fetchone()[0]

    def add(self, rows: Sequence[tuple[int, float, float]], vectors: np.ndarray) -> None:
        """Store embeddings for (memory rowid, start, end) rows; the caller holds the write transaction."""
        if not len(rows):
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        lists = nearest_lists(vectors, self.centroids) if self.centroids is not None else np.zeros(len(rows), int)
        codes = quantize(vectors)
        self.execute("DELETE FROM memory_vectors WHERE memory_rowid IN (SELECT value FROM json_each(?))",
                     [f"[{','.join(str(int(r[0])) for r in rows)}]"])
        self.conn.executemany(
            "INSERT INTO memory_vectors (list_id, memory_rowid, start_time, end_time, embedding) "
            "VALUES (?, ?, ?, ?, ?)",
            [(int(lst), int(rowid), start, end, code.tobytes())
             for lst, (rowid, start, end), code in zip(lists, rows, codes)],
        )

    def delete(self, memory_rowids: Sequence[int]) -> None:
        """Drop the embeddings of these memories; the caller holds the write transaction."""
        self.execute("DELETE FROM memory_vectors WHERE memory_rowid IN (SELECT value FROM json_each(?))",
                     [f"[{','.join(str(int(r)) for r in memory_rowids)}]"])

    def trained_rows(self) -> int:
        row = self.execute("SELECT value FROM store_meta WHERE key = 'vector_lists_trained_rows'").fetchone()
        return int(row[0]) if row else 0

    def needs_training(self) -> bool:
        rows, trained = self.count(), self.trained_rows()
        return rows >= self.train_at and (trained == 0 or rows >= RETRAIN_GROWTH * trained)

    def train(self, *, sample: int | None = None, seed: int = 0) -> int:
        """(Re)train the lists on a sample of the stored embeddings and move every row to its nearest list,
        a chunk per transaction (writers of text are never held up for long). Returns the list count."""
        total = self.count()
        lists = list_count(total)
        sample = min(total, sample or 64 * lists)
        rows = self.execute("SELECT embedding FROM memory_vectors ORDER BY random() LIMIT ?", [sample]).fetchall()
        data = np.stack([np.frombuffer(r[0], dtype=np.int8) for r in rows]).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True) + 1e-12
        centroids = kmeans(data, lists, seed=seed)
        with self.write():
            self.execute("DELETE FROM vector_lists")
            self.conn.executemany("INSERT INTO vector_lists (list_id, centroid) VALUES (?, ?)",
                                              [(i, c.tobytes()) for i, c in enumerate(centroids)])
            self.execute("INSERT OR REPLACE INTO store_meta (key, value) VALUES ('vector_lists_trained_rows', ?)",
                         [str(total)])
        self.centroids = centroids
        last = -1
        while True:
            with self.write():
                chunk = self.execute(
                    "SELECT list_id, memory_rowid, embedding FROM memory_vectors INDEXED BY memory_vectors_by_memory "
                    "WHERE memory_rowid > ? ORDER BY memory_rowid LIMIT ?", [last, REASSIGN_CHUNK]).fetchall()
                if not chunk:
                    break
                codes = np.stack([np.frombuffer(r[2], dtype=np.int8) for r in chunk]).astype(np.float32)
                new_lists = nearest_lists(codes, centroids)
                moves = [(int(n), r[1]) for n, r in zip(new_lists, chunk) if int(n) != r[0]]
                self.conn.executemany(
                    "UPDATE memory_vectors SET list_id = ? WHERE memory_rowid = ?", moves)
                last = chunk[-1][1]
        return lists

    def probe_lists(self, query: np.ndarray, probes: int | None = None) -> list[int] | None:
        """The lists to read for `query`; None when untrained (read everything)."""
        if self.centroids is None:
            return None
        probes = probes or self.probes
        scores = self.centroids @ query
        probes = min(probes, len(scores))
        return np.argpartition(-scores, probes - 1)[:probes].tolist()

    def search(self, query: np.ndarray, k: int, *, where: str = "1", params: Sequence = (), join_memories: bool = False,
               probes: int | None = None, exact: bool = False, read: Callable | None = None
               ) -> list[tuple[int, float]]:
        """(memory rowid, cosine similarity) of the best k rows, best first. `where` is SQL over `v`
        (memory_vectors) and, with `join_memories`, `m` (memories); `read(sql, params)` runs the query
        (default: this index's connection)."""
        code = quantize(query)[0].tobytes()
        lists = None if exact else self.probe_lists(np.asarray(query, dtype=np.float32), probes)
        clauses, args = [where], list(params)
        if lists is not None:
            clauses.append(f"v.list_id IN ({','.join('?' * len(lists))})")
            args.extend(lists)
        join = "JOIN memories m ON m.id = v.memory_rowid " if join_memories else ""
        sql = (f"SELECT v.memory_rowid, 1 - vec_distance_cosine(vec_int8(v.embedding), vec_int8(?)) AS similarity "
               f"FROM memory_vectors v {join}WHERE {' AND '.join(clauses)} ORDER BY similarity DESC LIMIT ?")
        rows = read(sql, [code, *args, k]) if read else self.execute(sql, [code, *args, k]).fetchall()
        return [(r[0], float(r[1])) for r in rows]
