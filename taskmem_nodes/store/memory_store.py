"""The memory store: one SQLite file (sqlite-utils, WAL) holding memories, clips, rejected outputs, tasks,
answers, adapters, provenance and the vector index.

Only the store node writes; any number of processes may read. Every write is one `BEGIN IMMEDIATE`
transaction committed with `synchronous=FULL`, so a memory acknowledged here survives a killed process.
Memories are searchable by text the moment they are written; their embeddings are added later, in
batches, by whoever holds an embedder (`pending_embeddings` / `store_embeddings`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import sqlite_utils

from taskmem_nodes.policy import MAX_DESCRIPTION_CHARS, MAX_RAW_OUTPUT_CHARS
from taskmem_nodes.records import MemoryRecord, RejectedRecord, TaskLogRecord
from taskmem_nodes.store.recall import MODES, SYNTAXES, RecallQuery, RecallResult, reciprocal_rank_fusion
from taskmem_nodes.store.schema import MIGRATIONS, SCHEMA_VERSION, create_latest
from taskmem_nodes.store.text import MAX_ID_CHARS, MAX_QUERY_CHARS, StoreError, clean_text, query_terms
from taskmem_nodes.store.vectors import EXACT_LIMIT, VectorIndex

KINDS = ("clip", "merged", "summary")
MAX_SUMMARY_CHARS = 4 * MAX_DESCRIPTION_CHARS
COMMON_TERM_SHARE = 0.5
"""A query term found in more than this share of memories is dropped (it barely ranks), unless all are."""
PRUNE_FROM_ROWS = 10_000
"""Common terms are dropped only from stores this large (below, scoring every match is cheap)."""
MAX_SCORED_MATCHES = 10_000
"""An OR query that would match more memories than this is narrowed (scoring costs ~1 us per match)."""
COUNT_SECONDS = 60.0
"""The row count and term document counts used to plan text queries are refreshed this often."""
DF_SAMPLE_ROWS = 50_000
"""Term document counts are estimated from this many latest memories."""
MAX_WALKED_POSTINGS = 80_000
"""An AND query whose terms' postings add up to more than this is also kept to the latest memories."""
REPLACED_SLACK = 16
"""Extra hits an unfiltered text ranking reads, to make up for replaced memories dropped after it."""
CANDIDATES_PER_LIST = 4
"""Each ranked list of a hybrid recall contributes this many times k candidates to the fusion."""

_MEMORY_COLUMNS = ("memory_id", "clip_id", "start_time", "end_time", "text", "entity_ids", "raw_output",
                   "model_version", "adapter_version", "generation_seconds", "created_at", "frame_id", "pose", "kind")


def _connect(path: Path, readonly: bool):
    uri = f"file:{path}?mode=ro" if readonly else str(path)
    return sqlite_utils.db.sqlite3.connect(uri, uri=readonly, check_same_thread=False, isolation_level=None)


def _load_sqlite_vec(conn) -> str:
    """Load sqlite-vec into the connection; the reason when it cannot be (vector recall is then off)."""
    try:
        import sqlite_vec

        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        return ""
    except (ImportError, AttributeError, sqlite_utils.db.sqlite3.OperationalError) as err:
        return f"sqlite-vec unavailable ({err}); recall is text-only"


class MemoryStore:
    """Memories, clips, rejected outputs, tasks, answers and their vectors in one SQLite file."""

    def __init__(self, path: str | Path, *, readonly: bool = False, vector_probes: int | None = None):
        self.path = Path(path).expanduser()
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StoreError(f"no memory database at {self.path}")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path, readonly)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self.vector_problem = _load_sqlite_vec(conn)
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        if not readonly:
            self._migrate()
        elif self.schema_version() != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {self.schema_version()}; open it once for writing "
                             f"(e.g. start the store node) to migrate it to {SCHEMA_VERSION}")
        self.vectors = VectorIndex(conn, self.write, **({"probes": vector_probes} if vector_probes else {}))
        # Vector search runs on a connection and thread of its own, beside the text search.
        self._vector_conn = _connect(self.path, readonly=True)
        _load_sqlite_vec(self._vector_conn)
        self._vector_conn.execute("PRAGMA busy_timeout=5000")
        self._vector_lock = threading.Lock()
        self._vector_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vector-recall")
        self._count, self._last_id, self._counted_at, self._counted_last = 1, 0, -1e9, 0
        self._frequencies: dict[str, int] = {}

    def close(self) -> None:
        self._vector_pool.shutdown()
        with self._vector_lock:
            self._vector_conn.close()
        with self._lock:
            self.db.close()

    @contextmanager
    def write(self):
        """One write transaction (the connection's lock held throughout)."""
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only")
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _read(self, sql: str, params: Sequence | dict = ()) -> list[tuple]:
        with self._lock:
            return self.db.execute(sql, params).fetchall()

    def _vector_read(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._vector_lock:
            return self._vector_conn.execute(sql, params).fetchall()

    # --- schema ---
    def schema_version(self) -> int:
        return self._read("PRAGMA user_version")[0][0]

    def _migrate(self) -> None:
        with self.write():
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}; this TaskMem knows up to "
                                 f"{SCHEMA_VERSION}")
            if version == 0:
                create_latest(self.db.execute)
            while 0 < version < SCHEMA_VERSION:
                MIGRATIONS[version](self.db.execute)
                version += 1
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    # --- writes ---
    def add_memory(self, memory: MemoryRecord) -> bool:
        """Insert a memory; False when its id is already stored (re-delivery is harmless)."""
        return self.add_memories([memory])[0]

    def add_memories(self, memories: Sequence[MemoryRecord]) -> list[bool]:
        """Insert a batch of memories in one transaction (all or none); per memory, False when already stored."""
        rows = [self._memory_row(m) for m in memories]
        with self.write():
            return [self._insert_memory(row) for row in rows]

    def _memory_row(self, memory: MemoryRecord, max_chars: int = MAX_DESCRIPTION_CHARS) -> dict:
        clean_text("memory_id", memory.memory_id, MAX_ID_CHARS)
        clean_text("clip_id", memory.clip_id, MAX_ID_CHARS)
        text = clean_text("text", memory.text, max_chars).strip()
        if not text:
            raise StoreError("memory text is empty")
        if not memory.memory_id:
            raise StoreError("memory_id is empty")
        if memory.end < memory.start:
            raise StoreError(f"memory ends ({memory.end}) before it starts ({memory.start})")
        if memory.kind not in KINDS:
            raise StoreError(f"memory kind {memory.kind!r} is not one of {', '.join(KINDS)}")
        if memory.pose is not None and (len(memory.pose) != 7 or not all(np.isfinite(memory.pose))):
            raise StoreError("pose must be 7 finite numbers (x, y, z, qx, qy, qz, qw)")
        entities = [clean_text("entity id", e, MAX_ID_CHARS) for e in memory.entity_ids]
        return {
            "memory_id": memory.memory_id, "clip_id": memory.clip_id, "start_time": memory.start,
            "end_time": memory.end, "text": text, "entity_ids": json.dumps(entities),
            "raw_output": memory.raw_output.replace("\x00", "")[:MAX_RAW_OUTPUT_CHARS],
            "model_version": clean_text("model_version", memory.model_version, MAX_ID_CHARS),
            "adapter_version": clean_text("adapter_version", memory.adapter_version, MAX_ID_CHARS),
            "generation_seconds": memory.generation_seconds, "created_at": memory.created_at,
            "frame_id": clean_text("frame_id", memory.frame_id, MAX_ID_CHARS),
            "pose": None if memory.pose is None else json.dumps([float(x) for x in memory.pose]),
            "kind": memory.kind,
        }

    def _insert_memory(self, row: dict) -> bool:
        """Insert one validated row, its entities and its clip; the caller holds the write transaction."""
        cursor = self.db.execute(
            f"INSERT OR IGNORE INTO memories ({', '.join(_MEMORY_COLUMNS)}) "
            f"VALUES ({', '.join(':' + c for c in _MEMORY_COLUMNS)})", row)
        if cursor.rowcount != 1:
            return False
        self.db.conn.executemany("INSERT OR IGNORE INTO memory_entities (entity_id, memory_id) VALUES (?, ?)",
                                 [(e, row["memory_id"]) for e in json.loads(row["entity_ids"])])
        if row["kind"] == "clip":
            self.db.execute("INSERT OR IGNORE INTO clips (clip_id, start_time, end_time, frame_id) VALUES (?, ?, ?, ?)",
                            (row["clip_id"], row["start_time"], row["end_time"], row["frame_id"]))
        return True

    def replace_memories(self, replacement: MemoryRecord, replaced_ids: Sequence[str]) -> int:
        """Write `replacement` (a merge or summary) in place of `replaced_ids`, recording provenance. A
        replaced memory that a logged answer cites is kept (marked `replaced_by`); the others are deleted.
        Returns the payload bytes this freed (see `payload_bytes`)."""
        row = self._memory_row(replacement, MAX_SUMMARY_CHARS)
        ids_json = json.dumps(list(replaced_ids))
        with self.write():
            freed = self.db.execute(
                "SELECT coalesce(sum(length(CAST(m.text AS BLOB)) + length(CAST(m.raw_output AS BLOB)) "
                "+ coalesce(length(v.embedding), 0)), 0) FROM memories m "
                "LEFT JOIN memory_vectors v ON v.memory_rowid = m.id "
                "WHERE m.memory_id IN (SELECT value FROM json_each(?)) AND m.replaced_by IS NULL",
                (ids_json,)).fetchone()[0]
            if not self._insert_memory(row):
                raise StoreError(f"memory {replacement.memory_id!r} already exists")
            self.db.execute(
                "INSERT OR IGNORE INTO provenance (summary_id, replaced_id, replaced_clip_id, replaced_start, "
                "replaced_end) SELECT ?, memory_id, clip_id, start_time, end_time FROM memories "
                "WHERE memory_id IN (SELECT value FROM json_each(?))", (replacement.memory_id, ids_json))
            rowids = [r[0] for r in self.db.execute(
                "SELECT id FROM memories WHERE memory_id IN (SELECT value FROM json_each(?))", (ids_json,))]
            self.vectors.delete(rowids)
            self.db.execute(
                "UPDATE memories SET replaced_by = ? WHERE memory_id IN (SELECT value FROM json_each(?)) "
                "AND memory_id IN (SELECT memory_id FROM answer_memories)", (replacement.memory_id, ids_json))
            self.db.execute(
                "DELETE FROM memory_entities WHERE memory_id IN (SELECT value FROM json_each(?)) "
                "AND memory_id NOT IN (SELECT memory_id FROM answer_memories)", (ids_json,))
            self.db.execute(
                "DELETE FROM memories WHERE memory_id IN (SELECT value FROM json_each(?)) "
                "AND memory_id NOT IN (SELECT memory_id FROM answer_memories)", (ids_json,))
        return int(freed) - len(row["text"].encode()) - len(row["raw_output"].encode())

    def restore_memory(self, memory: MemoryRecord, *, replaced_by: str | None = None,
                       replaces: Sequence[dict] = ()) -> bool:
        """Insert a memory as exported, with the merge or summary that replaced it and, for a merge or
        summary, the provenance of what it replaced (dicts of memory_id, clip_id, start, end). False when
        its id is already stored."""
        row = self._memory_row(memory, MAX_SUMMARY_CHARS)
        provenance = [(memory.memory_id, clean_text("replaced id", r["memory_id"], MAX_ID_CHARS),
                       clean_text("replaced clip id", r["clip_id"], MAX_ID_CHARS), float(r["start"]), float(r["end"]))
                      for r in replaces]
        with self.write():
            if not self._insert_memory(row):
                return False
            if replaced_by is not None:
                self.db.execute("UPDATE memories SET replaced_by = ? WHERE memory_id = ?",
                                (clean_text("replaced_by", replaced_by, MAX_ID_CHARS), memory.memory_id))
            self.db.conn.executemany("INSERT OR IGNORE INTO provenance (summary_id, replaced_id, replaced_clip_id, "
                                     "replaced_start, replaced_end) VALUES (?, ?, ?, ?, ?)", provenance)
        return True

    def provenance_rows(self, summary_id: str) -> list[dict]:
        """What a merge or summary replaced: memory_id, clip_id, start, end, in time order."""
        rows = self._read("SELECT replaced_id, replaced_clip_id, replaced_start, replaced_end FROM provenance "
                          "WHERE summary_id = ? ORDER BY replaced_start, replaced_id", (summary_id,))
        return [{"memory_id": r[0], "clip_id": r[1], "start": r[2], "end": r[3]} for r in rows]

    def replacement_of(self, memory_id: str) -> str | None:
        """`replaced_by` of a memory kept after a merge or summary replaced it (it is cited), else None."""
        rows = self._read("SELECT replaced_by FROM memories WHERE memory_id = ?", (memory_id,))
        return rows[0][0] if rows else None

    def add_rejected(self, attempt: RejectedRecord) -> bool:
        """Keep a rejected model output for audit; False when already stored."""
        clean_text("attempt_id", attempt.attempt_id, MAX_ID_CHARS)
        clean_text("clip_id", attempt.clip_id, MAX_ID_CHARS)
        row = asdict(attempt)
        row["start_time"], row["end_time"] = row.pop("start"), row.pop("end")
        row["raw_output"] = attempt.raw_output.replace("\x00", "")[:MAX_RAW_OUTPUT_CHARS]
        row["reason"] = attempt.reason.replace("\x00", "")[:1000]
        columns = ", ".join(row)
        with self.write():
            cursor = self.db.execute(
                f"INSERT OR IGNORE INTO rejected ({columns}) VALUES ({', '.join(':' + c for c in row)})", row)
        return cursor.rowcount == 1

    def log_task(self, task: TaskLogRecord) -> None:
        """Record a task, its answer and the memories the answer cites (replacing an earlier record of the id)."""
        clean_text("task_id", task.task_id, MAX_ID_CHARS)
        question = clean_text("question", task.question, MAX_QUERY_CHARS)
        options = [clean_text("option", o, MAX_QUERY_CHARS) for o in task.options]
        answer = clean_text("answer", task.answer, MAX_QUERY_CHARS)
        cited = [clean_text("memory id", m, MAX_ID_CHARS) for m in task.memory_ids]
        with self.write():
            self.db.execute("INSERT OR REPLACE INTO tasks (task_id, question, task_type, options, asked_at) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (task.task_id, question, task.task_type, json.dumps(options), task.asked_at))
            self.db.execute("INSERT OR REPLACE INTO answers (task_id, answered, answer, option_index, answerer) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (task.task_id, int(task.answered), answer, task.option_index, task.answerer))
            self.db.execute("DELETE FROM answer_memories WHERE task_id = ?", (task.task_id,))
            self.db.conn.executemany("INSERT OR IGNORE INTO answer_memories (memory_id, task_id, position) "
                                     "VALUES (?, ?, ?)", [(m, task.task_id, i) for i, m in enumerate(cited)])

    def add_adapter(self, version: str, path: str, base_model_version: str, task_types: Sequence[str],
                    released_at: float | None = None) -> None:
        """Record a released steering adapter (replacing an earlier record of the same version)."""
        row = (clean_text("adapter version", version, MAX_ID_CHARS), clean_text("adapter path", path, 4096),
               clean_text("base model version", base_model_version, MAX_ID_CHARS),
               json.dumps([clean_text("task type", t, MAX_ID_CHARS) for t in task_types]),
               time.time() if released_at is None else released_at)
        with self.write():
            self.db.execute("INSERT OR REPLACE INTO adapters (adapter_version, path, base_model_version, task_types, "
                            "released_at) VALUES (?, ?, ?, ?, ?)", row)

    # --- embeddings ---
    def pending_embeddings(self, limit: int = 64) -> list[tuple[int, str]]:
        """(row id, text) of memories written but not embedded yet, oldest first."""
        return self._read("SELECT id, text FROM memories WHERE embedded = 0 AND replaced_by IS NULL "
                          "ORDER BY id LIMIT ?", (limit,))

    def store_embeddings(self, rowids: Sequence[int], vectors: np.ndarray, model: str) -> int:
        """Store embeddings of memories by row id (those deleted meanwhile are skipped); returns how many.
        All vectors in one store come from one model: another model's are refused."""
        with self.write():
            stored = self._read("SELECT value FROM store_meta WHERE key = 'embedding_model'")
            if stored and stored[0][0] != model:
                raise StoreError(f"this store's vectors come from {stored[0][0]!r}, not {model!r}; "
                                 "re-embed with `taskmem memories embed --reset`")
            if not stored:
                self.db.execute("INSERT INTO store_meta (key, value) VALUES ('embedding_model', ?)", (model,))
            by_id = dict(zip((int(r) for r in rowids), np.asarray(vectors, dtype=np.float32)))
            rows = self.db.execute(
                "SELECT id, start_time, end_time FROM memories WHERE id IN (SELECT value FROM json_each(?)) "
                "AND replaced_by IS NULL", (json.dumps(list(by_id)),)).fetchall()
            if rows:
                self.vectors.add(rows, np.stack([by_id[r[0]] for r in rows]))
                self.db.execute("UPDATE memories SET embedded = 1 WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps([r[0] for r in rows]),))
        return len(rows)

    def reset_embeddings(self) -> None:
        """Forget every vector and the lists (before re-embedding with another model)."""
        with self.write():
            for sql in ("DELETE FROM memory_vectors", "DELETE FROM vector_lists", "UPDATE memories SET embedded = 0",
                        "DELETE FROM store_meta WHERE key IN ('embedding_model', 'vector_lists_trained_rows')"):
                self.db.execute(sql)
        self.vectors.reload()

    def embedding_model(self) -> str:
        rows = self._read("SELECT value FROM store_meta WHERE key = 'embedding_model'")
        return rows[0][0] if rows else ""

    # --- recall ---
    def recall(self, query: str, *, k: int = 8, start: float | None = None, end: float | None = None,
               embed: Callable[[str], np.ndarray] | None = None, **options) -> list[tuple[MemoryRecord, float]]:
        """Best (memory, score) for free text, best first; see `search` and `RecallQuery` for the options."""
        return self.search(RecallQuery(text=query, k=k, start=start, end=end, **options), embed=embed).hits

    def search(self, query: RecallQuery, *, embed: Callable[[str], np.ndarray] | None = None) -> RecallResult:
        """Hybrid recall: BM25 over the text and cosine over the embeddings (if `embed` is given), fused by
        reciprocal rank, plus closeness to `query.around`; filters apply to every list. Memories not embedded
        yet are found by their text alone. With neither text nor `around`: the most recent memories."""
        self._check_query(query)
        result = RecallResult()
        where, params = self._filter_sql(query)
        rankings: list[list[tuple[int, float]]] = []
        candidates = query.k * CANDIDATES_PER_LIST if query.mode == "hybrid" else query.k
        has_text = query.text.strip() and (query.syntax == "fts" or query_terms(query.text))
        vector_notes: list[str] = []
        vectors = None
        if has_text and query.mode in ("hybrid", "vector"):
            vectors = self._vector_pool.submit(self._vector_ranking, query, embed, candidates, vector_notes)
        try:
            if has_text and query.mode in ("hybrid", "text"):
                rankings.append(self._text_ranking(query, where, params, candidates, result.notes))
        finally:
            ranked = vectors.result() if vectors is not None else None
        result.notes.extend(vector_notes)
        if ranked is not None:
            rankings.append(ranked)
        if query.around is not None:
            rankings.append([(r[0], -r[1]) for r in self._read(
                f"SELECT m.id, abs((m.start_time + m.end_time) / 2 - ?) AS distance FROM memories m WHERE {where} "
                "ORDER BY distance LIMIT ?", [query.around, *params, candidates])])
        if not rankings:
            if has_text:
                return result  # vector-only recall without vectors: the note says why
            ranked = self._read(f"SELECT m.id FROM memories m WHERE {where} ORDER BY m.start_time DESC LIMIT ?",
                                [*params, query.k])
            fused = [(r[0], 0.0) for r in ranked]
        elif len(rankings) == 1:
            fused = rankings[0][:query.k]  # one list: its own scores (BM25, cosine or -seconds from `around`)
        else:
            fused = reciprocal_rank_fusion([[rowid for rowid, _ in ranked] for ranked in rankings], query.k)
        memories = self._memories_by_rowid([rowid for rowid, _ in fused])
        result.hits = [(memories[rowid], score) for rowid, score in fused if rowid in memories]
        return result

    @staticmethod
    def _check_query(query: RecallQuery) -> None:
        clean_text("query", query.text, MAX_QUERY_CHARS)
        if query.k <= 0:
            raise StoreError("k must be positive")
        if query.mode not in MODES:
            raise StoreError(f"recall mode {query.mode!r} is not one of {', '.join(MODES)}")
        if query.syntax not in SYNTAXES:
            raise StoreError(f"query syntax {query.syntax!r} is not one of {', '.join(SYNTAXES)}")
        if query.around is not None and not query.around_seconds > 0:
            raise StoreError("around_seconds must be positive")
        for entity in query.entity_ids:
            clean_text("entity id", entity, MAX_ID_CHARS)

    @staticmethod
    def _filter_sql(query: RecallQuery) -> tuple[str, list]:
        """SQL over memories `m` for the query's filters, and its parameters."""
        clauses, params = ["1"], []
        start, end = query.window()
        if start is not None:
            clauses.append("m.end_time >= ?")
            params.append(start)
        if end is not None:
            clauses.append("m.start_time <= ?")
            params.append(end)
        if query.entity_ids:
            clauses.append("m.memory_id IN (SELECT memory_id FROM memory_entities WHERE entity_id IN "
                           "(SELECT value FROM json_each(?)))")
            params.append(json.dumps(list(query.entity_ids)))
        if query.task_type:
            clauses.append("m.adapter_version IN (SELECT a.adapter_version FROM adapters a, "
                           "json_each(a.task_types) t WHERE t.value = ?)")
            params.append(query.task_type)
        if not query.include_replaced:
            clauses.append("m.replaced_by IS NULL")
        return " AND ".join(clauses), params

    def _text_ranking(self, query: RecallQuery, where: str, params: list, limit: int,
                      notes: list[str]) -> list[tuple[int, float]]:
        """(row id, BM25 score) best first. Free text becomes quoted terms. In a large store the very common
        terms are dropped, and the work is bounded: if the terms would match more than MAX_SCORED_MATCHES
        memories (scoring costs ~1 us each), terms absent from the latest memories (rare, so cheap) are
        matched everywhere first, then memories with all the others, then those with the rarest, each
        within the latest memories that keep the matches scored and postings walked within bounds."""
        filtered = query.window() != (None, None) or bool(query.entity_ids or query.task_type)
        if query.syntax == "fts":
            return self._bm25(query.text, where, params, limit, filtered, user_query=query.text)
        terms, frequency = self._useful_terms(query_terms(query.text), notes)
        if not frequency or sum(frequency.values()) <= MAX_SCORED_MATCHES:
            return self._bm25(_any(terms), where, params, limit, filtered)
        seen = sorted((t for t in terms if frequency[t]), key=frequency.get)
        unseen = [t for t in terms if not frequency[t]]
        ranked = self._bm25(_any(unseen), where, params, limit, filtered) if unseen else []
        if len(seen) > 1 and len(ranked) < limit:
            total = self._approximate_count()
            both = total * float(np.prod([frequency[t] / total for t in seen]))
            walked = sum(frequency[t] for t in seen) * MAX_SCORED_MATCHES / MAX_WALKED_POSTINGS
            more = self._bm25(" AND ".join(f'"{t}"' for t in seen), where, params, limit, filtered,
                              after=self._recent_start(max(both, walked), f"all of {seen}", notes))
            ranked = _append_new(ranked, more, limit)
        if len(ranked) < limit:
            rare, matches = [], 0
            for term in seen:
                if rare and matches + frequency[term] > MAX_SCORED_MATCHES:
                    break
                rare.append(term)
                matches += frequency[term]
            more = self._bm25(_any(rare), where, params, limit, filtered,
                              after=self._recent_start(matches, f"any of {rare}", notes))
            ranked = _append_new(ranked, more, limit)
        return ranked

    def _recent_start(self, cost: float, what: str, notes: list[str]) -> int:
        """Row id after which the latest memories lie that hold MAX_SCORED_MATCHES of `cost` (matches, or
        their equivalent in postings walked, spread over the store); 0 when all fit."""
        if cost <= MAX_SCORED_MATCHES:
            return 0
        recent = round(self._approximate_count() * MAX_SCORED_MATCHES / cost)
        notes.append(f"{what}: ranked within the latest {recent} memories")
        return self._last_rowid() - recent

    def _bm25(self, match: str, where: str, params: list, limit: int, filtered: bool, *, after: int = 0,
              user_query: str | None = None) -> list[tuple[int, float]]:
        """Best `limit` memories (with row id > `after`) for an FTS5 expression. Unfiltered, the ranking reads
        the full-text index alone (joining every match to its memory row would cost more than scoring it)
        and drops replaced memories afterwards."""
        if filtered:
            sql = ("SELECT m.id, -bm25(memories_fts) AS score FROM memories_fts "
                   f"JOIN memories m ON m.id = memories_fts.rowid WHERE memories_fts MATCH ? "
                   f"AND memories_fts.rowid > ? AND {where} ORDER BY score DESC, m.id DESC LIMIT ?")
            args = [match, after, *params, limit]
        else:
            sql = ("SELECT rowid, -bm25(memories_fts) AS score FROM memories_fts WHERE memories_fts MATCH ? "
                   "AND rowid > ? ORDER BY score DESC, rowid DESC LIMIT ?")
            args = [match, after, limit + REPLACED_SLACK]
        try:
            ranked = [(r[0], float(r[1])) for r in self._read(sql, args)]
        except sqlite_utils.db.sqlite3.OperationalError as err:
            if user_query is not None and not any(w in str(err) for w in ("locked", "busy", "disk", "memory")):
                raise StoreError(f"full-text query {user_query[:200]!r} is not valid FTS5 syntax ({err}); "
                                 "quote phrases, or search with plain words") from None
            raise
        if filtered or not ranked or "replaced_by IS NULL" not in where:
            return ranked[:limit]
        replaced = {r[0] for r in self._read("SELECT id FROM memories WHERE id IN (SELECT value FROM json_each(?)) "
                                             "AND replaced_by IS NOT NULL", (json.dumps([r for r, _ in ranked]),))}
        return [hit for hit in ranked if hit[0] not in replaced][:limit]

    def _approximate_count(self) -> int:
        """Memories in the store, recounted (a count reads a whole index) every COUNT_SECONDS or when the
        newest row id has moved by more than a tenth of the count."""
        self._refresh_counts()
        return self._count

    def _last_rowid(self) -> int:
        self._refresh_counts()
        return self._last_id

    def _refresh_counts(self) -> None:
        last = self._read("SELECT coalesce(max(id), 0) FROM memories")[0][0]  # the key's last entry: cheap
        now = time.monotonic()
        if now - self._counted_at > COUNT_SECONDS or abs(last - self._counted_last) > 0.1 * self._count:
            self._count = max(1, self._read("SELECT count(*) FROM memories")[0][0])
            self._counted_at, self._counted_last = now, last
            self._frequencies.clear()
        self._last_id = last

    def _document_frequencies(self, terms: list[str]) -> dict[str, int]:
        """Memories containing each term, estimated from the latest DF_SAMPLE_ROWS memories (bounded cost)
        and kept for COUNT_SECONDS."""
        total, last = self._approximate_count(), self._last_rowid()
        sample = min(DF_SAMPLE_ROWS, total)
        for term in terms:
            if term not in self._frequencies:
                found = self._read("SELECT count(*) FROM memories_fts WHERE memories_fts MATCH ? AND rowid > ?",
                                   (f'"{term}"', last - DF_SAMPLE_ROWS))[0][0]
                self._frequencies[term] = round(found * total / sample)
        return {t: self._frequencies[t] for t in terms}

    def _useful_terms(self, terms: list[str], notes: list[str]) -> tuple[list[str], dict[str, int]]:
        """Terms without the very common ones (if all are common: the rarest), and each term's document
        count ({} in a small store, where every term is simply scored)."""
        total = self._approximate_count()
        if total < PRUNE_FROM_ROWS:
            return terms, {}
        frequency = self._document_frequencies(terms)
        useful = [t for t in terms if frequency[t] <= COMMON_TERM_SHARE * total]
        if not useful:
            useful = [min(terms, key=frequency.get)]
        if len(useful) < len(terms):
            notes.append(f"ignored common terms {[t for t in terms if t not in useful]}")
        return useful, {t: frequency[t] for t in useful}

    def _vector_ranking(self, query: RecallQuery, embed, limit: int, notes: list[str]
                        ) -> list[tuple[int, float]] | None:
        if self.vector_problem:
            notes.append(self.vector_problem)
            return None
        if embed is None:
            notes.append("no embedder: text-only recall")
            return None
        if not self._vector_read("SELECT 1 FROM memory_vectors LIMIT 1"):
            notes.append("no memory is embedded yet: text-only recall")
            return None
        pending = self._vector_read("SELECT count(*) FROM memories WHERE embedded = 0 AND replaced_by IS NULL")[0][0]
        if pending:
            notes.append(f"{pending} memories not embedded yet: found by their text alone")
        vector = np.asarray(embed(query.text), dtype=np.float32).reshape(-1)
        where, params = self._filter_sql(query)
        filtered = query.window() != (None, None) or query.entity_ids or query.task_type
        if filtered and self._vector_read(f"SELECT count(*) FROM (SELECT 1 FROM memories m WHERE {where} LIMIT ?)",
                                          [*params, EXACT_LIMIT + 1])[0][0] <= EXACT_LIMIT:
            notes.append("selective filter: exact vector search")
            return self.vectors.search(vector, limit, where=where, params=params, join_memories=True, exact=True,
                                       read=self._vector_read)
        clauses, params = ["1"], []
        start, end = query.window()
        if start is not None:
            clauses.append("v.end_time >= ?")
            params.append(start)
        if end is not None:
            clauses.append("v.start_time <= ?")
            params.append(end)
        join = bool(query.entity_ids or query.task_type)
        if join:
            more, more_params = self._filter_sql(RecallQuery(entity_ids=query.entity_ids, task_type=query.task_type))
            clauses.append(more)
            params.extend(more_params)
        return self.vectors.search(vector, limit, where=" AND ".join(clauses), params=params, join_memories=join,
                                   read=self._vector_read)

    # --- reads ---
    def _memories_by_rowid(self, rowids: Sequence[int]) -> dict[int, MemoryRecord]:
        rows = self._read(f"SELECT id, {', '.join(_MEMORY_COLUMNS)} FROM memories "
                          "WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(list(rowids)),))
        return {row[0]: self._memory(row[1:]) for row in rows}

    def memories(self, *, limit: int | None = None, offset: int = 0, include_replaced: bool = False,
                 start: float | None = None, end: float | None = None) -> list[MemoryRecord]:
        """Memories in time order (by default without those a merge or summary replaced)."""
        where, params = self._filter_sql(RecallQuery(start=start, end=end, include_replaced=include_replaced))
        rows = self._read(f"SELECT {', '.join(_MEMORY_COLUMNS)} FROM memories m WHERE {where} "
                          "ORDER BY start_time, created_at, id LIMIT ? OFFSET ?",
                          [*params, -1 if limit is None else limit, offset])
        return [self._memory(row) for row in rows]

    def iter_memories(self, batch: int = 1000) -> Iterator[MemoryRecord]:
        """Every memory (replaced ones too) in row order, a batch of rows per query (for export)."""
        last = 0
        while True:
            rows = self._read(f"SELECT id, {', '.join(_MEMORY_COLUMNS)} FROM memories WHERE id > ? "
                              "ORDER BY id LIMIT ?", (last, batch))
            if not rows:
                return
            yield from (self._memory(row[1:]) for row in rows)
            last = rows[-1][0]

    def latest_memory(self) -> MemoryRecord | None:
        """The active memory that starts last."""
        rows = self._read(f"SELECT {', '.join(_MEMORY_COLUMNS)} FROM memories WHERE replaced_by IS NULL "
                          "ORDER BY start_time DESC LIMIT 1")
        return self._memory(rows[0]) if rows else None

    def get_memory(self, memory_id: str) -> MemoryRecord | None:
        rows = self._read(f"SELECT {', '.join(_MEMORY_COLUMNS)} FROM memories WHERE memory_id = ?", (memory_id,))
        return self._memory(rows[0]) if rows else None

    def summary_of(self, memory_id: str) -> str | None:
        """The merge or summary whose provenance lists this memory, or None."""
        rows = self._read("SELECT summary_id FROM provenance WHERE replaced_id = ?", (memory_id,))
        return rows[0][0] if rows else None

    def provenance(self, summary_id: str) -> list[str]:
        """Ids of the memories a merge or summary replaced, in time order."""
        return [r["memory_id"] for r in self.provenance_rows(summary_id)]

    def cited_memory_ids(self) -> set[str]:
        return {r[0] for r in self._read("SELECT DISTINCT memory_id FROM answer_memories")}

    def rejected(self) -> list[RejectedRecord]:
        names = ("attempt_id", "clip_id", "start_time", "end_time", "raw_output", "reason", "model_version",
                 "adapter_version", "created_at")
        out = []
        for row in self._read(f"SELECT {', '.join(names)} FROM rejected ORDER BY start_time"):
            data = dict(zip(names, row))
            data["start"], data["end"] = data.pop("start_time"), data.pop("end_time")
            out.append(RejectedRecord(**data))
        return out

    def tasks(self) -> Iterator[TaskLogRecord]:
        # the cited memories grouped in one pass (answer_memories is keyed by memory: a per-task subquery would
        # scan it once per task)
        rows = self._read(
            "SELECT t.task_id, t.question, t.task_type, t.options, t.asked_at, a.answered, a.answer, a.option_index, "
            "a.answerer, coalesce(c.ids, '[]') FROM tasks t LEFT JOIN answers a ON a.task_id = t.task_id "
            "LEFT JOIN (SELECT task_id, json_group_array(memory_id ORDER BY position) AS ids FROM answer_memories "
            "GROUP BY task_id) c ON c.task_id = t.task_id ORDER BY t.asked_at")
        for task_id, question, task_type, options, asked_at, answered, answer, index, answerer, cited in rows:
            yield TaskLogRecord(task_id, question, asked_at, task_type or "", tuple(json.loads(options or "[]")),
                                bool(answered), answer or "", -1 if index is None else index,
                                tuple(json.loads(cited)), answerer or "")

    def task_counts(self) -> dict[str, int]:
        """Logged tasks per task type (untyped tasks not counted), from the type index without reading a task."""
        return dict(self._read("SELECT task_type, count(*) FROM tasks WHERE task_type != '' GROUP BY task_type"))

    def adapters(self) -> list[dict]:
        names = ("adapter_version", "path", "base_model_version", "task_types", "released_at")
        rows = self._read(f"SELECT {', '.join(names)} FROM adapters ORDER BY released_at")
        return [{**dict(zip(names, r)), "task_types": json.loads(r[3])} for r in rows]

    def counts(self) -> dict[str, int]:
        tables = ("memories", "clips", "rejected", "tasks", "answers", "adapters", "provenance", "memory_vectors")
        out = {t: self._read(f"SELECT count(*) FROM {t}")[0][0] for t in tables}
        replaced = self._read("SELECT count(*) FROM memories WHERE replaced_by IS NOT NULL")[0][0]  # partial index
        out["active_memories"] = out["memories"] - replaced
        out["pending_embeddings"] = self._read("SELECT count(*) FROM memories WHERE embedded = 0 "
                                               "AND replaced_by IS NULL")[0][0]
        return out

    def payload_bytes(self) -> int:
        """Bytes of the active memories' text, raw output and vectors: what the retention budget counts
        (the file itself only shrinks on VACUUM; freed pages are reused)."""
        text = self._read("SELECT coalesce(sum(length(CAST(text AS BLOB)) + length(CAST(raw_output AS BLOB))), 0) "
                          "FROM memories WHERE replaced_by IS NULL")[0][0]
        vectors = self._read("SELECT coalesce(sum(length(embedding)), 0) FROM memory_vectors")[0][0]
        return int(text + vectors)

    def size_bytes(self) -> int:
        """Database file plus its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def integrity_check(self) -> str:
        return self._read("PRAGMA integrity_check")[0][0]

    @staticmethod
    def _memory(row: Sequence) -> MemoryRecord:
        data = dict(zip(_MEMORY_COLUMNS, row))
        return MemoryRecord(
            memory_id=data["memory_id"], clip_id=data["clip_id"], start=data["start_time"], end=data["end_time"],
            text=data["text"], entity_ids=tuple(json.loads(data["entity_ids"] or "[]")),
            raw_output=data["raw_output"], model_version=data["model_version"],
            adapter_version=data["adapter_version"], generation_seconds=data["generation_seconds"],
            created_at=data["created_at"], frame_id=data["frame_id"],
            pose=None if data["pose"] is None else tuple(json.loads(data["pose"])), kind=data["kind"],
        )


def _any(terms: Sequence[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


def _append_new(ranked: list[tuple[int, float]], more: list[tuple[int, float]], limit: int) -> list[tuple[int, float]]:
    have = {rowid for rowid, _ in ranked}
    return ranked + [hit for hit in more if hit[0] not in have][:limit - len(ranked)]
