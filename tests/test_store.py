"""The SQLite store: writes, idempotent re-delivery, recall with hostile queries, tasks, reopening."""

import pytest

from taskmem_nodes.records import MemoryRecord, RejectedRecord, TaskLogRecord, render_memories
from taskmem_nodes.store import MemoryStore, StoreError

TEXTS = [
    "A man in a dark coat walks left past the shop.",
    "Two women with shopping bags stand near the door.",
    "A red car parks in front of the shop.",
    "The man in the dark coat comes back and enters the shop.",
]


@pytest.fixture
def store(tmp_path):
    store = MemoryStore(tmp_path / "memory.db")
    for i, text in enumerate(TEXTS):
        store.add_memory(MemoryRecord(f"m{i}", f"clip-{i}", 100.0 + 10 * i, 110.0 + 10 * i, text, model_version="tiny"))
    yield store
    store.close()


def test_add_is_idempotent_and_reopen_keeps_everything(store, tmp_path):
    assert not store.add_memory(MemoryRecord("m0", "clip-0", 100.0, 110.0, "duplicate delivery"))
    assert store.get_memory("m0").text == TEXTS[0]
    store.close()
    reopened = MemoryStore(tmp_path / "memory.db")
    assert [m.memory_id for m in reopened.memories()] == ["m0", "m1", "m2", "m3"]
    assert reopened.counts()["clips"] == 4
    assert reopened.integrity_check() == "ok"
    assert reopened.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_recall_ranks_by_text_and_filters_by_time(store):
    hits = store.recall("man dark coat", k=4)
    assert [m.memory_id for m, _ in hits][:2] in (["m0", "m3"], ["m3", "m0"])
    assert hits[0][1] >= hits[-1][1]
    in_window = store.recall("man dark coat", start=125.0, end=200.0)
    assert [m.memory_id for m, _ in in_window] == ["m3"]
    assert store.recall("giraffe") == []


def test_empty_or_stopword_query_returns_recent_memories(store):
    assert [m.memory_id for m, _ in store.recall("", k=2)] == ["m3", "m2"]
    assert [m.memory_id for m, _ in store.recall("what is the", k=1)] == ["m3"]


@pytest.mark.parametrize("query", ['"unbalanced', "shop OR", "NEAR(", "*", "car AND -", "col:value", "'; DROP TABLE"])
def test_fts_syntax_in_user_text_never_breaks_recall(store, query):
    store.recall(query)  # must not raise
    assert store.counts()["memories"] == 4


@pytest.mark.parametrize("record,message", [
    (MemoryRecord("x", "c", 0, 1, ""), "empty"),
    (MemoryRecord("x", "c", 0, 1, "a" * 10_000), "more than"),
    (MemoryRecord("x", "c", 0, 1, "nul\x00byte"), "NUL"),
    (MemoryRecord("x", "c", 0, 1, "bad \ud800 surrogate"), "Unicode"),
    (MemoryRecord("x", "c", 5, 1, "ends before it starts"), "before it starts"),
    (MemoryRecord("", "c", 0, 1, "no id"), "memory_id is empty"),
])
def test_bad_memories_are_refused_with_a_reason(store, record, message):
    with pytest.raises(StoreError, match=message):
        store.add_memory(record)
    assert store.counts()["memories"] == 4


def test_rejected_outputs_and_tasks_are_kept(store):
    store.add_rejected(RejectedRecord("r1", "clip-9", 190.0, 200.0, "garbage \x00 output", "no </think>"))
    assert store.rejected()[0].raw_output == "garbage  output"
    task = TaskLogRecord("t1", "Where did the man go?", 500.0, task_type="location", answered=True,
                         answer="into the shop", memory_ids=("m3", "m1"), answerer="lexical")  # cited order kept
    store.log_task(task)
    assert list(store.tasks()) == [task]
    for i, task_type in enumerate(["count", "location", "", "count"]):
        store.log_task(TaskLogRecord(f"t{i + 2}", "How many cups?", 600.0 + i, task_type=task_type))
    assert store.task_counts() == {"location": 2, "count": 2}  # what the trainer's schedule counts; untyped not
    store.log_task(TaskLogRecord("t9", "Who left?", 700.0, task_type="activity", answered=True, answer="person 2",
                                 memory_ids=("m1", "m4", "m3"), answerer="lexical"))  # shares m1 and m3 with t1
    cited = {t.task_id: t.memory_ids for t in store.tasks()}
    assert cited["t1"] == ("m3", "m1") and cited["t9"] == ("m1", "m4", "m3") and cited["t2"] == ()
    with pytest.raises(StoreError):
        store.recall("x" * 5000)


def test_render_memories_in_paper_format(store):
    text = render_memories(reversed(store.memories()))
    assert text.splitlines()[0] == "00:01:40-00:01:50"
    assert text.index(TEXTS[0]) < text.index(TEXTS[3])


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    MemoryStore(path).db.execute("PRAGMA user_version=99")
    with pytest.raises(StoreError, match="schema version 99"):
        MemoryStore(path)
