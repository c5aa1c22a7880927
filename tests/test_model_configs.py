"""The real-scale model configs (config/models/*.yaml) go through the exact path the memorizer node uses.

Real Qwen3-VL weights cannot be loaded here (no hub, no GPU), so each config is loaded with only
model_path/device/dtype swapped for a tiny checkpoint of the same family: dense Qwen3-VL for 2B/4B/8B, the
mixture-of-experts Qwen3-VL-MoE for 30B-A3B and the TaskMem release. Everything else (budgets, format
enforcement, frames per clip) is the file's own.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("transformers")

from taskmem_nodes.clips import Clip, Frame
from taskmem_nodes.memorizer import (
    BACKEND_PARAMETERS,
    Memorizer,
    backend_settings,
    load_backend,
    memorizer_parameters,
)
from taskmem_nodes.models.policy_spec import PolicySpec
from taskmem_nodes.models.tiny import build_tiny_checkpoint
from taskmem_nodes.paths import config_dir
from taskmem_nodes.records import MemoryRecord, RejectedRecord

MODEL_CONFIGS = sorted((config_dir() / "models").glob("*.yaml"))
MOE_CONFIGS = {"qwen3-vl-30b-a3b", "taskmem-release"}
TINY = {"model_path": None, "device": "cpu", "dtype": "float32"}


@pytest.fixture(scope="module")
def moe_checkpoint(tmp_path_factory):
    """A tiny Qwen3-VL-MoE that, like a TaskMem release, carries its policy spec (2 frames per clip)."""
    path = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-moe") / "ckpt", experts=4)
    PolicySpec(frames_per_clip=2).save(path)
    return path


def _clips(count: int = 2) -> list[Clip]:
    rng = np.random.default_rng(0)
    return [Clip(f"c{k}", 10.0 * k, 10.0 * (k + 1),
                 tuple(Frame(10.0 * k + t, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for t in range(10)), 1.0)
            for k in range(count)]


def test_the_four_sizes_and_the_release_are_shipped():
    assert {p.stem for p in MODEL_CONFIGS} == {"qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b", *MOE_CONFIGS}


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_config_only_sets_memorizer_parameters_the_node_declares(path):
    data = yaml.safe_load(path.read_text())
    assert list(data) == ["memorizer"]
    declared = yaml.safe_load((config_dir() / "taskmem.yaml").read_text())["memorizer"]["ros__parameters"]
    params = data["memorizer"]["ros__parameters"]
    assert set(params) <= set(declared), set(params) - set(declared)
    assert params["model_path"] and params["enforce_format"] is False and params["dtype"] == "auto"
    text = path.read_text()
    assert "GB" in text and "taskmem run --model-config" in text and "model_params:=" in text  # documented


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_memorizes_through_the_node_path(path, tiny_checkpoint, moe_checkpoint):
    params = memorizer_parameters(path)
    file_params = yaml.safe_load(path.read_text())["memorizer"]["ros__parameters"]
    assert all(params[k] == v for k, v in file_params.items())  # the file overrides taskmem.yaml
    moe = path.stem in MOE_CONFIGS
    params |= {**TINY, "model_path": str(moe_checkpoint if moe else tiny_checkpoint)}
    backend = load_backend("transformers", **backend_settings(params))
    backend.load()
    try:
        family = "Qwen3VLMoeForConditionalGeneration" if moe else "Qwen3VLForConditionalGeneration"
        assert type(backend._model).__name__ == family
        for name in set(BACKEND_PARAMETERS) - set(TINY):
            assert getattr(backend.config, name) == params[name], name
        frames = params["frames_per_clip"]
        memorizer = Memorizer(backend, window_clips=params["window_clips"],
                              preceding_memories=params["preceding_memories"],
                              frames_per_clip=None if frames < 0 else frames)
        assert memorizer.frames_per_clip == (2 if path.stem == "taskmem-release" else 0)
        clips = _clips()
        memorizer.observe(clips[0])
        record = memorizer.memorize(clips[1])
        assert isinstance(record, MemoryRecord | RejectedRecord)  # a random model may write no valid memory
        assert record.clip_id == "c1" and record.model_version == backend.model_version
        assert backend.model_version.startswith(f"{moe_checkpoint.name if moe else tiny_checkpoint.name}@")
    finally:
        backend.unload()


def test_unreadable_model_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("memorizer: [unclosed\n")
    with pytest.raises(ValueError, match="not a readable ROS parameters file"):
        memorizer_parameters(bad)
    with pytest.raises(ValueError, match="not a readable ROS parameters file"):
        memorizer_parameters(tmp_path / "missing.yaml")
