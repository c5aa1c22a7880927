"""Periodic health reports on /diagnostics (diagnostic_msgs/DiagnosticArray), shared by every node."""

from __future__ import annotations

from collections.abc import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR

Report = tuple[bytes, str, dict[str, object]]
"""(level, message, values) returned by a node's status function."""


class DiagnosticsReporter:
    """Publishes one DiagnosticStatus named `taskmem/<node>` every `period` seconds."""

    def __init__(self, node: Node, status: Callable[[], Report], period: float = 1.0):
        self._node = node
        self._status = status
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period, self.publish)

    def publish(self) -> None:
        level, message, values = self._status()
        status = DiagnosticStatus(
            level=level,
            name=f"taskmem/{self._node.get_name()}",
            message=message,
            hardware_id=self._node.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)
