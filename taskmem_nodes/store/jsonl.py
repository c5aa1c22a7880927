"""JSONL export and import of memories: one JSON object per line, every field the store keeps about a
memory (and, for a merge or summary, what it replaced), so export -> import -> export is the same file."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import IO

from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store.memory_store import MemoryStore
from taskmem_nodes.store.text import StoreError, decode_utf8

MAX_LINE_BYTES = 1 << 20
RECORD_FIELDS = tuple(MemoryRecord.__dataclass_fields__)


def memory_line(store: MemoryStore, memory: MemoryRecord) -> str:
    row = asdict(memory)
    row["entity_ids"] = list(memory.entity_ids)
    row["pose"] = None if memory.pose is None else list(memory.pose)
    row["replaced_by"] = store.replacement_of(memory.memory_id)
    row["replaces"] = store.provenance_rows(memory.memory_id) if memory.kind != "clip" else []
    return json.dumps(row, ensure_ascii=False, sort_keys=True)


def export_memories(store: MemoryStore, out: IO[str], on_memory: Callable[[], None] | None = None) -> int:
    """Write every memory (replaced ones too) as JSONL, in row order; the number written."""
    written = 0
    for memory in store.iter_memories():
        out.write(memory_line(store, memory) + "\n")
        written += 1
        if on_memory:
            on_memory()
    return written


@dataclass
class ImportReport:
    imported: int = 0
    already_stored: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)
    """(line number, why) of each line not imported."""


def parse_line(raw: bytes, number: int) -> tuple[MemoryRecord, str | None, list[dict]]:
    """A memory from one exported line; StoreError says what is wrong with it."""
    if len(raw) > MAX_LINE_BYTES:
        raise StoreError(f"line has {len(raw)} bytes, more than {MAX_LINE_BYTES}")
    text = decode_utf8(raw, "line")
    try:
        row = json.loads(text)
    except json.JSONDecodeError as err:
        raise StoreError(f"not JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(row, dict):
        raise StoreError("not a JSON object")
    missing = [f for f in ("memory_id", "clip_id", "start", "end", "text") if f not in row]
    if missing:
        raise StoreError(f"missing {', '.join(missing)}")
    unknown = set(row) - set(RECORD_FIELDS) - {"replaced_by", "replaces"}
    if unknown:
        raise StoreError(f"unknown fields {sorted(unknown)}")
    values = {k: row[k] for k in RECORD_FIELDS if k in row}
    try:
        values["start"], values["end"] = float(values["start"]), float(values["end"])
        values["entity_ids"] = tuple(values.get("entity_ids") or ())
        values["pose"] = None if values.get("pose") is None else tuple(float(x) for x in values["pose"])
        replaces = [{"memory_id": r["memory_id"], "clip_id": r["clip_id"], "start": float(r["start"]),
                     "end": float(r["end"])} for r in row.get("replaces") or []]
        memory = MemoryRecord(**values)
    except (TypeError, ValueError, KeyError) as err:
        raise StoreError(f"bad field value: {err}") from None
    return memory, row.get("replaced_by"), replaces


def import_memories(store: MemoryStore, lines: Iterable[bytes],
                    on_line: Callable[[], None] | None = None) -> ImportReport:
    """Import exported lines (bytes, so invalid UTF-8 is reported, not guessed); ids already stored are
    skipped, a bad line is reported with its number and the rest still imported."""
    report = ImportReport()
    for number, raw in enumerate(lines, start=1):
        if on_line:
            on_line()
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        try:
            memory, replaced_by, replaces = parse_line(raw, number)
            if store.restore_memory(memory, replaced_by=replaced_by, replaces=replaces):
                report.imported += 1
            else:
                report.already_stored += 1
        except StoreError as err:
            report.refused.append((number, str(err)))
    return report
