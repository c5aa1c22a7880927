"""The memory store (one SQLite file): schema and migrations, hybrid recall, embeddings, answer context,
retention, JSONL import/export. `MemoryStore` is the entry point."""

from taskmem_nodes.store.memory_store import MemoryStore
from taskmem_nodes.store.recall import RecallQuery, RecallResult
from taskmem_nodes.store.schema import SCHEMA_VERSION
from taskmem_nodes.store.text import MAX_QUERY_CHARS, STOPWORDS, StoreError, query_terms

__all__ = ["MAX_QUERY_CHARS", "SCHEMA_VERSION", "STOPWORDS", "MemoryStore", "RecallQuery", "RecallResult",
           "StoreError", "query_terms"]
