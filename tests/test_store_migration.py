"""A schema-1 file (as the first store wrote it) opens, migrates to the current schema, and keeps everything."""

import sqlite3

from taskmem_nodes.store import SCHEMA_VERSION, MemoryStore

# The schema-1 layout exactly as TaskMem's first store created it (sqlite-utils, FTS5 on the implicit rowid).
SCHEMA_1 = """
CREATE TABLE "memories" ("memory_id" TEXT PRIMARY KEY, "clip_id" TEXT NOT NULL, "start_time" REAL NOT NULL,
  "end_time" REAL NOT NULL, "text" TEXT NOT NULL, "entity_ids" TEXT, "raw_output" TEXT, "model_version" TEXT,
  "adapter_version" TEXT, "generation_seconds" REAL, "created_at" REAL);
CREATE INDEX "idx_memories_start_time" ON "memories" ("start_time");
CREATE VIRTUAL TABLE "memories_fts" USING FTS5 ("text", tokenize='porter unicode61', content="memories");
CREATE TRIGGER "memories_ai" AFTER INSERT ON "memories" BEGIN
  INSERT INTO "memories_fts" (rowid, "text") VALUES (new.rowid, new."text"); END;
CREATE TRIGGER "memories_ad" AFTER DELETE ON "memories" BEGIN
  INSERT INTO "memories_fts" ("memories_fts", rowid, "text") VALUES('delete', old.rowid, old."text"); END;
CREATE TRIGGER "memories_au" AFTER UPDATE ON "memories" BEGIN
  INSERT INTO "memories_fts" ("memories_fts", rowid, "text") VALUES('delete', old.rowid, old."text");
  INSERT INTO "memories_fts" (rowid, "text") VALUES (new.rowid, new."text"); END;
CREATE TABLE "clips" ("clip_id" TEXT PRIMARY KEY, "start_time" REAL, "end_time" REAL);
CREATE TABLE "rejected" ("attempt_id" TEXT PRIMARY KEY, "clip_id" TEXT, "start_time" REAL, "end_time" REAL,
  "raw_output" TEXT, "reason" TEXT, "model_version" TEXT, "adapter_version" TEXT, "created_at" REAL);
CREATE TABLE "tasks" ("task_id" TEXT PRIMARY KEY, "question" TEXT, "task_type" TEXT, "options" TEXT,
  "asked_at" REAL, "answered" INTEGER, "answer" TEXT, "option_index" INTEGER, "memory_ids" TEXT, "answerer" TEXT);
CREATE INDEX "idx_tasks_task_type_asked_at" ON "tasks" ("task_type", "asked_at");
PRAGMA user_version=1;
"""


def build_schema_1(path):
    import pysqlite3.dbapi2 as sqlite  # FTS5 as the store uses it

    conn = sqlite.connect(path)
    conn.executescript(SCHEMA_1)
    memories = [("m0", "c0", 0.0, 10.0, "Person 1 puts the red mug on the kitchen table.", '["person_1"]', "raw",
                 "tiny", "", 1.5, 100.0),
                ("m1", "c1", 10.0, 20.0, "The hall is empty.", "[]", "", "tiny", "a1", 1.2, 101.0)]
    conn.executemany("INSERT INTO memories VALUES (?,?,?,?,?,?,?,?,?,?,?)", memories)
    conn.execute("DELETE FROM memories WHERE memory_id = 'm1'")  # leave a gap in the rowids
    conn.execute("INSERT INTO memories VALUES ('m2', 'c2', 20, 30, 'Person 2 carries a box.', '[\"person_2\"]', "
                 "'', 'tiny', '', 1.0, 102)")
    conn.executemany("INSERT INTO clips VALUES (?,?,?)", [("c0", 0.0, 10.0), ("c2", 20.0, 30.0)])
    conn.execute("INSERT INTO rejected VALUES ('r0', 'c9', 90, 100, 'garbage', 'no </think>', 'tiny', '', 103)")
    conn.execute("INSERT INTO tasks VALUES ('t0', 'Where is the red mug?', 'location', '[\"kitchen\", \"hall\"]', "
                 "200, 1, 'kitchen', 0, '[\"m0\"]', 'lexical')")
    conn.commit()
    conn.close()


def schema_of(path):
    conn = sqlite3.connect(path)
    tables = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '%fts%' "
                                "AND name NOT LIKE 'sqlite_%'"):
        tables[name] = [(r[1], r[2].upper(), r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({name})")]
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger') "
                                          "AND name NOT LIKE 'sqlite_%'")}
    conn.close()
    return tables, indexes


def test_schema_1_file_migrates_and_keeps_everything(tmp_path):
    path = tmp_path / "old.db"
    build_schema_1(path)
    store = MemoryStore(path)
    assert store.schema_version() == SCHEMA_VERSION == 2
    assert [m.memory_id for m in store.memories()] == ["m0", "m2"]
    m0 = store.get_memory("m0")
    assert m0.entity_ids == ("person_1",) and m0.raw_output == "raw" and m0.generation_seconds == 1.5
    assert m0.kind == "clip" and m0.pose is None
    assert [m.memory_id for m, _ in store.recall("red mug", mode="text")] == ["m0"]  # FTS rebuilt on the new key
    assert [m.memory_id for m, _ in store.recall("box", entity_ids=("person_2",))] == ["m2"]
    task = next(store.tasks())
    assert task.answered and task.answer == "kitchen" and task.memory_ids == ("m0",) and task.options == (
        "kitchen", "hall")
    assert store.cited_memory_ids() == {"m0"}
    assert store.rejected()[0].reason == "no </think>"
    assert store.counts()["pending_embeddings"] == 2
    assert store.integrity_check() == "ok"
    store.close()
    fresh = tmp_path / "fresh.db"
    MemoryStore(fresh).close()
    assert schema_of(path) == schema_of(fresh)  # migrated and new files have the same tables and indexes


def test_readonly_open_of_an_old_file_asks_for_a_migration(tmp_path):
    import pytest

    from taskmem_nodes.store import StoreError

    path = tmp_path / "old.db"
    build_schema_1(path)
    with pytest.raises(StoreError, match="open it once for writing"):
        MemoryStore(path, readonly=True)


def test_failed_migration_leaves_the_old_file_intact(tmp_path, monkeypatch):
    import pytest

    from taskmem_nodes.store import schema

    path = tmp_path / "old.db"
    build_schema_1(path)

    def broken(execute):
        schema.migrate_1_to_2(execute)
        raise RuntimeError("power cut")

    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)
    with pytest.raises(RuntimeError):
        MemoryStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 2
    assert "answered" in [r[1] for r in conn.execute("PRAGMA table_info(tasks)")]
    conn.close()
