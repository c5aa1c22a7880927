"""memorizer_node (lifecycle): clips in, one memory per clip out.

configure loads the model, activate starts memorizing, deactivate pauses, cleanup frees the model (so the
trainer can borrow the GPU). Inference runs on a worker thread, never in a callback; clips wait in a bounded
queue that drops the oldest when the model falls behind (each clip still joins the context window).
Memories go out on `memories` (reliable, transient-local: a restarted store catches up); outputs that do not
parse go out on `memories/rejected` with the raw text and the reason. Adapters announced on `adapter` (by the
trainer) are hot-swapped between two clips, without a restart and without dropping a clip; every memory
names the adapter it was written with.
"""

from __future__ import annotations

import threading
from collections import deque

from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, State, TransitionCallbackReturn
from taskmem_interfaces.msg import AdapterUpdate
from taskmem_interfaces.msg import Clip as ClipMsg
from taskmem_interfaces.msg import Memory as MemoryMsg
from taskmem_interfaces.msg import RejectedMemory as RejectedMsg

from taskmem_nodes.memorizer import BACKEND_PARAMETERS, Memorizer, backend_settings, load_backend
from taskmem_nodes.models.lora import open_adapter
from taskmem_nodes.models.steering import AdapterError
from taskmem_nodes.nodes.conversions import memory_to_msg, msg_to_clip, rejected_to_msg
from taskmem_nodes.nodes.diagnostics import ERROR, OK, WARN, DiagnosticsReporter
from taskmem_nodes.nodes.parameters import declare
from taskmem_nodes.nodes.qos import ADAPTER_QOS, CLIP_QOS, MEMORY_QOS
from taskmem_nodes.nodes.spin import autostart_lifecycle, run_node
from taskmem_nodes.paths import default_model_dir
from taskmem_nodes.records import MemoryRecord


class MemorizerNode(LifecycleNode):
    """Runs the memorization policy on every clip."""

    def __init__(self, **kwargs):
        super().__init__("memorizer", **kwargs)
        self.autostart = declare(self, "autostart", True, "Configure and activate on start-up")
        declare(self, "backend", "transformers", "Inference backend: transformers")
        declare(self, "model_path", "", "Qwen3-VL checkpoint directory ('' = the default TaskMem model)")
        declare(self, "device", "auto", "auto | cpu | cuda | cuda:N")
        declare(self, "dtype", "auto", "auto | float32 | bfloat16 | float16")
        declare(self, "max_thinking_tokens", 128, "Thinking budget per memory")
        declare(self, "max_description_tokens", 200, "Token budget of one memory entry")
        declare(self, "enforce_format", False, "Constrain decoding to the memory format (untrained models)")
        declare(self, "window_clips", 5, "Clips in the policy's window (current + preceding)")
        declare(self, "preceding_memories", 4, "Own earlier memories shown to the policy")
        declare(self, "frames_per_clip", -1, "Frames of each clip the policy sees (-1: the checkpoint's, 0: all)")
        declare(self, "min_statement_confidence", 0.0,
                "Leave out a memory's statements whose least likely token was below this probability (0: keep all)")
        declare(self, "queue_size", 2, "Clips waiting for the model; the oldest is dropped when full")

        self.memorizer: Memorizer | None = None
        self.queue: deque = deque()
        self._wake = threading.Condition()
        self._active = False
        self._stopping = False
        self._busy = False
        self.counts = {"clips": 0, "memories": 0, "rejected": 0, "dropped": 0, "bad_clips": 0, "adapter_swaps": 0,
                       "bad_adapters": 0}
        self.pending_adapter: AdapterUpdate | None = None  # announced before the model was loaded
        self.last_swap_ms = 0.0
        self.last_error = ""
        self.last_seconds = 0.0
        self.memory_pub = None
        self.rejected_pub = None
        self.create_subscription(ClipMsg, "clips", self._on_clip, CLIP_QOS, callback_group=ReentrantCallbackGroup())
        self.create_subscription(AdapterUpdate, "adapter", self._on_adapter, ADAPTER_QOS,
                                 callback_group=ReentrantCallbackGroup())
        self.diagnostics = DiagnosticsReporter(self, self._status)
        self.worker = threading.Thread(target=self._work, name="memorizer-worker", daemon=True)
        self.worker.start()

    # --- lifecycle ---
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        p = {name: self.get_parameter(name).value for name in (
            "backend", *BACKEND_PARAMETERS, "window_clips", "preceding_memories", "frames_per_clip", "queue_size",
            "min_statement_confidence")}
        model_path = p["model_path"] or str(default_model_dir())
        try:
            backend = load_backend(p["backend"], **backend_settings(p))
            backend.load()
        except Exception as err:  # any load failure: report it and stay unconfigured
            self.last_error = f"cannot load model {model_path}: {err}"
            self.get_logger().error(self.last_error)
            return TransitionCallbackReturn.FAILURE
        try:
            self.memorizer = Memorizer(backend, window_clips=p["window_clips"],
                                       preceding_memories=p["preceding_memories"],
                                       frames_per_clip=None if p["frames_per_clip"] < 0 else p["frames_per_clip"],
                                       min_statement_confidence=p["min_statement_confidence"])
            self.get_logger().info(f"warm-up generation took {self.memorizer.warm_up():.2f} s")
        except Exception as err:  # a bad setting or a model that cannot generate: not configured
            self.last_error = f"cannot start the memorizer: {err}"
            self.get_logger().error(self.last_error)
            backend.unload()
            self.memorizer = None
            return TransitionCallbackReturn.FAILURE
        self.queue = deque(maxlen=p["queue_size"])
        self.memory_pub = self.create_lifecycle_publisher(MemoryMsg, "memories", MEMORY_QOS)
        self.rejected_pub = self.create_lifecycle_publisher(RejectedMsg, "memories/rejected", MEMORY_QOS)
        self.get_logger().info(f"loaded {backend.model_version} with the {p['backend']} backend")
        if self.pending_adapter is not None:
            self._swap(self.pending_adapter)
        return super().on_configure(state)

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _release(self) -> None:
        self._active = False
        with self._wake:
            self.queue.clear()
            while self._busy:
                self._wake.wait(timeout=0.1)
            if self.memorizer is not None:
                self.memorizer.backend.unload()
                self.memorizer = None
        for pub in (self.memory_pub, self.rejected_pub):
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
        self.memory_pub = self.rejected_pub = None

    # --- adapters ---
    def _on_adapter(self, msg: AdapterUpdate) -> None:
        if self.memorizer is None:
            self.pending_adapter = msg
            return
        self._swap(msg)

    def _swap(self, msg: AdapterUpdate) -> None:
        """Steer with the announced adapter from the next clip on; a bad one is refused, the current one kept."""
        self.pending_adapter = None
        memorizer = self.memorizer
        try:
            adapter = open_adapter(msg.path) if msg.version else None
            base = memorizer.backend.model_version
            if msg.base_model_version not in ("", base):
                raise AdapterError(f"it was trained for model {msg.base_model_version}, this is {base}")
            pause = memorizer.set_adapter(adapter)
        except (AdapterError, ValueError, OSError) as err:
            self.counts["bad_adapters"] += 1
            self.last_error = f"adapter {msg.version!r} refused: {err}"
            self.get_logger().error(self.last_error)
            return
        self.counts["adapter_swaps"] += 1
        self.last_swap_ms = 1000 * pause
        self.get_logger().info(f"adapter {msg.version or 'none (base policy)'} in use (swap held generation "
                               f"{self.last_swap_ms:.2f} ms)")

    # --- clips ---
    def _on_clip(self, msg: ClipMsg) -> None:
        if not self._active or self.memorizer is None:
            return
        try:
            clip = msg_to_clip(msg)
        except ValueError as err:  # ImageDecodeError is a ValueError
            self.counts["bad_clips"] += 1
            self.last_error = f"bad clip {msg.clip_id!r}: {err}"
            self.get_logger().error(self.last_error)
            return
        with self._wake:
            self.counts["clips"] += 1
            self.memorizer.observe(clip)
            if len(self.queue) == self.queue.maxlen:
                self.counts["dropped"] += 1
                self.get_logger().warning(f"memorizer busy: dropped clip {self.queue[0].clip_id}")
            self.queue.append(clip)
            self._wake.notify()

    def _work(self) -> None:
        while not self._stopping:
            with self._wake:
                if not self.queue or not self._active:
                    self._wake.wait(timeout=0.2)
                    continue
                clip = self.queue.popleft()
                memorizer = self.memorizer
                self._busy = True
            try:
                self._memorize(memorizer, clip)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _memorize(self, memorizer: Memorizer, clip) -> None:
        result = memorizer.memorize(clip)
        stamp = self.get_clock().now().to_msg()
        if isinstance(result, MemoryRecord):
            self.counts["memories"] += 1
            self.last_seconds = result.generation_seconds
            self.memory_pub.publish(memory_to_msg(result, stamp))
            self.get_logger().info(f"memory {clip.clip_id} ({result.generation_seconds:.2f} s): {result.text[:120]}")
        else:
            self.counts["rejected"] += 1
            self.last_error = f"rejected output for {clip.clip_id}: {result.reason}"
            self.rejected_pub.publish(rejected_to_msg(result, stamp))
            self.get_logger().warning(self.last_error)

    def _status(self):
        if self.memorizer is None:
            return ERROR if self.last_error else WARN, self.last_error or "not configured", dict(self.counts)
        level = WARN if (self.counts["rejected"] or self.counts["dropped"] or self.counts["bad_clips"]
                         or self.counts["bad_adapters"]) else OK
        values = {
            **self.counts, "queue_depth": len(self.queue), "active": self._active,
            "model_version": self.memorizer.backend.model_version,
            "adapter_version": self.memorizer.adapter_version or "none",
            "last_swap_ms": f"{self.last_swap_ms:.2f}",
            "last_generation_seconds": f"{self.last_seconds:.3f}",
        }
        return level, self.last_error or "ok", values

    def destroy_node(self):
        self._stopping = True
        self.worker.join(timeout=5.0)
        super().destroy_node()


def main(args=None) -> None:
    run_node(MemorizerNode, args, threads=2, on_start=autostart_lifecycle)

if __name__ == "__main__":
    main()
