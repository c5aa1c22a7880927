"""ament_python package `taskmem`: `colcon build` on robots, `pip install -e .` elsewhere."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "taskmem"
NODES = ["camera_node", "memorizer_node", "store_node", "task_node", "trainer_node", "replay_camera_node"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["taskmem_nodes", "taskmem_nodes.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/models", glob("config/models/*.yaml")),
        (f"share/{PACKAGE}/config/train", glob("config/train/*.yaml")),
        (f"share/{PACKAGE}/models", ["models/taskmem-sim-tiny.safetensors"]),  # the default memorizer
        (f"share/{PACKAGE}/sim/worlds", glob("sim/worlds/*.yaml")),
        (f"share/{PACKAGE}/sim/gazebo", glob("sim/gazebo/*")),
        (f"share/{PACKAGE}/sim/isaac", glob("sim/isaac/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="TaskMem developers",
    description="A ROS 2 memory stack that learns what to remember.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [f"{node} = taskmem_nodes.nodes.{node}:main" for node in NODES]
        + ["taskmem = taskmem_nodes.cli:main"],
    },
)
