"""The node graph file (config/graph.yaml), read by the launch file and by the process runner alike."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from taskmem_nodes.paths import config_dir


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph."""

    name: str
    executable: str
    remappings: dict[str, str] = field(default_factory=dict)
    only_with: str | None = None  # started only when this feature (e.g. "replay") is requested


@dataclass(frozen=True)
class Graph:
    nodes: tuple[NodeSpec, ...]
    parameters_file: Path

    def nodes_for(self, features: Collection[str] = ()) -> list[NodeSpec]:
        """The nodes to start when `features` are requested."""
        return [n for n in self.nodes if n.only_with is None or n.only_with in features]


def load_graph(path: str | Path | None = None) -> Graph:
    """Read a graph file (default: config/graph.yaml); its parameters file is relative to it."""
    path = Path(path) if path else config_dir() / "graph.yaml"
    data = yaml.safe_load(path.read_text())
    nodes = tuple(
        NodeSpec(name=n["name"], executable=n["executable"], remappings=dict(n.get("remappings") or {}),
                 only_with=n.get("only_with"))
        for n in data["nodes"]
    )
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: node names must be unique, got {names}")
    return Graph(nodes=nodes, parameters_file=path.parent / data["parameters"])


def storage_overrides(database: str | Path) -> dict[str, dict]:
    """Node parameters that put the store's file and the trainer's archive, adapters and reports side by side
    in the folder of `database` (one place per robot, demo or test run)."""
    database = Path(database).expanduser()
    return {
        "store": {"database_path": str(database)},
        "trainer": {"store_path": str(database), "data_dir": str(database.parent / "phase_two"),
                    "clip_archive_dir": str(database.parent / "clips")},
    }
