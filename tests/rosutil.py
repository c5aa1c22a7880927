"""Helpers for tests that run real ROS 2 processes and talk to them over DDS."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskmem_nodes.graph import Graph, load_graph


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """Poll `condition` until it is truthy; fail the test with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def subgraph(*names: str) -> Graph:
    """The real graph file restricted to some nodes (same parameters and remappings)."""
    graph = load_graph()
    return Graph(nodes=tuple(n for n in graph.nodes if n.name in names), parameters_file=graph.parameters_file)


def spin_until(executor, condition: Callable[[], object], timeout: float, what: str):
    """Spin an rclpy executor until `condition` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
        value = condition()
        if value:
            return value
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
