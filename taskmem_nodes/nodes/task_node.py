"""task_node: answers `ask` goals (taskmem_interfaces/Ask) from memory only, and may abstain.

For each question: recall memories from the store (`recall` service: hybrid search, best first), assemble
the answer context (the best that fit `context_token_budget`, in time order with their time spans; or, in
`whole` mode, every memory: the paper's protocol), give that text alone to the answerer, log the task with
the answer and the memory ids used (`log_task` service), return the result. Feedback reports the stage;
goals can be cancelled between stages.
"""

from __future__ import annotations

import time
import uuid

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from taskmem_interfaces.action import Ask
from taskmem_interfaces.msg import TaskRecord
from taskmem_interfaces.srv import LogTask, Recall

from taskmem_nodes.answerer import make_answerer
from taskmem_nodes.nodes.conversions import msg_to_memory
from taskmem_nodes.nodes.diagnostics import OK, WARN, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.spin import run_node, wait_for_future
from taskmem_nodes.store import MAX_QUERY_CHARS
from taskmem_nodes.store.context import CONTEXT_MODES, approximate_tokens, assemble_context, whole_context


class TaskNode(Node):
    """The Ask action server."""

    def __init__(self, **kwargs):
        super().__init__("task", **kwargs)
        self.recall_k = declare(self, "recall_k", 32, "Candidate memories recalled per question (retrieval mode)")
        self.context_mode = declare(self, "context_mode", "retrieval",
                                    "retrieval: best memories within the token budget | whole: every memory")
        self.context_budget = declare(self, "context_token_budget", 1024, "Tokens of memory text the answerer reads")
        tokenizer = declare(self, "context_tokenizer", "qwen", "Counts the budget: qwen (the real Qwen tokenizer) "
                            "| approximate (words and punctuation)")
        if self.context_mode not in CONTEXT_MODES:
            raise ValueError(f"context_mode must be one of {', '.join(CONTEXT_MODES)}, got {self.context_mode!r}")
        self.count_tokens = _token_counter(tokenizer)
        self.timeout = declare(self, "service_timeout_seconds", 10.0, "Wait for the store's services this long")
        answerer = declare(self, "answerer", "lexical", "Answerer: lexical (deterministic reader)")
        min_overlap = declare(self, "min_overlap", 2, "Open questions: words a memory sentence must share to answer")
        self.recent_fallback = declare(
            self, "recent_fallback", True, "When no memory matches the question, read the most recent ones instead"
        )
        self.answerer = make_answerer(answerer, min_overlap=min_overlap)
        group = ReentrantCallbackGroup()
        self.recall_client = self.create_client(Recall, "recall", callback_group=group)
        self.log_client = self.create_client(LogTask, "log_task", callback_group=group)
        self.server = ActionServer(
            self, Ask, "ask", execute_callback=self._execute, goal_callback=self._on_goal,
            cancel_callback=lambda _: CancelResponse.ACCEPT, callback_group=group,
        )
        self.counts = {"asked": 0, "answered": 0, "abstained": 0, "failed": 0, "rejected_goals": 0}
        self.last_error = ""
        self.diagnostics = DiagnosticsReporter(self, self._status)

    def _on_goal(self, goal: Ask.Goal) -> GoalResponse:
        problem = ""
        if not goal.question.strip():
            problem = "empty question"
        elif len(goal.question) > MAX_QUERY_CHARS or any(len(o) > MAX_QUERY_CHARS for o in goal.options):
            problem = f"question or option longer than {MAX_QUERY_CHARS} characters"
        elif len(goal.options) > 26:
            problem = "more than 26 options"
        if problem:
            self.counts["rejected_goals"] += 1
            self.last_error = f"goal rejected: {problem}"
            self.get_logger().warning(self.last_error)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _call(self, client, request):
        """Call a service from inside a callback without blocking the executor; None on timeout."""
        if not client.wait_for_service(timeout_sec=self.timeout):
            return None
        future = client.call_async(request)
        if not wait_for_future(future, self.timeout):
            future.cancel()
            return None
        return future.result()

    def _fail(self, goal_handle, message: str) -> Ask.Result:
        self.counts["failed"] += 1
        self.last_error = message
        self.get_logger().error(message)
        goal_handle.abort()
        return Ask.Result(answered=False, option_index=-1, explanation=message)

    def _execute(self, goal_handle) -> Ask.Result:
        goal: Ask.Goal = goal_handle.request
        asked_at = self.get_clock().now()
        task_id = uuid.uuid4().hex
        self.counts["asked"] += 1

        goal_handle.publish_feedback(Ask.Feedback(stage="recalling"))
        recall = Recall.Request(query=goal.question + " " + " ".join(goal.options), k=self.recall_k,
                                start=goal.start, end=goal.end, mode="whole" if self.context_mode == "whole" else "")
        recalled = self._call(self.recall_client, recall)
        if recalled is None:
            return self._fail(goal_handle, "the store's recall service did not answer")
        if not recalled.success:
            return self._fail(goal_handle, f"recall failed: {recalled.message}")
        if not recalled.memories and self.recent_fallback:
            recall.query = ""
            recalled = self._call(self.recall_client, recall) or recalled
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
            return Ask.Result(answered=False, option_index=-1, explanation="cancelled", task_id=task_id)

        recalled_memories = [msg_to_memory(m) for m in recalled.memories]
        if self.context_mode == "whole":
            context = whole_context(recalled_memories, self.count_tokens)
        else:
            context = assemble_context(recalled_memories, self.context_budget, self.count_tokens)
        memories = list(context.memories)
        goal_handle.publish_feedback(Ask.Feedback(stage="answering", memories_considered=len(memories)))
        started = time.monotonic()
        answer = self.answerer.answer(goal.question, list(goal.options), memories)
        answer_seconds = time.monotonic() - started

        goal_handle.publish_feedback(Ask.Feedback(stage="logging", memories_considered=len(memories)))
        record = TaskRecord(
            task_id=task_id, task_type=goal.task_type, question=goal.question, options=list(goal.options),
            answered=answer.answered, answer=answer.text, option_index=answer.option_index,
            memory_ids=list(answer.memory_ids), answerer=self.answerer.name,
        )
        record.header.stamp = asked_at.to_msg()
        logged = self._call(self.log_client, LogTask.Request(record=record))
        if logged is None or not logged.success:
            reason = "no answer" if logged is None else logged.message
            return self._fail(goal_handle, f"the task could not be logged ({reason}); answer withheld")

        self.counts["answered" if answer.answered else "abstained"] += 1
        self.get_logger().info(
            f"{'answered' if answer.answered else 'abstained'} in {answer_seconds * 1000:.1f} ms from "
            f"{len(memories)} memories ({context.tokens} tokens): "
            f"{goal.question[:80]!r} -> {answer.text[:80]!r}"
        )
        goal_handle.succeed()
        return Ask.Result(
            answered=answer.answered, answer=answer.text, option_index=answer.option_index,
            memory_ids=list(answer.memory_ids), explanation=answer.explanation, task_id=task_id,
        )

    def _status(self):
        level = WARN if self.counts["failed"] else OK
        return level, self.last_error or "ok", {
            **self.counts, "answerer": self.answerer.name,
            "store_available": self.recall_client.service_is_ready(),
        }


def _token_counter(name: str):
    if name == "approximate":
        return approximate_tokens
    if name != "qwen":
        raise ValueError(f"context_tokenizer must be qwen or approximate, got {name!r}")
    from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def main(args=None) -> None:
    run_node(TaskNode, args, threads=4)

if __name__ == "__main__":
    main()
