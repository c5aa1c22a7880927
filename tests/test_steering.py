"""Steering adapters: the file format, the hook on a real Qwen3-VL, hot-swapping in the inference backend."""

import dataclasses

import numpy as np
import pytest
import torch

from taskmem_nodes.clips import Clip, Frame
from taskmem_nodes.memorizer import Memorizer
from taskmem_nodes.models.steering import (
    AdapterError,
    AdapterInfo,
    SteeringAdapter,
    SteeringHook,
    attach_adapter,
    decoder_layers,
)
from taskmem_nodes.models.transformers_backend import TransformersBackend, TransformersBackendConfig


def adapter(hidden: int, version: str = "0001-location", layer: int = 0, value: float = 0.5) -> SteeringAdapter:
    return SteeringAdapter(torch.full((hidden,), value), AdapterInfo(version, "base", layer, 1.5, ["location"]))


def test_adapter_file_round_trips_and_bad_files_are_refused(tmp_path):
    path = adapter(8).save(tmp_path / "a.steer.safetensors")
    loaded = SteeringAdapter.load(path)
    assert torch.equal(loaded.vector, torch.full((8,), 0.5)) and loaded.info == adapter(8).info
    assert not list(tmp_path.glob("*.partial"))
    (tmp_path / "junk").write_bytes(b"not a safetensors file")
    with pytest.raises(AdapterError, match="not a TaskMem steering adapter"):
        SteeringAdapter.load(tmp_path / "junk")
    with pytest.raises(AdapterError, match="no adapter file"):
        SteeringAdapter.load(tmp_path / "missing")
    with pytest.raises(AdapterError, match="version"):
        adapter(8, version="../escape").save(tmp_path / "b.steer.safetensors")
    nan = SteeringAdapter(torch.tensor([float("nan")] * 8), adapter(8).info)
    nan.save(tmp_path / "nan.steer.safetensors")
    with pytest.raises(AdapterError, match="finite"):
        SteeringAdapter.load(tmp_path / "nan.steer.safetensors")
    memory = SteeringAdapter(torch.ones(8), dataclasses.replace(adapter(8).info, steer="memory"))
    assert SteeringAdapter.load(memory.save(tmp_path / "m.steer.safetensors")).info.steer == "memory"
    SteeringAdapter(torch.ones(8), dataclasses.replace(adapter(8).info, steer="prompt")).save(tmp_path / "p")
    with pytest.raises(AdapterError, match="steer must be one of"):
        SteeringAdapter.load(tmp_path / "p")


@pytest.fixture(scope="module")
def backend(tiny_checkpoint):
    backend = TransformersBackend(TransformersBackendConfig(model_path=str(tiny_checkpoint), device="cpu",
                                                            max_thinking_tokens=8, max_description_tokens=8,
                                                            enforce_format=True))
    backend.load()
    return backend


def test_hook_adds_the_vector_after_its_layer_and_detaches(backend):
    model = backend._model
    hidden = model.config.get_text_config().hidden_size
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        base = model.model.language_model(input_ids=ids).last_hidden_state
        with SteeringHook(model, 0, torch.ones(hidden) * 3.0):
            steered = model.model.language_model(input_ids=ids).last_hidden_state
        after = model.model.language_model(input_ids=ids).last_hidden_state
    assert not torch.allclose(base, steered) and torch.equal(base, after)
    with pytest.raises(AdapterError, match="layer"):
        SteeringHook(model, len(decoder_layers(model)), torch.zeros(hidden))
    with pytest.raises(AdapterError, match="hidden size"):
        SteeringHook(model, 0, torch.zeros(hidden + 1))
    memory_only = SteeringAdapter(torch.ones(hidden), dataclasses.replace(adapter(hidden).info, steer="memory"))
    with pytest.raises(AdapterError, match="needs the tokenizer"):
        attach_adapter(model, memory_only)
    attach_adapter(model, memory_only, tokenizer=backend._processor.tokenizer).detach()


def _clip(i: int) -> Clip:
    rng = np.random.default_rng(i)
    frames = tuple(Frame(i * 10.0 + t, rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for t in range(2))
    return Clip(f"c{i}", i * 10.0, i * 10.0 + 10.0, frames, 1.0)


def test_memorizer_hot_swaps_adapters_and_tags_every_memory(backend):
    hidden = backend._model.config.get_text_config().hidden_size
    memorizer = Memorizer(backend)
    first = memorizer.memorize(_clip(0))
    pause = memorizer.set_adapter(adapter(hidden, "0002-count", value=50.0))
    second = memorizer.memorize(_clip(1))
    memorizer.set_adapter(None)
    third = memorizer.memorize(_clip(2))
    assert (first.adapter_version, second.adapter_version, third.adapter_version) == ("", "0002-count", "")
    assert 0.0 <= pause < 1.0
    with pytest.raises(AdapterError):  # a vector of another model's size leaves the current adapter in place
        memorizer.set_adapter(adapter(hidden + 1, "0003-bad"))
    assert memorizer.adapter_version == ""


def test_peft_lora_directories_load_switch_and_tag_memories(backend, tiny_checkpoint, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    from taskmem_nodes.models.lora import LoraAdapter, open_adapter

    base = AutoModelForImageTextToText.from_pretrained(tiny_checkpoint)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "lora-kitchen")
    adapter = open_adapter(tmp_path / "lora-kitchen")
    assert isinstance(adapter, LoraAdapter) and adapter.version == "lora-kitchen"
    with pytest.raises(AdapterError, match="peft adapter"):
        open_adapter(tmp_path)
    ids = torch.tensor([[1, 2, 3, 4]])

    def logits():
        with torch.no_grad():
            return backend._model.model.language_model(input_ids=ids).last_hidden_state

    plain = logits()
    memorizer = Memorizer(backend)
    memorizer.set_adapter(adapter)
    assert not torch.allclose(plain, logits())
    assert memorizer.memorize(_clip(5)).adapter_version == "lora-kitchen"
    memorizer.set_adapter(None)
    assert torch.allclose(plain, logits(), atol=1e-6) and memorizer.memorize(_clip(6)).adapter_version == ""
    steering = SteeringAdapter(torch.ones(plain.shape[-1]), AdapterInfo("0004-x", "m", 0))
    memorizer.set_adapter(steering)  # from LoRA-free to steering: only the vector acts
    assert memorizer.memorize(_clip(7)).adapter_version == steering.version
    memory_only = SteeringAdapter(steering.vector, AdapterInfo("0005-x", "m", 0, steer="memory"))
    memorizer.set_adapter(memory_only)
    assert memorizer.memorize(_clip(8)).adapter_version == memory_only.version
    memorizer.set_adapter(None)


def test_benchmark_applies_an_adapter_at_another_scale(tmp_path, tiny_checkpoint):
    from transformers import AutoConfig

    from taskmem_nodes.bench.runner import SystemFactory, memorizer_settings

    hidden = AutoConfig.from_pretrained(tiny_checkpoint).get_text_config().hidden_size
    path = adapter(hidden).save(tmp_path / "a.steer.safetensors")
    settings = memorizer_settings(str(tiny_checkpoint), device="cpu", max_thinking_tokens=8,
                                  max_description_tokens=8)
    factory = SystemFactory({}, settings, {"own": {**settings, "adapter": str(path)},
                                           "x6": {**settings, "adapter": str(path), "adapter_scale": 6.0}})
    own, x6 = factory.backend("own"), factory.backend("x6")
    assert own.adapter_version == "0001-location" and x6.adapter_version == "0001-location-x6"
    assert own._adapter.info.scale == 1.5 and x6._adapter.info.scale == 6.0
    assert torch.equal(x6._adapter.vector, own._adapter.vector)
