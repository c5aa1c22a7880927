"""Shared fixtures. Every ROS 2 participant a test creates stays on loopback, on a domain of its own."""

import itertools
import os
import random

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from taskmem_nodes.paths import bundled_stream

_DOMAIN_IDS = itertools.count(random.Random(os.getpid()).randint(1, 60) * 2)


@pytest.fixture
def domain_id() -> int:
    """A ROS_DOMAIN_ID no other test of this run uses (Fast DDS accepts up to 232)."""
    return next(_DOMAIN_IDS) % 230 + 1


@pytest.fixture
def ros_context(domain_id):
    """An initialised rclpy context on the test's own domain."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    yield context
    rclpy.try_shutdown(context=context)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random Qwen3-VL checkpoint (real classes, processor and Qwen tokenizer), built once per run."""
    from taskmem_nodes.models.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-qwen3-vl"))


@pytest.fixture(scope="session")
def vtest_video():
    """The real sample video (pedestrians, 768x576, 10 fps, 79.5 s) that scripts/setup.sh fetches."""
    path = bundled_stream()
    assert path.exists(), f"{path} is missing: run scripts/setup.sh"
    return path
