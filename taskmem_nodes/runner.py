"""Bring-up without ROS 2 launch: start the nodes of config/graph.yaml as processes.

Reads the same graph and parameters files as launch/taskmem.launch.py. DDS is confined to this machine
(`ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`) and the graph gets its own `ROS_DOMAIN_ID`.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from pathlib import Path

import yaml

from taskmem_nodes.graph import Graph, NodeSpec, load_graph


def ros_environment(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS 2 process that talks only over loopback, on `domain_id`."""
    env = dict(os.environ if base is None else base)
    env.update({
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": str(domain_id),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def pick_domain_id() -> int:
    """`$ROS_DOMAIN_ID` when set, else a random id in 100-199 so concurrent graphs do not meet."""
    if os.environ.get("ROS_DOMAIN_ID"):
        return int(os.environ["ROS_DOMAIN_ID"])
    return random.randint(100, 199)


class GraphRunner:
    """Starts, watches and stops the node processes of a graph. Use as a context manager."""

    def __init__(self, graph: Graph | None = None, *, domain_id: int | None = None,
                 features: Collection[str] = (), overrides: dict[str, dict] | None = None,
                 log_dir: str | Path | None = None, extra_args: dict[str, list[str]] | None = None):
        self.graph = graph or load_graph()
        self.domain_id = pick_domain_id() if domain_id is None else domain_id
        self.features = set(features)
        self.overrides = overrides or {}
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="taskmem-logs-"))
        self.extra_args = extra_args or {}
        self.processes: dict[str, subprocess.Popen] = {}
        self._overrides_file = self.log_dir / "overrides.yaml"

    @property
    def env(self) -> dict[str, str]:
        return ros_environment(self.domain_id)

    def command(self, spec: NodeSpec) -> list[str]:
        """The command line of one node: its module with the graph's parameters and remappings."""
        args = [sys.executable, "-m", f"taskmem_nodes.nodes.{spec.executable}", "--ros-args",
                "-r", f"__node:={spec.name}", "--params-file", str(self.graph.parameters_file)]
        if spec.name in self.overrides:
            args += ["--params-file", str(self._overrides_file)]
        for source, target in spec.remappings.items():
            args += ["-r", f"{source}:={target}"]
        return args + self.extra_args.get(spec.name, [])

    def start(self) -> GraphRunner:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._overrides_file.write_text(yaml.safe_dump(
            {name: {"ros__parameters": params} for name, params in self.overrides.items()}
        ))
        for spec in self.graph.nodes_for(self.features):
            self.start_node(spec.name)
        return self

    def start_node(self, name: str) -> subprocess.Popen:
        """Start (or restart) one node of the graph."""
        spec = next(s for s in self.graph.nodes if s.name == name)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.processes[name] = subprocess.Popen(
            self.command(spec), env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self.processes[name]

    def exited(self) -> dict[str, int]:
        """Nodes that have exited, with their return codes."""
        return {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGINT every node (a clean rclpy shutdown), then SIGKILL what is still running after `timeout`."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def __enter__(self) -> GraphRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
