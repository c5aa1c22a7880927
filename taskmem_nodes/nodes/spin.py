"""The shared `main()` of every node: init, spin until Ctrl-C (or until the node says it is done), clean up."""

from __future__ import annotations

import threading
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], args=None, *, threads: int = 1,
             on_start: Callable[[Node], None] | None = None, done: Callable[[Node], bool] | None = None) -> None:
    """Run one node in its own process. `threads` > 1 uses a MultiThreadedExecutor (for reentrant callbacks);
    `on_start` runs once before spinning; `done` ends the process when it returns True."""
    rclpy.init(args=args)
    node = make_node()
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    executor.add_node(node)
    try:
        if on_start is not None:
            on_start(node)
        if done is None:
            executor.spin()
        while done is not None and node.context.ok() and not done(node):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def autostart_lifecycle(node) -> None:
    """`on_start` of a lifecycle node with an `autostart` flag: configure, then activate if that succeeded."""
    from rclpy.lifecycle import TransitionCallbackReturn

    if node.autostart and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
        node.trigger_activate()


def wait_for_future(future, timeout: float) -> bool:
    """Block this thread until an rclpy future completes while another thread spins; False on timeout."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done.wait(timeout)
