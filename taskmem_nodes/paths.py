"""Where TaskMem keeps downloaded data, built checkpoints and the default database."""

from __future__ import annotations

import os
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """`$TASKMEM_CACHE`, else `.cache/` of a source checkout, else `~/.cache/taskmem`."""
    if env := os.environ.get("TASKMEM_CACHE"):
        return Path(env).expanduser()
    if (_SOURCE_ROOT / "scripts" / "setup.sh").exists():
        return _SOURCE_ROOT / ".cache"
    return Path.home() / ".cache" / "taskmem"


DEFAULT_MODEL = "taskmem-sim-tiny"
"""The shipped memorizer: a tiny Qwen3-VL trained here on the simulated world (README: "Training the
memorization policy")."""


def default_model_dir() -> Path:
    """The default memorizer checkpoint: `$TASKMEM_MODEL`, else the shipped model expanded into the cache."""
    if env := os.environ.get("TASKMEM_MODEL"):
        return Path(env).expanduser()
    return cache_dir() / "models" / DEFAULT_MODEL


def shipped_model_file() -> Path:
    """The packed default checkpoint: `models/` of a source checkout, else the installed share copy."""
    name = f"{DEFAULT_MODEL}.safetensors"
    if (_SOURCE_ROOT / "models" / name).is_file():
        return _SOURCE_ROOT / "models" / name
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("taskmem")) / "models" / name


def bundled_stream() -> Path:
    """The demo's camera stream (vtest.avi from Debian's opencv-doc, fetched by scripts/setup.sh)."""
    return cache_dir() / "data" / "vtest.avi"


def config_dir() -> Path:
    """`config/` of a source checkout, else the installed share directory of the `taskmem` package."""
    if (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT / "config"
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("taskmem")) / "config"


def sim_dir() -> Path:
    """`sim/` (world configs, Gazebo and Isaac assets) of a source checkout, else the installed share copy."""
    if (_SOURCE_ROOT / "sim").is_dir():
        return _SOURCE_ROOT / "sim"
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("taskmem")) / "sim"


def default_world() -> Path:
    return sim_dir() / "worlds" / "default.yaml"


def demo_world() -> Path:
    """The demo's bundled stream: a 3-minute simulated house."""
    return sim_dir() / "worlds" / "demo.yaml"
