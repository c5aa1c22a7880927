"""Gazebo and Isaac Sim assets, checked as far as possible without a simulator: the SDF's structure, the
bridge configuration against the topic the camera node reads, and the launch file."""

import ast
import math
import py_compile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from taskmem_nodes.graph import load_graph

ROOT = Path(__file__).resolve().parent.parent
GAZEBO = ROOT / "sim" / "gazebo"
WORLD_FILE = GAZEBO / "taskmem_house.sdf"
BRIDGE_FILE = GAZEBO / "bridge.yaml"
GAZEBO_LAUNCH = ROOT / "launch" / "taskmem_gazebo.launch.py"

# ros_gz_bridge's YAML keys (ros_gz_bridge/src/bridge_config.cpp): the ones we always write, and the optional ones.
BRIDGE_KEYS = {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"}
OPTIONAL_BRIDGE_KEYS = {"publisher_queue", "subscriber_queue", "lazy"}
DIRECTIONS = {"GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL"}


def camera_topic() -> str:
    """The ROS topic the camera node reads raw images on: its `image_raw` remapping in the graph file, provided
    config/taskmem.yaml (the graph's parameters file) leaves raw subscription on."""
    graph = load_graph(ROOT / "config" / "graph.yaml")
    camera = next(spec for spec in graph.nodes_for(set()) if spec.name == "camera")
    parameters = yaml.safe_load(graph.parameters_file.read_text())["camera"]["ros__parameters"]
    assert parameters.get("subscribe_raw", True), "camera_node does not subscribe raw images: nothing to bridge"
    return camera.remappings.get("image_raw", "image_raw")


def numbers(text: str) -> list[float]:
    return [float(v) for v in text.split()]


@pytest.fixture(scope="module")
def world() -> ET.Element:
    root = ET.parse(WORLD_FILE).getroot()  # well-formed XML or a ParseError
    assert root.tag == "sdf" and tuple(map(int, root.get("version").split("."))) >= (1, 9)
    (world,) = root.findall("world")
    return world


@pytest.fixture(scope="module")
def camera(world) -> ET.Element:
    cameras = [s for s in world.iter("sensor") if s.get("type") == "camera"]
    assert len(cameras) == 1
    return cameras[0]


def test_world_loads_the_systems_a_rendered_camera_needs(world):
    plugins = {p.get("filename"): p for p in world.findall("plugin")}
    assert {"gz-sim-physics-system", "gz-sim-user-commands-system", "gz-sim-scene-broadcaster-system",
            "gz-sim-sensors-system"} <= set(plugins)
    assert plugins["gz-sim-sensors-system"].findtext("render_engine") == "ogre2"


def test_world_names_poses_and_colours_are_well_formed(world):
    models = world.findall("model")
    assert len({m.get("name") for m in models}) == len(models)
    for model in models:
        links = model.findall("link")
        assert links and len({link.get("name") for link in links}) == len(links), model.get("name")
    for pose in world.iter("pose"):
        assert len(numbers(pose.text)) == 6
    for tag in ("ambient", "diffuse", "specular", "emissive", "background"):
        for colour in world.iter(tag):
            values = numbers(colour.text)
            assert len(values) == 4 and all(0 <= v <= 1 for v in values), f"<{tag}> {colour.text}"
    for box in world.iter("box"):
        assert len(numbers(box.findtext("size"))) == 3 and all(v > 0 for v in numbers(box.findtext("size")))
    rooms = {m.get("name").split("_")[1] for m in models if m.get("name").startswith("floor_")}
    assert rooms == {"kitchen", "hall", "office"}  # named like the procedural world's rooms


def test_camera_sensor_matches_the_documented_stream(camera):
    assert camera.findtext("topic") == "/taskmem/camera/image"
    assert float(camera.findtext("update_rate")) == 10
    assert camera.findtext("gz_frame_id") == "camera_optical_frame"  # gz-sensors stamps images with it
    assert math.isclose(float(camera.findtext("camera/horizontal_fov")), 1.2, abs_tol=0.05)
    image = camera.find("camera/image")
    assert (int(image.findtext("width")), int(image.findtext("height"))) == (640, 480)
    assert image.findtext("format") == "R8G8B8"  # bridged as rgb8, which camera_node decodes


def test_bridge_maps_the_gazebo_camera_to_the_camera_node_topic(camera):
    entries = yaml.safe_load(BRIDGE_FILE.read_text())
    assert isinstance(entries, list)  # parameter_bridge wants a YAML sequence at the top level
    for entry in entries:
        assert BRIDGE_KEYS <= set(entry) <= BRIDGE_KEYS | OPTIONAL_BRIDGE_KEYS, entry
        assert entry["direction"] in DIRECTIONS
    by_ros_topic = {e["ros_topic_name"]: e for e in entries}
    image = by_ros_topic[camera_topic()]
    assert image["gz_topic_name"] == camera.findtext("topic")
    assert (image["ros_type_name"], image["gz_type_name"], image["direction"]) == (
        "sensor_msgs/msg/Image", "gz.msgs.Image", "GZ_TO_ROS")
    clock = by_ros_topic["/clock"]
    assert (clock["ros_type_name"], clock["gz_type_name"], clock["direction"]) == (
        "rosgraph_msgs/msg/Clock", "gz.msgs.Clock", "GZ_TO_ROS")


def test_gazebo_launch_file_wires_world_bridge_and_graph(tmp_path):
    py_compile.compile(str(GAZEBO_LAUNCH), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    tree = ast.parse(GAZEBO_LAUNCH.read_text())
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {WORLD_FILE.name, BRIDGE_FILE.name, "taskmem.launch.py", "gz_sim.launch.py", "gz_args",
            "parameter_bridge", "ros_gz_bridge", "config_file", "use_sim_time", "world", "headless"} <= strings
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    # taskmem.launch.py is included with use_sim_time "true": find that dict literal rather than a source string
    sim_time = [d for d in ast.walk(tree) if isinstance(d, ast.Dict)
                for k, v in zip(d.keys, d.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "use_sim_time"
                and isinstance(v, ast.Constant) and v.value == "true"]
    assert sim_time


def test_setup_installs_the_sim_assets_and_isaac_notes_name_the_topic():
    setup = (ROOT / "setup.py").read_text()
    for folder in ("sim/worlds", "sim/gazebo", "sim/isaac"):
        assert f'glob("{folder}/' in setup
    notes = (ROOT / "sim" / "isaac" / "README.md").read_text()
    assert camera_topic() in notes and "ROS2 Camera Helper" in notes and "/clock" in notes
