"""Robot bring-up: `ros2 launch taskmem taskmem.launch.py [replay_source:=file] [database_path:=...]`.

Starts the nodes of config/graph.yaml with config/taskmem.yaml, exactly like `taskmem run` does on machines
without ROS 2 launch (both read the graph through taskmem_nodes.graph, so they cannot drift).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from taskmem_nodes.graph import load_graph, storage_overrides

ARGUMENTS = {
    "replay_source": ("", "Play this video/folder/bag as the camera instead of a live one ('' = live camera)"),
    "database_path": ("", "SQLite file of the memory store ('' = the value in taskmem.yaml)"),
    "model_path": ("", "Qwen3-VL checkpoint directory ('' = the value in taskmem.yaml)"),
    "params_file": ("", "Parameters file to use instead of the installed taskmem.yaml"),
    "model_params": ("", "Memorizer parameters layered over it, e.g. share/taskmem/config/models/qwen3-vl-8b.yaml"),
    "use_sim_time": ("false", "Use /clock (Gazebo, Isaac Sim, bag replay with publish_clock)"),
}


def _nodes(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    graph = load_graph(Path(get_package_share_directory("taskmem")) / "config" / "graph.yaml")
    params_files = [value["params_file"] or str(graph.parameters_file)]
    if value["model_params"]:
        params_files.append(value["model_params"])
    overrides = {
        **(storage_overrides(value["database_path"]) if value["database_path"] else {}),
        "memorizer": {"model_path": value["model_path"]},
        "replay_camera": {"source": value["replay_source"]},
    }
    features = {"replay"} if value["replay_source"] else set()
    use_sim_time = value["use_sim_time"].lower() in ("1", "true", "yes")
    actions = []
    for spec in graph.nodes_for(features):
        extra = {k: v for k, v in overrides.get(spec.name, {}).items() if v}
        actions.append(Node(
            package="taskmem", executable=spec.executable, name=spec.name, output="screen",
            parameters=[*params_files, {"use_sim_time": use_sim_time, **extra}],
            remappings=list(spec.remappings.items()),
        ))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_nodes)]
    )
