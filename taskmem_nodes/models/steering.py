"""Phase Two's adapter: a steering vector `s` added to the residual stream after one decoder layer,
`h <- h + scale * s`, on a frozen policy (the paper: layer 22 of 48, hidden size 2048, scale 1.5).

An adapter file is one small safetensors file: the raw vector (trained at scale 1) and, in its metadata,
what it was trained for (`AdapterInfo`). `SteeringHook` attaches a vector to a loaded model and detaches it
again, so a memorizer can swap adapters between two clips without reloading the model.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

ADAPTER_SUFFIX = ".steer.safetensors"
METADATA_KEY = "taskmem_adapter"
MAX_ADAPTER_BYTES = 4 << 20  # a hidden-size vector; anything bigger is not a steering adapter
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class AdapterError(ValueError):
    """An adapter file that cannot be used with this model; the message says why."""


@dataclass
class AdapterInfo:
    """What an adapter is and what it was trained for (stored in the file's metadata)."""

    version: str
    base_model_version: str
    layer: int
    scale: float = 1.5
    task_types: list[str] = field(default_factory=list)
    data_window: list[float] = field(default_factory=list)  # [first, last] arrival time of the tasks used
    validation: dict = field(default_factory=dict)  # figures of the evaluation gate
    created_at: float = 0.0


@dataclass
class SteeringAdapter:
    vector: torch.Tensor  # (hidden_size,), float32
    info: AdapterInfo

    @property
    def version(self) -> str:
        return self.info.version

    def rescaled(self, scale: float) -> SteeringAdapter:
        """The same vector applied at another scale (a version of its own, for the memories it tags)."""
        version = f"{self.info.version[:56]}-x{scale:g}"
        return SteeringAdapter(self.vector, dataclasses.replace(self.info, version=version, scale=scale))

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file, then rename); returns the path."""
        from safetensors.torch import save_file

        if not VERSION_PATTERN.match(self.info.version):
            raise AdapterError(f"adapter version {self.info.version!r} must be 1-64 letters, digits, '.', '_', '-'")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(path.name + ".partial")
        save_file({"vector": self.vector.detach().float().contiguous().cpu()}, str(staging),
                  metadata={METADATA_KEY: json.dumps(dataclasses.asdict(self.info))})
        os.replace(staging, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SteeringAdapter:
        """AdapterError when the file is missing, too big, not safetensors or without TaskMem metadata."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise AdapterError(f"no adapter file at {path}")
        if path.stat().st_size > MAX_ADAPTER_BYTES:
            raise AdapterError(f"{path} has {path.stat().st_size} bytes: too big for a steering vector")
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                vector = handle.get_tensor("vector")
            info = AdapterInfo(**json.loads(metadata[METADATA_KEY]))
        except (KeyError, TypeError, ValueError, OSError, RuntimeError, SafetensorError) as err:
            raise AdapterError(f"{path} is not a TaskMem steering adapter: {err}") from None
        if vector.ndim != 1 or not torch.isfinite(vector).all():
            raise AdapterError(f"{path}: the vector must be one finite row, got shape {tuple(vector.shape)}")
        return cls(vector.float(), info)


def decoder_layers(model) -> torch.nn.ModuleList:
    """The text decoder layers of a Qwen3-VL model (or of a plain causal LM)."""
    inner = getattr(model, "model", model)
    text = getattr(inner, "language_model", inner)
    layers = getattr(text, "layers", None)
    if layers is None:
        raise AdapterError(f"{type(model).__name__} has no decoder layers to steer")
    return layers


class SteeringHook:
    """Adds `scale * vector` to the output of one decoder layer while attached."""

    def __init__(self, model, layer: int, vector: torch.Tensor, scale: float = 1.0):
        layers = decoder_layers(model)
        if not -len(layers) <= layer < len(layers):
            raise AdapterError(f"layer {layer} does not exist: the model has {len(layers)} decoder layers")
        hidden = model.config.get_text_config().hidden_size
        if vector.shape != (hidden,):
            raise AdapterError(f"vector has shape {tuple(vector.shape)}, the model's hidden size is {hidden}")
        self.vector = vector
        self.scale = scale
        self._layer = layers[layer]
        self._handle = None

    def _add(self, module, inputs, output):
        if isinstance(output, tuple):  # older decoder layers return (hidden_states, ...)
            return (output[0] + self.scale * self.vector.to(output[0].dtype), *output[1:])
        return output + self.scale * self.vector.to(output.dtype)

    def attach(self) -> SteeringHook:
        if self._handle is None:
            self._handle = self._layer.register_forward_hook(self._add)
        return self

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def __enter__(self) -> SteeringHook:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()


def attach_adapter(model, adapter: SteeringAdapter, device=None) -> SteeringHook:
    """Attach a loaded adapter to `model` at its trained layer and scale."""
    vector = adapter.vector.to(device) if device is not None else adapter.vector
    return SteeringHook(model, adapter.info.layer, vector, adapter.info.scale).attach()
