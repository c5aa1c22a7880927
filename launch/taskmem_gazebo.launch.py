"""TaskMem against Gazebo: `ros2 launch taskmem taskmem_gazebo.launch.py [world:=file.sdf] [headless:=true]`.

Starts Gazebo Harmonic with sim/gazebo/taskmem_house.sdf (or your world), bridges its camera and clock to
ROS 2 with ros_gz_bridge (sim/gazebo/bridge.yaml), and brings up the TaskMem graph of taskmem.launch.py on
simulation time. Needs the ros_gz packages (`apt install ros-jazzy-ros-gz`).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription

SHARE = Path(get_package_share_directory("taskmem"))
WORLD_FILE = SHARE / "sim" / "gazebo" / "taskmem_house.sdf"
BRIDGE_FILE = SHARE / "sim" / "gazebo" / "bridge.yaml"

ARGUMENTS = {
    "world": (str(WORLD_FILE), "SDF world to simulate (it must publish the camera named in the bridge file)"),
    "bridge_config": (str(BRIDGE_FILE), "ros_gz_bridge configuration (gz camera topic -> /camera/image_raw)"),
    "headless": ("false", "Run the Gazebo server only, without the GUI"),
    "database_path": ("", "SQLite file of the memory store ('' = the value in taskmem.yaml)"),
    "model_path": ("", "Qwen3-VL checkpoint directory ('' = the value in taskmem.yaml)"),
}


def _simulation(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    server_only = " -s --headless-rendering" if value["headless"].lower() in ("1", "true", "yes") else ""
    gazebo = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(Path(get_package_share_directory("ros_gz_sim")) / "launch"
                                          / "gz_sim.launch.py")),
        launch_arguments={"gz_args": f"-r{server_only} {value['world']}"}.items(),
    )
    bridge = Node(package="ros_gz_bridge", executable="parameter_bridge", name="taskmem_gz_bridge",
                  output="screen", parameters=[{"config_file": value["bridge_config"], "use_sim_time": True}])
    taskmem = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(SHARE / "launch" / "taskmem.launch.py")),
        launch_arguments={"use_sim_time": "true", "database_path": value["database_path"],
                          "model_path": value["model_path"]}.items(),
    )
    return [gazebo, bridge, taskmem]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_simulation)]
    )
