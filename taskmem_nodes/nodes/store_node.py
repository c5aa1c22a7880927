"""store_node: the only writer of the SQLite memory database.

Persists `memories` and `memories/rejected` (both transient-local, so after a restart it receives what it
missed; ids already stored are ignored), serves `recall` (taskmem_interfaces/Recall) and `log_task`
(taskmem_interfaces/LogTask). Every write is committed before it is acknowledged or logged as stored.
"""

from __future__ import annotations

from rclpy.node import Node
from taskmem_interfaces.msg import Memory as MemoryMsg
from taskmem_interfaces.msg import RejectedMemory as RejectedMsg
from taskmem_interfaces.srv import LogTask, Recall

from taskmem_nodes.nodes.conversions import memory_to_msg, msg_to_memory, msg_to_rejected, to_seconds
from taskmem_nodes.nodes.diagnostics import OK, WARN, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.qos import MEMORY_QOS
from taskmem_nodes.nodes.spin import run_node
from taskmem_nodes.records import TaskLogRecord
from taskmem_nodes.store import MemoryStore, StoreError


class StoreNode(Node):
    """Keeps memories, rejected outputs and tasks; answers recall queries."""

    def __init__(self, **kwargs):
        super().__init__("store", **kwargs)
        path = declare(self, "database_path", "~/.ros/taskmem/memory.db", "SQLite file of the memory store")
        self.default_k = declare(self, "default_k", 8, "Memories returned by recall when the request's k is 0")
        self.max_k = declare(self, "max_k", 200, "Largest k a recall may ask for")
        self.store = MemoryStore(path)
        self.counts = {"stored": 0, "duplicates": 0, "rejected_stored": 0, "invalid": 0, "recalls": 0,
                       "recall_errors": 0, "tasks": 0}
        self.last_error = ""
        self.create_subscription(MemoryMsg, "memories", self._on_memory, MEMORY_QOS)
        self.create_subscription(RejectedMsg, "memories/rejected", self._on_rejected, MEMORY_QOS)
        self.create_service(Recall, "recall", self._on_recall)
        self.create_service(LogTask, "log_task", self._on_log_task)
        self.diagnostics = DiagnosticsReporter(self, self._status)
        counts = self.store.counts()
        self.get_logger().info(f"store {self.store.path}: {counts['memories']} memories, {counts['tasks']} tasks")

    def _error(self, counter: str, message: str) -> None:
        self.counts[counter] += 1
        self.last_error = message
        self.get_logger().error(message)

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

    def _on_recall(self, request: Recall.Request, response: Recall.Response) -> Recall.Response:
        self.counts["recalls"] += 1
        start = to_seconds(request.start) or None
        end = to_seconds(request.end) or None
        k = min(request.k or self.default_k, self.max_k)
        try:
            hits = self.store.recall(request.query, k=k, start=start, end=end)
        except StoreError as err:
            self._error("recall_errors", f"recall refused: {err}")
            response.success, response.message = False, str(err)
            return response
        stamp = self.get_clock().now().to_msg()
        response.memories = [memory_to_msg(memory, stamp) for memory, _ in hits]
        response.scores = [score for _, score in hits]
        response.success = True
        response.message = f"{len(hits)} memories"
        return response

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

    def _status(self):
        level = WARN if self.counts["invalid"] or self.counts["recall_errors"] else OK
        db_counts = self.store.counts()
        return level, self.last_error or "ok", {
            **self.counts, "db_memories": db_counts["memories"], "db_rejected": db_counts["rejected"],
            "db_tasks": db_counts["tasks"], "db_size_bytes": self.store.size_bytes(), "db_path": self.store.path,
        }

    def destroy_node(self):
        self.store.close()
        super().destroy_node()


def main(args=None) -> None:
    run_node(StoreNode, args)

if __name__ == "__main__":
    main()
