"""trainer_node (lifecycle): Phase Two in the robot's idle time.

It archives every clip (`clips`), watches the task log in the store, and when the robot is idle (no clip for
`idle_after_seconds`, or `idle` says so: a docking station or a mission planner) and a task type is due
(10, 30, 50, ... tasks of it logged), runs Phase Two as a low-priority child process. An adapter that passes
the evaluation gate is released and announced on `adapter` (transient-local: a memorizer started later
still gets it); the memorizer hot-swaps it. `train_adapter` (TrainAdapter) starts a run by hand, with
feedback, and can be cancelled; `set_adapter` (SetAdapter) rolls back or forward to any released version.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from std_msgs.msg import Bool
from taskmem_interfaces.action import TrainAdapter
from taskmem_interfaces.msg import AdapterUpdate
from taskmem_interfaces.msg import Clip as ClipMsg
from taskmem_interfaces.srv import SetAdapter

from taskmem_nodes.adapters import AdapterRegistry
from taskmem_nodes.clip_archive import ClipArchive
from taskmem_nodes.models.steering import AdapterError
from taskmem_nodes.nodes.conversions import msg_to_clip
from taskmem_nodes.nodes.diagnostics import ERROR, OK, WARN, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.qos import ADAPTER_QOS, CLIP_QOS
from taskmem_nodes.nodes.spin import autostart_lifecycle, run_node
from taskmem_nodes.paths import config_dir
from taskmem_nodes.train.trainer import IdleDetector, PhaseTwoJob, RetrainSchedule

SCHEDULE_FILE = "schedule.json"


class TrainerNode(LifecycleNode):
    """Runs Phase Two when the robot is idle and announces released adapters."""

    def __init__(self, **kwargs):
        super().__init__("trainer", **kwargs)
        self.autostart = declare(self, "autostart", True, "Configure and activate on start-up")
        declare(self, "store_path", "~/.ros/taskmem/memory.db", "The store node's SQLite file (read only)")
        declare(self, "data_dir", "~/.ros/taskmem/phase_two", "Adapters, reports and the schedule")
        declare(self, "clip_archive_dir", "~/.ros/taskmem/clips", "Archive of recent clips for training")
        declare(self, "archive_max_clips", 2000, "Clips kept in the archive (10 s each: 2000 = 5.5 h)")
        declare(self, "recipe", "", "Phase Two recipe file ('' = config/train/phase_two_answers_tiny.yaml)")
        declare(self, "auto_train", True, "Train on the schedule when idle (false: only by the action)")
        declare(self, "idle_after_seconds", 60.0, "No clip for this long counts as idle")
        declare(self, "check_period_seconds", 10.0, "How often idleness and the schedule are checked")
        declare(self, "thresholds", [10, 30, 50], "Retrain a task type when this many of its tasks are logged")
        declare(self, "then_every", 20, "After the last threshold, retrain every this many more tasks")
        declare(self, "niceness", 10, "CPU priority of the training process (0-19, higher = lower priority)")
        self.registry: AdapterRegistry | None = None
        self.archive: ClipArchive | None = None
        self.job: PhaseTwoJob | None = None
        self.job_types: list[str] = []
        self._by_action = False
        self._job_lock = threading.Lock()  # the timer and the action server start jobs from different threads
        self.adapter_pub = None
        self._timer = None
        self._active = False
        self.idle = IdleDetector(60.0, time.monotonic())
        self.counts = {"clips_archived": 0, "bad_clips": 0, "runs": 0, "released": 0, "rejected": 0, "failed": 0}
        self.last_result = ""
        self.last_error = ""
        group = ReentrantCallbackGroup()
        self.create_subscription(ClipMsg, "clips", self._on_clip, CLIP_QOS, callback_group=group)
        self.create_subscription(Bool, "idle", self._on_idle, 10, callback_group=group)
        self.action = ActionServer(self, TrainAdapter, "train_adapter", execute_callback=self._execute,
                                   goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
                                   callback_group=group)
        self.create_service(SetAdapter, "set_adapter", self._on_set_adapter, callback_group=group)
        self.diagnostics = DiagnosticsReporter(self, self._status)

    def _param(self, name: str):
        return self.get_parameter(name).value

    # --- lifecycle ---
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.data_dir = Path(self._param("data_dir")).expanduser()
            self.registry = AdapterRegistry(self.data_dir / "adapters")
            self.archive = ClipArchive(Path(self._param("clip_archive_dir")).expanduser(),
                                       self._param("archive_max_clips"))
            self.recipe = Path(self._param("recipe") or config_dir() / "train" / "phase_two_answers_tiny.yaml")
            if not self.recipe.is_file():
                raise FileNotFoundError(f"no Phase Two recipe at {self.recipe}")
        except (OSError, ValueError) as err:
            self.last_error = f"cannot configure: {err}"
            self.get_logger().error(self.last_error)
            return TransitionCallbackReturn.FAILURE
        self.schedule = RetrainSchedule(tuple(self._param("thresholds")), self._param("then_every"))
        self.idle = IdleDetector(self._param("idle_after_seconds"), time.monotonic())
        self.adapter_pub = self.create_lifecycle_publisher(AdapterUpdate, "adapter", ADAPTER_QOS)
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self._active = True
        self._announce()  # the adapter in use, for memorizers (re)started since
        self._timer = self.create_timer(self._param("check_period_seconds"), self._check)
        return result

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._stop_job()
        if self.adapter_pub is not None:
            self.destroy_lifecycle_publisher(self.adapter_pub)
            self.adapter_pub = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._stop_job()
        return TransitionCallbackReturn.SUCCESS

    def _stop_job(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel()
            self.job.wait(10.0)

    # --- inputs ---
    def _on_clip(self, msg: ClipMsg) -> None:
        self.idle.clip_seen(time.monotonic())
        if self.archive is None:
            return
        try:
            clip = msg_to_clip(msg)
            stream_id = msg.clip_id.rsplit("-", 1)[0] or "camera"  # clip ids are "<stream>-<start ns>"
            self.archive.add(clip, stream_id, round(clip.start / max(clip.duration, 1e-6)))
            self.counts["clips_archived"] += 1
        except (ValueError, OSError) as err:  # ImageDecodeError is a ValueError
            self.counts["bad_clips"] += 1
            self.last_error = f"clip {msg.clip_id!r} not archived: {err}"
            self.get_logger().error(self.last_error)

    def _on_idle(self, msg: Bool) -> None:
        self.idle.signal = bool(msg.data)

    # --- scheduling ---
    def _task_counts(self) -> dict[str, int]:
        from taskmem_nodes.store import MemoryStore

        path = Path(self._param("store_path")).expanduser()
        if not path.is_file():
            return {}
        store = MemoryStore(path, readonly=True)
        try:
            return store.task_counts()
        finally:
            store.close()

    def _trained_at(self) -> dict[str, int]:
        try:
            return json.loads((self.data_dir / SCHEDULE_FILE).read_text())
        except (OSError, ValueError):
            return {}

    def _check(self) -> None:
        job = self.job
        if job is not None and not job.running and not self._by_action:
            self._finish_job(job)
        if not self._active or not self._param("auto_train") or self.job is not None:
            return
        self.idle.idle_after = self._param("idle_after_seconds")
        if not self.idle.idle(time.monotonic()):
            return
        try:
            due = self.schedule.due(self._task_counts(), self._trained_at())
        except Exception as err:  # a store being migrated or locked: try again at the next check
            self.last_error = f"cannot read the task log: {err}"
            return
        with self._job_lock:
            if due and self.job is None:
                self.get_logger().info(f"idle and due for {', '.join(due)}: starting Phase Two")
                self._start_job(due)

    def _start_job(self, task_types: list[str], by_action: bool = False) -> PhaseTwoJob:
        job = PhaseTwoJob(Path(self._param("store_path")).expanduser(), self.archive.root, self.data_dir,
                          self.recipe, task_types, self._param("niceness"))
        job.start()  # running before the timer can see it
        self._by_action = by_action  # the action's execute callback finishes its own job
        self.job_types = task_types
        self.counts["runs"] += 1
        self.job = job
        return job

    def _finish_job(self, job: PhaseTwoJob) -> None:
        self.job = None
        if job.report is None:
            self.counts["failed"] += 1
            self.last_result = f"Phase Two failed: {job.error}"
            self.get_logger().error(self.last_result)
            if job.cancelled:
                return
        else:
            report = job.report
            gate = report["gate"]
            if report["released"]:
                self.counts["released"] += 1
                self.last_result = f"released {report['version']} (won {gate['win_rate']:.2f})"
                self._announce()
            else:
                self.counts["rejected"] += 1
                self.last_result = f"rejected {report['version']}: {gate['reason']}"
            self.get_logger().info(self.last_result)
        counts, trained = self._task_counts(), self._trained_at()
        trained.update({t: counts.get(t, 0) for t in self.job_types})  # a failed run waits for the next threshold
        (self.data_dir / SCHEDULE_FILE).write_text(json.dumps(trained))

    def _announce(self) -> None:
        if self.adapter_pub is None or self.registry is None:
            return
        msg = AdapterUpdate()
        msg.header.stamp = self.get_clock().now().to_msg()
        adapter = self.registry.current()
        if adapter is not None:
            msg.version, msg.path = adapter.version, str(self.registry.path(adapter.version))
            msg.base_model_version, msg.task_types = adapter.info.base_model_version, list(adapter.info.task_types)
        self.adapter_pub.publish(msg)
        self.get_logger().info(f"adapter in use: {msg.version or 'none (base policy)'}")

    # --- action and service ---
    def _on_goal(self, goal) -> GoalResponse:
        return GoalResponse.REJECT if self.job is not None or self.registry is None else GoalResponse.ACCEPT

    def _execute(self, handle):
        with self._job_lock:
            busy = self.job is not None
            job = None if busy else self._start_job(list(handle.request.task_types), by_action=True)
        if job is None:
            handle.abort()
            return TrainAdapter.Result(message="a Phase Two run is already in progress")
        while not job.wait(0.5):
            if handle.is_cancel_requested:
                job.cancel()
                job.wait(30.0)
                break
            feedback = TrainAdapter.Feedback()
            feedback.stage, feedback.done, feedback.total = job.progress.stage, job.progress.done, job.progress.total
            handle.publish_feedback(feedback)
        self._finish_job(job)
        result = TrainAdapter.Result()
        if job.report is not None:
            report = job.report
            result.released, result.version = report["released"], report["version"]
            result.win_rate, result.pairs = float(report["gate"]["win_rate"]), int(report["pairs"]["pairs"])
            result.message = self.last_result
        else:
            result.message = job.error
        if job.cancelled:
            handle.canceled()
        elif job.report is not None:
            handle.succeed()
        else:
            handle.abort()
        return result

    def _on_set_adapter(self, request, response):
        if self.registry is None:
            response.success, response.message = False, "trainer is not configured"
            return response
        try:
            self.registry.use(request.version, reason="set_adapter request")
        except AdapterError as err:
            response.success, response.message = False, str(err)
            return response
        self._announce()
        response.success = True
        response.message = f"adapter in use: {request.version or 'none (base policy)'}"
        return response

    def _status(self):
        if self.registry is None:
            return ERROR if self.last_error else WARN, self.last_error or "not configured", dict(self.counts)
        values = {**self.counts, "adapter_in_use": self.registry.current_version or "none",
                  "idle": self.idle.idle(time.monotonic()), "training": self.job is not None,
                  "last_result": self.last_result}
        if self.job is not None:
            values["stage"] = f"{self.job.progress.stage} {self.job.progress.done}/{self.job.progress.total}"
        level = WARN if self.counts["failed"] or self.counts["bad_clips"] else OK
        return level, self.last_error or "ok", values


def main(args=None) -> None:
    run_node(TrainerNode, args, threads=3, on_start=autostart_lifecycle)


if __name__ == "__main__":
    main()
