"""A task-level Python facade over the TaskMem graph: ask questions, watch memories.

    with TaskMemClient() as client:
        outcome = client.ask("Where is the red mug?", options=["kitchen", "hall"])
        if outcome.status is AskStatus.ANSWERED: ...
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import rclpy
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.srv import GetState
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from taskmem_interfaces.action import Ask
from taskmem_interfaces.msg import Memory as MemoryMsg

from taskmem_nodes.nodes.conversions import msg_to_memory
from taskmem_nodes.nodes.qos import MEMORY_QOS
from taskmem_nodes.nodes.spin import wait_for_future
from taskmem_nodes.records import MemoryRecord


class AskStatus(enum.Enum):
    ANSWERED = "answered"
    ABSTAINED = "abstained"
    REJECTED = "rejected"  # the task node refused the goal (empty or oversized question)
    FAILED = "failed"  # the task node aborted (store unavailable, logging failed)
    TIMEOUT = "timeout"  # no task node, or no result in time


@dataclass(frozen=True)
class AskOutcome:
    status: AskStatus
    answer: str = ""
    option_index: int = -1
    memory_ids: tuple[str, ...] = ()
    explanation: str = ""
    task_id: str = ""


class TaskMemClient:
    """Runs its own rclpy context and executor thread, so it works from plain scripts and the CLI."""

    def __init__(self, domain_id: int | None = None, on_memory: Callable[[MemoryRecord], None] | None = None):
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("taskmem_client", context=self.context)
        self.ask_client = ActionClient(self.node, Ask, "ask")
        self.diagnostics: dict[str, dict[str, str]] = {}
        """Latest /diagnostics values per status name, e.g. diagnostics["taskmem/memorizer"]["memories"]."""
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        if on_memory is not None:
            self.node.create_subscription(MemoryMsg, "memories", lambda m: on_memory(msg_to_memory(m)), MEMORY_QOS)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self._spinner.start()

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def ask(self, question: str, options: Sequence[str] = (), task_type: str = "", timeout: float = 60.0) -> AskOutcome:
        """Send an Ask goal and wait for its result."""
        if not self.ask_client.wait_for_server(timeout_sec=timeout):
            return AskOutcome(AskStatus.TIMEOUT, explanation="no task node answered")
        goal = Ask.Goal(question=question, options=list(options), task_type=task_type)
        sent = self.ask_client.send_goal_async(goal)
        if not wait_for_future(sent, timeout):
            return AskOutcome(AskStatus.TIMEOUT, explanation="goal not acknowledged")
        handle = sent.result()
        if not handle.accepted:
            return AskOutcome(AskStatus.REJECTED, explanation="the task node rejected the question")
        result_future = handle.get_result_async()
        if not wait_for_future(result_future, timeout):
            handle.cancel_goal_async()
            return AskOutcome(AskStatus.TIMEOUT, explanation="no result in time")
        wrapped = result_future.result()
        result: Ask.Result = wrapped.result
        if wrapped.status != GoalStatus.STATUS_SUCCEEDED:
            return AskOutcome(AskStatus.FAILED, explanation=result.explanation)
        return AskOutcome(
            AskStatus.ANSWERED if result.answered else AskStatus.ABSTAINED, result.answer, result.option_index,
            tuple(result.memory_ids), result.explanation, result.task_id,
        )

    def set_adapter(self, version: str, timeout: float = 5.0) -> tuple[bool, str] | None:
        """Ask the trainer to make `version` the adapter in use ("" = none); None when no trainer answered."""
        from taskmem_interfaces.srv import SetAdapter

        client = self.node.create_client(SetAdapter, "set_adapter")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            future = client.call_async(SetAdapter.Request(version=version))
            if not wait_for_future(future, timeout):
                return None
            return future.result().success, future.result().message
        finally:
            self.node.destroy_client(client)

    def wait_until_active(self, node_name: str, timeout: float = 120.0) -> bool:
        """Wait until the lifecycle node `node_name` (e.g. "memorizer", whose model loads on configure) is active."""
        client = self.node.create_client(GetState, f"/{node_name}/get_state")
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if client.wait_for_service(timeout_sec=1.0) and self._state(client) == "active":
                    return True
                time.sleep(0.2)
            return False
        finally:
            self.node.destroy_client(client)

    @staticmethod
    def _state(client) -> str:
        future = client.call_async(GetState.Request())
        return future.result().current_state.label if wait_for_future(future, 5.0) else "unknown"

    def close(self) -> None:
        # executor.shutdown() only stops the spin loop; wait for the thread to leave it before the node and
        # context go, or a daemon thread still inside rcl at interpreter exit aborts the process (SIGABRT).
        self.executor.shutdown()
        self._spinner.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> TaskMemClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
