"""store_node: the only writer of the SQLite memory database.

Persists `memories` and `memories/rejected` (both transient-local, so after a restart it receives what it
missed; ids already stored are ignored) and `adapter`, serves `recall` (taskmem_interfaces/Recall:
hybrid text + vector search with filters) and `log_task` (taskmem_interfaces/LogTask). Every write is
committed before it is acknowledged or logged as stored. A memory is searchable by text at once; a worker
thread embeds new memories in batches (MiniLM), and a timer applies the retention policy.
"""

from __future__ import annotations

from rclpy.node import Node
from taskmem_interfaces.msg import AdapterUpdate
from taskmem_interfaces.msg import Memory as MemoryMsg
from taskmem_interfaces.msg import RejectedMemory as RejectedMsg
from taskmem_interfaces.srv import LogTask, Recall

from taskmem_nodes.nodes.conversions import memory_to_msg, msg_to_memory, msg_to_rejected, to_seconds
from taskmem_nodes.nodes.diagnostics import OK, WARN, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.qos import ADAPTER_QOS, MEMORY_QOS
from taskmem_nodes.nodes.spin import run_node
from taskmem_nodes.records import TaskLogRecord
from taskmem_nodes.store import MemoryStore, RecallQuery, StoreError
from taskmem_nodes.store.embedder import EmbeddingWorker, TextEmbedder
from taskmem_nodes.store.retention import RetentionConfig, apply_retention


class StoreNode(Node):
    """Keeps memories, rejected outputs, tasks and adapters; answers recall queries."""

    def __init__(self, **kwargs):
        super().__init__("store", **kwargs)
        path = declare(self, "database_path", "~/.ros/taskmem/memory.db", "SQLite file of the memory store")
        self.default_k = declare(self, "default_k", 8, "Memories returned by recall when the request's k is 0")
        self.max_k = declare(self, "max_k", 200, "Largest k a recall may ask for")
        self.max_whole = declare(self, "max_whole", 5000, "Most memories a 'whole' recall returns")
        self.around_seconds = declare(self, "around_seconds", 600.0, "Default half-width of an 'around' recall")
        embedder = declare(self, "embedder", "minilm", "Text embedder for vector recall: minilm | none (text only)")
        threads = declare(self, "embed_threads", 1, "CPU threads of the embedder")
        interval = declare(self, "embed_interval_seconds", 2.0, "The embedder looks for new memories this often")
        batch = declare(self, "embed_batch_size", 64, "Memories embedded per batch")
        probes = declare(self, "vector_probes", 16, "Inverted lists read per vector query (more: slower, exacter)")
        self.retention = RetentionConfig(
            max_memories=declare(self, "retention_max_memories", 0,
                                 "Active memories kept at most (0 = unbounded; with no budget retention does nothing)"),
            max_bytes=declare(self, "retention_max_bytes", 0, "Payload bytes kept at most (0 = unbounded)"),
            merge_similarity=declare(self, "retention_merge_similarity", 0.8,
                                     "Word overlap at which consecutive memories merge (> 1 = never)"),
            keep_recent_seconds=declare(self, "retention_keep_recent_seconds", 3600.0,
                                        "Memories this recent are never consolidated"),
            summary_span_seconds=declare(self, "retention_summary_span_seconds", 600.0,
                                         "Time window of a first-level summary"),
        )
        retention_interval = declare(self, "retention_interval_seconds", 60.0, "Retention runs this often")
        self.store = MemoryStore(path, vector_probes=probes)
        self.counts = {"stored": 0, "duplicates": 0, "rejected_stored": 0, "invalid": 0, "recalls": 0,
                       "recall_errors": 0, "tasks": 0, "adapters": 0, "embed_errors": 0, "retention_written": 0}
        self.last_error = ""
        self.worker = None
        if embedder == "minilm":
            self.worker = EmbeddingWorker(self.store, lambda: TextEmbedder(threads=threads), interval=interval,
                                          batch_size=batch, on_error=self._on_embed_error).start()
        elif embedder != "none":
            raise ValueError(f"embedder must be minilm or none, got {embedder!r}")
        self._retention_since = self._merge_horizon()
        self.create_subscription(MemoryMsg, "memories", self._on_memory, MEMORY_QOS)
        self.create_subscription(RejectedMsg, "memories/rejected", self._on_rejected, MEMORY_QOS)
        self.create_subscription(AdapterUpdate, "adapter", self._on_adapter, ADAPTER_QOS)
        self.create_service(Recall, "recall", self._on_recall)
        self.create_service(LogTask, "log_task", self._on_log_task)
        self.create_timer(retention_interval, self._apply_retention)
        self.diagnostics = DiagnosticsReporter(self, self._status)
        counts = self.store.counts()
        self.get_logger().info(f"store {self.store.path}: {counts['memories']} memories, {counts['tasks']} tasks")

    def _error(self, counter: str, message: str) -> None:
        self.counts[counter] += 1
        self.last_error = message
        self.get_logger().error(message)

    def _on_embed_error(self, err: Exception) -> None:
        self._error("embed_errors", f"embedding failed (recall stays text-only for those memories): {err}")

    def _on_memory(self, msg: MemoryMsg) -> None:
        try:
            inserted = self.store.add_memory(msg_to_memory(msg))
        except StoreError as err:
            self._error("invalid", f"memory {msg.memory_id[:64]!r} refused: {err}")
            return
        if inserted:
            self.counts["stored"] += 1
            self.get_logger().info(f"stored memory {msg.memory_id} of clip {msg.clip_id}")
        else:
            self.counts["duplicates"] += 1

    def _on_rejected(self, msg: RejectedMsg) -> None:
        try:
            if self.store.add_rejected(msg_to_rejected(msg)):
                self.counts["rejected_stored"] += 1
        except StoreError as err:
            self._error("invalid", f"rejected output {msg.attempt_id[:64]!r} refused: {err}")

    def _on_adapter(self, msg: AdapterUpdate) -> None:
        if not msg.version:
            return  # "run without an adapter" is not an adapter
        try:
            self.store.add_adapter(msg.version, msg.path, msg.base_model_version, list(msg.task_types),
                                   to_seconds(msg.header.stamp))
            self.counts["adapters"] += 1
        except StoreError as err:
            self._error("invalid", f"adapter {msg.version[:64]!r} refused: {err}")

    def _on_recall(self, request: Recall.Request, response: Recall.Response) -> Recall.Response:
        self.counts["recalls"] += 1
        start = to_seconds(request.start) or None
        end = to_seconds(request.end) or None
        try:
            if request.mode == "whole":
                memories = self.store.memories(start=start, end=end, limit=self.max_whole + 1)
                notes = [f"whole memory, cut to the first {self.max_whole}"] if len(memories) > self.max_whole else []
                hits = [(m, 0.0) for m in memories[:self.max_whole]]
            else:
                result = self.store.search(self._query(request, start, end), embed=self._embed_query())
                hits, notes = result.hits, result.notes
        except StoreError as err:
            self._error("recall_errors", f"recall refused: {err}")
            response.success, response.message = False, str(err)
            return response
        stamp = self.get_clock().now().to_msg()
        response.memories = [memory_to_msg(memory, stamp) for memory, _ in hits]
        response.scores = [float(score) for _, score in hits]
        response.success = True
        response.message = "; ".join([f"{len(hits)} memories", *notes])
        return response

    def _query(self, request: Recall.Request, start: float | None, end: float | None) -> RecallQuery:
        around = to_seconds(request.around) or None
        return RecallQuery(
            text=request.query, k=min(request.k or self.default_k, self.max_k), start=start, end=end, around=around,
            around_seconds=request.around_seconds or self.around_seconds, entity_ids=tuple(request.entity_ids),
            task_type=request.task_type, mode=request.mode or "hybrid", syntax="fts" if request.fts_syntax else "words",
        )

    def _embed_query(self):
        embedder = self.worker.embedder if self.worker else None
        return embedder.embed_query if embedder else None

    def _on_log_task(self, request: LogTask.Request, response: LogTask.Response) -> LogTask.Response:
        r = request.record
        task = TaskLogRecord(
            task_id=r.task_id, question=r.question, asked_at=to_seconds(r.header.stamp), task_type=r.task_type,
            options=tuple(r.options), answered=r.answered, answer=r.answer, option_index=r.option_index,
            memory_ids=tuple(r.memory_ids), answerer=r.answerer,
        )
        try:
            self.store.log_task(task)
        except StoreError as err:
            self._error("invalid", f"task {r.task_id[:64]!r} refused: {err}")
            response.success, response.message = False, str(err)
            return response
        self.counts["tasks"] += 1
        response.success, response.message = True, "logged"
        return response

    def _merge_horizon(self) -> float | None:
        """Where the next merge pass starts: a little before the newest memory (the next may merge with it)."""
        newest = self.store.latest_memory()
        return None if newest is None else newest.start - 60.0

    def _apply_retention(self) -> None:
        """Merge near-duplicates written since the last run; consolidate when over budget."""
        horizon = self._merge_horizon()
        report = apply_retention(self.store, self.retention, since=self._retention_since)
        self._retention_since = horizon
        if report.written:
            self.counts["retention_written"] += report.written
            self.get_logger().info(f"retention: {report.merged} merged, {report.summarised} summarised; "
                                   f"{report.active_before} -> {report.active_after} active memories")
        if report.over_budget:
            self.last_error = "over the retention budget: what is left is recent or cited"

    def _status(self):
        level = WARN if self.counts["invalid"] or self.counts["recall_errors"] or self.counts["embed_errors"] else OK
        db_counts = self.store.counts()
        return level, self.last_error or "ok", {
            **self.counts, "db_memories": db_counts["active_memories"], "db_rejected": db_counts["rejected"],
            "db_tasks": db_counts["tasks"], "db_size_bytes": self.store.size_bytes(), "db_path": self.store.path,
            "pending_embeddings": db_counts["pending_embeddings"], "embedded": db_counts["memory_vectors"],
            "embedder": self.worker.embedder.name if self.worker and self.worker.embedder else "not loaded",
        }

    def destroy_node(self):
        if self.worker is not None:
            self.worker.stop()
        self.store.close()
        super().destroy_node()


def main(args=None) -> None:
    run_node(StoreNode, args)

if __name__ == "__main__":
    main()
