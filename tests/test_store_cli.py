"""`taskmem memories list|search|export|import|stats`: JSONL round-trips, bad lines are reported by number,
hostile text is refused or sanitised with a clear message."""

import json

import pytest
from typer.testing import CliRunner

from taskmem_nodes.cli import app
from taskmem_nodes.records import MemoryRecord, TaskLogRecord
from taskmem_nodes.store import MemoryStore, StoreError
from taskmem_nodes.store.retention import RetentionConfig, apply_retention

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "memory.db"
    store = MemoryStore(path)
    store.add_memories([MemoryRecord(f"m{i}", f"c{i}", 10.0 * i, 10.0 * i + 10,
                                     f"Person {i % 3} carries the red mug past the door.",
                                     entity_ids=(f"person_{i % 3}",), model_version="tiny",
                                     frame_id="map" if i == 0 else "",
                                     pose=(1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0) if i == 0 else None)
                        for i in range(12)])
    store.log_task(TaskLogRecord("t", "who?", 1.0, answered=True, answer="person 1", memory_ids=("m1",)))
    store.add_adapter("count-v2", "/adapters/count-v2.pt", "tiny", ["count"])
    apply_retention(store, RetentionConfig(max_memories=6, merge_similarity=2, keep_recent_seconds=30,
                                           summary_span_seconds=40))
    store.close()
    return path


def test_export_import_export_round_trips(db, tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert runner.invoke(app, ["memories", "export", "--out", str(first), "--db", str(db)]).exit_code == 0
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert {r["kind"] for r in rows} == {"clip", "summary"} and any(r["replaces"] for r in rows)
    assert any(r["replaced_by"] for r in rows)  # the cited memory, kept
    target = tmp_path / "copy.db"
    result = runner.invoke(app, ["memories", "import", str(first), "--db", str(target)])
    assert result.exit_code == 0, result.output
    assert f"imported {len(rows)}" in result.output
    again = runner.invoke(app, ["memories", "import", str(first), "--db", str(target)])
    assert f"already stored {len(rows)}" in again.output
    assert runner.invoke(app, ["memories", "export", "--out", str(second), "--db", str(target)]).exit_code == 0
    assert first.read_text() == second.read_text()


def test_import_reports_bad_lines_and_keeps_the_good_ones(tmp_path):
    good = json.dumps({"memory_id": "ok", "clip_id": "c", "start": 0, "end": 10, "text": "A fine memory."})
    lines = [good.encode(), b"\xff\xfe not utf-8", b"{not json", json.dumps({"memory_id": "x"}).encode(),
             json.dumps({"memory_id": "y", "clip_id": "c", "start": 0, "end": 1, "text": "nul\u0000"}).encode(),
             json.dumps({"memory_id": "z", "clip_id": "c", "start": 0, "end": 1, "text": "x" * 10_000}).encode(),
             json.dumps({"memory_id": "w", "clip_id": "c", "start": 0, "end": 1, "text": "t", "evil": 1}).encode()]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    result = runner.invoke(app, ["memories", "import", str(source), "--db", str(tmp_path / "m.db")])
    assert result.exit_code == 1
    for number, reason in [(2, "not valid UTF-8"), (3, "not JSON"), (4, "missing"), (5, "NUL"),
                           (6, "more than"), (7, "unknown fields")]:
        assert f"line {number}" in result.output and reason in result.output, result.output
    assert MemoryStore(tmp_path / "m.db", readonly=True).get_memory("ok").text == "A fine memory."


def test_list_search_and_stats(db):
    listed = runner.invoke(app, ["memories", "list", "--db", str(db), "--json"])
    assert listed.exit_code == 0 and len(listed.output.splitlines()) == 6
    found = runner.invoke(app, ["memories", "search", "red mug", "--db", str(db), "--mode", "text", "--json",
                                "--entity", "person_2", "--start", "70"])
    hits = [json.loads(line) for line in found.output.splitlines()]
    assert found.exit_code == 0 and hits and all(h["end"] >= 70 and "person_2" in h["entity_ids"] for h in hits)
    bad = runner.invoke(app, ["memories", "search", '"red', "--fts", "--mode", "text", "--db", str(db)])
    assert bad.exit_code == 1 and "not valid FTS5 syntax" in bad.output
    stats = json.loads(runner.invoke(app, ["memories", "stats", "--db", str(db), "--json"]).output)
    assert stats["schema_version"] == 2 and stats["active_memories"] == 6 and stats["kinds"]["summary"] >= 1
    assert stats["adapter_versions"] == ["count-v2"]
    missing = runner.invoke(app, ["memories", "list", "--db", str(db.parent / "nope.db")])
    assert missing.exit_code != 0 and "no memory database" in missing.output


@pytest.mark.parametrize("text,expected", [
    ("tab\tand\nnewline stay", "tab\tand\nnewline stay"),
    ("bell\x07 and escape\x1b[31m red", "bell  and escape [31m red"),
    ("carriage\r\nreturn", "carriage\nreturn"),
    ("bidi \u202eevil\u202c text", "bidi  evil  text"),
    ("cafe\u0301", "café"),
])
def test_control_characters_are_sanitised(tmp_path, text, expected):
    store = MemoryStore(tmp_path / "m.db")
    store.add_memory(MemoryRecord("m", "c", 0, 1, text))
    assert store.get_memory("m").text == expected
    store.close()


def test_hostile_ids_and_queries_are_parameters_not_sql(tmp_path):
    store = MemoryStore(tmp_path / "m.db")
    evil = "x'); DROP TABLE memories; --"
    store.add_memory(MemoryRecord(evil, evil, 0, 1, "Robert'); DROP TABLE memories; --", entity_ids=(evil,)))
    assert store.get_memory(evil).clip_id == evil
    assert store.recall(evil, entity_ids=(evil,))[0][0].memory_id == evil
    with pytest.raises(StoreError, match="mode"):
        store.recall("x", mode="x'; DROP TABLE memories")
    with pytest.raises(StoreError, match="pose"):
        store.add_memory(MemoryRecord("p", "c", 0, 1, "t", pose=(1.0, float("nan"), 0, 0, 0, 0, 1)))
    assert store.counts()["memories"] == 1
    store.close()
