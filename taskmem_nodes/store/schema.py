"""The store's schema, its version (`PRAGMA user_version`) and the migrations between versions.

Version 1: memories (keyed by text id, FTS5 on the implicit rowid), clips, rejected outputs, tasks with
their answers inline. Version 2: memories get a stable integer key (VACUUM may renumber an implicit
rowid, which FTS and the vectors point at), frame id and pose, kind (clip | merged | summary),
`replaced_by` and whether it is embedded yet; entity ids get their own table; answers and the memories
they cite move out of tasks; adapters, provenance of merges and summaries, and the vector index tables are added.

Every migration runs inside the caller's one write transaction, so a crash leaves the old version intact.
"""

from __future__ import annotations

SCHEMA_VERSION = 2

MEMORIES_V2 = """
CREATE TABLE memories (
    id INTEGER PRIMARY KEY,
    memory_id TEXT NOT NULL UNIQUE,
    clip_id TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL NOT NULL,
    text TEXT NOT NULL,
    entity_ids TEXT NOT NULL DEFAULT '[]',
    raw_output TEXT NOT NULL DEFAULT '',
    model_version TEXT NOT NULL DEFAULT '',
    adapter_version TEXT NOT NULL DEFAULT '',
    generation_seconds REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL DEFAULT 0,
    frame_id TEXT NOT NULL DEFAULT '',
    pose TEXT,
    kind TEXT NOT NULL DEFAULT 'clip',
    replaced_by TEXT,
    embedded INTEGER NOT NULL DEFAULT 0
)"""

FTS_V2 = [
    "CREATE VIRTUAL TABLE memories_fts USING fts5(text, tokenize='porter unicode61', content='memories', "
    "content_rowid='id')",
    "CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER memories_au AFTER UPDATE OF text ON memories BEGIN "
    "INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO memories_fts (rowid, text) VALUES (new.id, new.text); END",
]

TABLES_NEW_IN_V2 = [
    "CREATE INDEX memories_by_start ON memories (start_time)",
    "CREATE INDEX memories_replaced ON memories (replaced_by) WHERE replaced_by IS NOT NULL",
    "CREATE INDEX memories_unembedded ON memories (id) WHERE embedded = 0",
    "CREATE TABLE memory_entities (entity_id TEXT NOT NULL, memory_id TEXT NOT NULL, "
    "PRIMARY KEY (entity_id, memory_id)) WITHOUT ROWID",
    "CREATE INDEX memory_entities_by_memory ON memory_entities (memory_id)",
    "CREATE TABLE answers (task_id TEXT PRIMARY KEY REFERENCES tasks (task_id), answered INTEGER NOT NULL, "
    "answer TEXT NOT NULL, option_index INTEGER NOT NULL, answerer TEXT NOT NULL)",
    "CREATE TABLE answer_memories (memory_id TEXT NOT NULL, task_id TEXT NOT NULL, position INTEGER NOT NULL, "
    "PRIMARY KEY (memory_id, task_id)) WITHOUT ROWID",
    "CREATE TABLE adapters (adapter_version TEXT PRIMARY KEY, path TEXT NOT NULL, base_model_version TEXT NOT NULL, "
    "task_types TEXT NOT NULL, released_at REAL NOT NULL)",
    "CREATE TABLE provenance (summary_id TEXT NOT NULL, replaced_id TEXT NOT NULL, replaced_clip_id TEXT NOT NULL, "
    "replaced_start REAL NOT NULL, replaced_end REAL NOT NULL, PRIMARY KEY (summary_id, replaced_id)) WITHOUT ROWID",
    "CREATE INDEX provenance_by_replaced ON provenance (replaced_id)",
    # the vector index: int8 embeddings clustered by inverted list (see vectors.py)
    "CREATE TABLE memory_vectors (list_id INTEGER NOT NULL, memory_rowid INTEGER NOT NULL, start_time REAL NOT NULL, "
    "end_time REAL NOT NULL, embedding BLOB NOT NULL, PRIMARY KEY (list_id, memory_rowid)) WITHOUT ROWID",
    "CREATE UNIQUE INDEX memory_vectors_by_memory ON memory_vectors (memory_rowid)",
    "CREATE TABLE vector_lists (list_id INTEGER PRIMARY KEY, centroid BLOB NOT NULL)",
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]


def create_latest(execute) -> None:
    """Create the current schema in an empty database."""
    execute(MEMORIES_V2)
    for sql in FTS_V2:
        execute(sql)
    execute("CREATE TABLE clips (clip_id TEXT PRIMARY KEY, start_time REAL, end_time REAL, "
            "frame_id TEXT NOT NULL DEFAULT '')")
    execute("CREATE TABLE rejected (attempt_id TEXT PRIMARY KEY, clip_id TEXT, start_time REAL, end_time REAL, "
            "raw_output TEXT, reason TEXT, model_version TEXT, adapter_version TEXT, created_at REAL)")
    execute("CREATE TABLE tasks (task_id TEXT PRIMARY KEY, question TEXT, task_type TEXT, options TEXT, "
            "asked_at REAL)")
    execute("CREATE INDEX idx_tasks_task_type_asked_at ON tasks (task_type, asked_at)")
    for sql in TABLES_NEW_IN_V2:
        execute(sql)


def migrate_1_to_2(execute) -> None:
    """Version 1 -> 2, keeping every memory, clip, rejected output, task and answer."""
    for name in ("memories_ai", "memories_ad", "memories_au"):
        execute(f"DROP TRIGGER IF EXISTS {name}")
    execute("DROP TABLE IF EXISTS memories_fts")
    execute("ALTER TABLE memories RENAME TO memories_v1")
    execute("DROP INDEX IF EXISTS idx_memories_start_time")
    execute(MEMORIES_V2)
    execute(
        "INSERT INTO memories (id, memory_id, clip_id, start_time, end_time, text, entity_ids, raw_output, "
        "model_version, adapter_version, generation_seconds, created_at) "
        "SELECT rowid, memory_id, clip_id, start_time, end_time, text, coalesce(entity_ids, '[]'), "
        "coalesce(raw_output, ''), coalesce(model_version, ''), coalesce(adapter_version, ''), "
        "coalesce(generation_seconds, 0), coalesce(created_at, 0) FROM memories_v1 ORDER BY rowid"
    )
    execute("DROP TABLE memories_v1")
    for sql in FTS_V2:
        execute(sql)
    execute("INSERT INTO memories_fts (memories_fts) VALUES ('rebuild')")
    execute("ALTER TABLE clips ADD COLUMN frame_id TEXT NOT NULL DEFAULT ''")
    for sql in TABLES_NEW_IN_V2:
        execute(sql)
    execute("INSERT OR IGNORE INTO memory_entities (entity_id, memory_id) "
            "SELECT j.value, m.memory_id FROM memories m, json_each(m.entity_ids) j")
    execute("INSERT INTO answers (task_id, answered, answer, option_index, answerer) "
            "SELECT task_id, coalesce(answered, 0), coalesce(answer, ''), coalesce(option_index, -1), "
            "coalesce(answerer, '') FROM tasks")
    execute("INSERT OR IGNORE INTO answer_memories (memory_id, task_id, position) "
            "SELECT j.value, t.task_id, j.key FROM tasks t, json_each(coalesce(t.memory_ids, '[]')) j")
    for column in ("answered", "answer", "option_index", "memory_ids", "answerer"):
        execute(f"ALTER TABLE tasks DROP COLUMN {column}")


MIGRATIONS = {1: migrate_1_to_2}
"""Migration from version N to N + 1."""
