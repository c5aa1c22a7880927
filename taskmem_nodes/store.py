"""The memory store: one SQLite file (sqlite-utils, WAL) holding memories, clips, rejected outputs and tasks.

Only the store node writes; any number of processes may read. Every write is its own committed
transaction with `synchronous=FULL`, so a memory acknowledged here survives a killed process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import sqlite_utils

from taskmem_nodes.policy import MAX_DESCRIPTION_CHARS, MAX_RAW_OUTPUT_CHARS
from taskmem_nodes.records import MemoryRecord, RejectedRecord, TaskLogRecord

SCHEMA_VERSION = 1
MAX_QUERY_CHARS = 4000
MAX_QUERY_TERMS = 32
MAX_ID_CHARS = 256

STOPWORDS = frozenset([
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "his", "how", "i", "in", "is", "it", "its", "of", "on", "or", "she", "that", "the", "their",
    "them", "then", "there", "they", "this", "to", "was", "were", "what", "when", "where", "which", "who",
    "whom", "why", "will", "with", "you",
])


class StoreError(ValueError):
    """A record or query the store refuses; the message says why."""


def query_terms(text: str) -> list[str]:
    """Lower-case word terms of free text, stop words removed: safe to hand to FTS5 quoted."""
    words = re.findall(r"\w+", text.lower())
    return list(dict.fromkeys(w for w in words if w not in STOPWORDS))[:MAX_QUERY_TERMS]


def _check_text(name: str, value: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise StoreError(f"{name} must be text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise StoreError(f"{name} has {len(value)} characters, more than {max_chars}")
    if "\x00" in value:
        raise StoreError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise StoreError(f"{name} is not valid Unicode text: {err.reason}") from None
    return value


class MemoryStore:
    """Memories, clips, rejected outputs and tasks in one SQLite file."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path).expanduser()
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no memory database at {self.path}")
            conn = sqlite_utils.db.sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA busy_timeout=5000")
        if not readonly:
            self._migrate()

    def close(self) -> None:
        self.db.close()

    # --- schema ---
    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}; this TaskMem knows up to {SCHEMA_VERSION}")
        if version == 0:
            with self.db.conn:
                self._create_v1()
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _create_v1(self) -> None:
        db = self.db
        db["memories"].create(
            {
                "memory_id": str, "clip_id": str, "start_time": float, "end_time": float, "text": str,
                "entity_ids": str, "raw_output": str, "model_version": str, "adapter_version": str,
                "generation_seconds": float, "created_at": float,
            },
            pk="memory_id", not_null={"clip_id", "start_time", "end_time", "text"},
        )
        db["memories"].create_index(["start_time"])
        db["memories"].enable_fts(["text"], create_triggers=True, tokenize="porter unicode61")
        db["clips"].create({"clip_id": str, "start_time": float, "end_time": float}, pk="clip_id")
        db["rejected"].create(
            {
                "attempt_id": str, "clip_id": str, "start_time": float, "end_time": float, "raw_output": str,
                "reason": str, "model_version": str, "adapter_version": str, "created_at": float,
            },
            pk="attempt_id",
        )
        db["tasks"].create(
            {
                "task_id": str, "question": str, "task_type": str, "options": str, "asked_at": float,
                "answered": int, "answer": str, "option_index": int, "memory_ids": str, "answerer": str,
            },
            pk="task_id",
        )
        db["tasks"].create_index(["task_type", "asked_at"])

    # --- writes ---
    def add_memory(self, memory: MemoryRecord) -> bool:
        """Insert a memory; False when its id is already stored (re-delivery is harmless)."""
        _check_text("memory_id", memory.memory_id, MAX_ID_CHARS)
        _check_text("clip_id", memory.clip_id, MAX_ID_CHARS)
        text = _check_text("text", memory.text, MAX_DESCRIPTION_CHARS).strip()
        if not text:
            raise StoreError("memory text is empty")
        if not memory.memory_id:
            raise StoreError("memory_id is empty")
        if memory.end < memory.start:
            raise StoreError(f"memory ends ({memory.end}) before it starts ({memory.start})")
        row = {
            "memory_id": memory.memory_id, "clip_id": memory.clip_id, "start_time": memory.start,
            "end_time": memory.end, "text": text, "entity_ids": json.dumps(list(memory.entity_ids)),
            "raw_output": memory.raw_output[:MAX_RAW_OUTPUT_CHARS], "model_version": memory.model_version,
            "adapter_version": memory.adapter_version, "generation_seconds": memory.generation_seconds,
            "created_at": memory.created_at,
        }
        return self._insert_new("memories", row)

    def add_rejected(self, attempt: RejectedRecord) -> bool:
        """Keep a rejected model output for audit; False when already stored."""
        _check_text("attempt_id", attempt.attempt_id, MAX_ID_CHARS)
        _check_text("clip_id", attempt.clip_id, MAX_ID_CHARS)
        row = asdict(attempt)
        row["start_time"], row["end_time"] = row.pop("start"), row.pop("end")
        row["raw_output"] = attempt.raw_output.replace("\x00", "")[:MAX_RAW_OUTPUT_CHARS]
        row["reason"] = attempt.reason[:1000]
        return self._insert_new("rejected", row)

    def _insert_new(self, table: str, row: dict) -> bool:
        """Insert `row` into `table` (a memory or a rejected attempt) and its clip, in one transaction;
        False when a row with the same id is already stored."""
        columns = ", ".join(row)
        placeholders = ", ".join(f":{name}" for name in row)
        with self.db.conn:
            cursor = self.db.execute(f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})", row)
            self.db.execute(
                "INSERT OR IGNORE INTO clips (clip_id, start_time, end_time) VALUES (?, ?, ?)",
                (row["clip_id"], row["start_time"], row["end_time"]),
            )
        return cursor.rowcount == 1

    def log_task(self, task: TaskLogRecord) -> None:
        """Record a task and its answer (replacing an earlier record with the same id)."""
        _check_text("task_id", task.task_id, MAX_ID_CHARS)
        _check_text("question", task.question, MAX_QUERY_CHARS)
        for option in task.options:
            _check_text("option", option, MAX_QUERY_CHARS)
        row = {
            "task_id": task.task_id, "question": task.question, "task_type": task.task_type,
            "options": json.dumps(list(task.options)), "asked_at": task.asked_at, "answered": int(task.answered),
            "answer": _check_text("answer", task.answer, MAX_QUERY_CHARS), "option_index": task.option_index,
            "memory_ids": json.dumps(list(task.memory_ids)), "answerer": task.answerer,
        }
        with self.db.conn:
            self.db["tasks"].insert(row, pk="task_id", replace=True)

    # --- reads ---
    def recall(
        self, query: str, *, k: int = 8, start: float | None = None, end: float | None = None
    ) -> list[tuple[MemoryRecord, float]]:
        """Best memories for `query` by BM25 (higher score is better), within the optional time window.

        Free text is reduced to quoted word terms, so FTS syntax in user text can never break the query.
        An empty query (or one of stop words only) returns the most recent memories with score 0.
        """
        _check_text("query", query, MAX_QUERY_CHARS)
        if k <= 0:
            raise StoreError("k must be positive")
        where, params = self._window_clause(start, end)
        terms = query_terms(query)
        if not terms:
            rows = self.db.execute(
                f"SELECT * FROM memories m WHERE {where} ORDER BY start_time DESC LIMIT ?", [*params, k]
            ).fetchall()
            return [(self._memory(row, self._columns("memories")), 0.0) for row in rows]
        match = " OR ".join(f'"{t}"' for t in terms)
        cursor = self.db.execute(
            "SELECT m.*, -bm25(memories_fts) AS score FROM memories_fts "
            "JOIN memories m ON m.rowid = memories_fts.rowid "
            f"WHERE memories_fts MATCH ? AND {where} ORDER BY score DESC, m.start_time DESC LIMIT ?",
            [match, *params, k],
        )
        names = [d[0] for d in cursor.description]
        return [(self._memory(row, names), float(row[-1])) for row in cursor.fetchall()]

    @staticmethod
    def _window_clause(start: float | None, end: float | None) -> tuple[str, list[float]]:
        clauses, params = ["1"], []
        if start is not None:
            clauses.append("m.end_time >= ?")
            params.append(start)
        if end is not None:
            clauses.append("m.start_time <= ?")
            params.append(end)
        return " AND ".join(clauses), params

    def memories(self, *, limit: int | None = None, offset: int = 0) -> list[MemoryRecord]:
        """Memories in time order."""
        sql = "SELECT * FROM memories ORDER BY start_time, created_at LIMIT ? OFFSET ?"
        rows = self.db.execute(sql, (-1 if limit is None else limit, offset)).fetchall()
        names = self._columns("memories")
        return [self._memory(row, names) for row in rows]

    def get_memory(self, memory_id: str) -> MemoryRecord | None:
        rows = self.db.execute("SELECT * FROM memories WHERE memory_id = ?", (memory_id,)).fetchall()
        return self._memory(rows[0], self._columns("memories")) if rows else None

    def rejected(self) -> list[RejectedRecord]:
        rows = self.db.execute("SELECT * FROM rejected ORDER BY start_time").fetchall()
        names = self._columns("rejected")
        out = []
        for row in rows:
            data = dict(zip(names, row))
            data["start"], data["end"] = data.pop("start_time"), data.pop("end_time")
            out.append(RejectedRecord(**data))
        return out

    def tasks(self) -> Iterator[TaskLogRecord]:
        names = self._columns("tasks")
        for row in self.db.execute("SELECT * FROM tasks ORDER BY asked_at").fetchall():
            data = dict(zip(names, row))
            data["options"] = tuple(json.loads(data["options"]))
            data["memory_ids"] = tuple(json.loads(data["memory_ids"]))
            data["answered"] = bool(data["answered"])
            yield TaskLogRecord(**data)

    def counts(self) -> dict[str, int]:
        tables = ("memories", "clips", "rejected", "tasks")
        return {t: self.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}

    def size_bytes(self) -> int:
        """Database file plus its write-ahead log."""
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def _columns(self, table: str) -> list[str]:
        return [row[1] for row in self.db.execute(f"PRAGMA table_info({table})").fetchall()]

    @staticmethod
    def _memory(row: tuple, names: list[str]) -> MemoryRecord:
        data = dict(zip(names, row))
        return MemoryRecord(
            memory_id=data["memory_id"], clip_id=data["clip_id"], start=data["start_time"], end=data["end_time"],
            text=data["text"], entity_ids=tuple(json.loads(data["entity_ids"] or "[]")),
            raw_output=data["raw_output"] or "", model_version=data["model_version"] or "",
            adapter_version=data["adapter_version"] or "", generation_seconds=data["generation_seconds"] or 0.0,
            created_at=data["created_at"] or 0.0,
        )
