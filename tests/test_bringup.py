"""Both bring-ups read one graph: every node in config/graph.yaml is installable, and every parameter in
config/taskmem.yaml is one its node really declares (so a typo in the YAML cannot pass silently)."""

import ast
import importlib
import re
from pathlib import Path

import yaml
from rclpy.node import Node

from taskmem_nodes.graph import load_graph

ROOT = Path(__file__).resolve().parent.parent


def node_class(executable: str) -> type[Node]:
    module = importlib.import_module(f"taskmem_nodes.nodes.{executable}")
    classes = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Node)
               and c.__module__ == module.__name__]
    assert len(classes) == 1, f"{executable} must define exactly one node class"
    return classes[0]


def test_graph_nodes_are_console_scripts():
    setup = (ROOT / "setup.py").read_text()
    listed = set(re.search(r"NODES = \[(.*?)\]", setup).group(1).replace('"', "").replace(" ", "").split(","))
    assert {spec.executable for spec in load_graph().nodes} == listed


def test_every_yaml_parameter_is_declared_by_its_node(ros_context, tmp_path):
    graph = load_graph()
    parameters = yaml.safe_load(graph.parameters_file.read_text())
    assert set(parameters) == {spec.name for spec in graph.nodes}
    for spec in graph.nodes:
        overrides = []
        if spec.name == "store":  # keep the test's database out of ~/.ros
            from rclpy.parameter import Parameter
            overrides = [Parameter("database_path", value=str(tmp_path / "memory.db"))]
        node = node_class(spec.executable)(context=ros_context, parameter_overrides=overrides)
        try:
            assert node.get_name() == spec.name
            undeclared = [name for name in parameters[spec.name]["ros__parameters"] if not node.has_parameter(name)]
            assert not undeclared, f"{spec.name}: {undeclared} are in taskmem.yaml but not declared by the node"
            for name in parameters[spec.name]["ros__parameters"]:
                assert node.describe_parameter(name).description, f"{spec.name}.{name} has no description"
        finally:
            node.destroy_node()


def test_launch_file_builds_nodes_from_the_graph_file():
    source = (ROOT / "launch" / "taskmem.launch.py").read_text()
    tree = ast.parse(source)
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"load_graph", "Node", "LaunchDescription"} <= calls
    assert "nodes_for" in source and "graph.parameters_file" in source
