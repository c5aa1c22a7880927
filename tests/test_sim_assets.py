"""Gazebo and Isaac Sim assets, checked as far as possible without a simulator: the SDF's structure, the
bridge configuration against the topic the camera node reads, and the launch file."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from taskmem_nodes.graph import load_graph

ROOT = Path(__file__).resolve().parent.parent
GAZEBO = ROOT / "sim" / "gazebo"


def camera_topic() -> str:
    """The ROS topic the camera node subscribes raw images on, from the graph file."""
    graph = load_graph(ROOT / "config" / "graph.yaml")
    camera = next(spec for spec in graph.nodes_for(set()) if spec.name == "camera")
    return camera.remappings["image_raw"]


def numbers(text: str) -> list[float]:
    return [float(v) for v in text.split()]


def test_world_file_is_a_valid_looking_gazebo_world():
    root = ET.parse(GAZEBO / "taskmem_house.sdf").getroot()
    assert root.tag == "sdf" and tuple(map(int, root.get("version").split("."))) >= (1, 9)
    (world,) = root.findall("world")
    plugins = {p.get("filename") for p in world.findall("plugin")}
    assert {"gz-sim-physics-system", "gz-sim-scene-broadcaster-system", "gz-sim-sensors-system"} <= plugins
    models = world.findall("model")
    assert len({m.get("name") for m in models}) == len(models)
    for model in models:
        links = model.findall("link")
        assert links and len({link.get("name") for link in links}) == len(links), model.get("name")
    for pose in world.iter("pose"):
        assert len(numbers(pose.text)) == 6
    for tag in ("ambient", "diffuse", "specular", "background"):
        for colour in world.iter(tag):
            values = numbers(colour.text)
            assert len(values) == 4 and all(0 <= v <= 1 for v in values)
    for size in world.iter("size"):
        assert len(numbers(size.text)) == 3 and all(v > 0 for v in numbers(size.text))
    cameras = [s for s in world.iter("sensor") if s.get("type") == "camera"]
    assert len(cameras) == 1
    camera = cameras[0]
    assert camera.findtext("topic") == "/taskmem/camera/image" and float(camera.findtext("update_rate")) > 0
    image = camera.find("camera/image")
    assert (int(image.findtext("width")), int(image.findtext("height"))) == (640, 480)
    assert image.findtext("format") == "R8G8B8"
    rooms = {m.get("name").split("_")[1] for m in models if m.get("name").startswith("floor_")}
    assert rooms == {"kitchen", "hall", "office"}  # named like the procedural world's rooms


def test_bridge_maps_the_gazebo_camera_to_the_camera_node_topic():
    entries = yaml.safe_load((GAZEBO / "bridge.yaml").read_text())
    keys = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
    for entry in entries:
        assert set(entry) == keys and entry["direction"] in ("GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL")
    by_ros_topic = {e["ros_topic_name"]: e for e in entries}
    image = by_ros_topic[camera_topic()]
    world = ET.parse(GAZEBO / "taskmem_house.sdf").getroot()
    assert image["gz_topic_name"] == next(world.iter("sensor")).findtext("topic")
    assert (image["ros_type_name"], image["gz_type_name"]) == ("sensor_msgs/msg/Image", "gz.msgs.Image")
    assert by_ros_topic["/clock"]["ros_type_name"] == "rosgraph_msgs/msg/Clock"


def test_gazebo_launch_file_wires_world_bridge_and_graph():
    source = (ROOT / "launch" / "taskmem_gazebo.launch.py").read_text()
    tree = ast.parse(source)  # compiles
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"taskmem_house.sdf", "bridge.yaml", "taskmem.launch.py", "gz_sim.launch.py", "parameter_bridge",
            "ros_gz_bridge", "config_file", "use_sim_time"} <= strings
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    assert '"use_sim_time": "true"' in source


def test_setup_installs_the_sim_assets_and_isaac_notes_name_the_topic():
    setup = (ROOT / "setup.py").read_text()
    for folder in ("sim/worlds", "sim/gazebo", "sim/isaac"):
        assert f'glob("{folder}/' in setup
    notes = (ROOT / "sim" / "isaac" / "README.md").read_text()
    assert camera_topic() in notes and "ROS2 Camera Helper" in notes and "/clock" in notes
