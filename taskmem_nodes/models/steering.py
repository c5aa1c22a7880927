"""Phase Two's adapter: a steering vector `s` added to the residual stream after one decoder layer,
`h <- h + scale * s`, on a frozen policy (the paper: layer 22 of 48, hidden size 2048, scale 1.5).

An adapter file is one small safetensors file: the raw vector (trained at scale 1) and, in its metadata,
what it was trained for (`AdapterInfo`). `SteeringHook` attaches a vector to a loaded model and detaches it
again, so a memorizer can swap adapters between two clips without reloading the model. An adapter steers
every position (`steer: all`, the paper) or only the memory the model writes after its thinking (`steer:
memory`: the prompt and the thinking are computed as without it, `MemoryPositions`).
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
STEER_MODES = ("all", "memory")
TURN_START, THINK_END = "<|im_start|>", "</think>"


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
    steer: str = "all"  # the positions the vector is added at: "all" or "memory" (after the thinking)
    builds_on: str = ""  # the adapter this one was trained on top of (its vector included), if any


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
        if info.steer not in STEER_MODES:
            raise AdapterError(f"{path}: steer must be one of {STEER_MODES}, not {info.steer!r}")
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


class MemoryPositions:
    """Which positions of each forward pass belong to the memory: in the assistant's turn (after the last
    `<|im_start|>`, so the prompt's own mention of `</think>` does not count), at or after its `</think>`.
    Followed across cached generation steps (one new token per row) as over a whole teacher-forced sequence."""

    def __init__(self, turn_start: int, think_end: int):
        self.turn_start, self.think_end = turn_start, think_end
        self.mask: torch.Tensor | None = None  # (batch, positions) of the running forward pass

    @classmethod
    def for_tokenizer(cls, tokenizer) -> MemoryPositions:
        ids = [tokenizer.convert_tokens_to_ids(token) for token in (TURN_START, THINK_END)]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise AdapterError(f"the tokenizer has no {TURN_START} or {THINK_END} token to find the memory by")
        return cls(*ids)

    def observe(self, module, args, kwargs) -> None:
        """Forward pre-hook of the model below the language-model head: read the call's input ids."""
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            raise AdapterError("steering the memory only needs input ids, not input embeddings")
        if ids.shape[1] > 1:  # a prompt, or a prompt with its output: start afresh
            starts = ids == self.turn_start
            in_turn = (starts.cumsum(1) == starts.sum(1, keepdim=True)) & starts.any(1, keepdim=True)
            self.mask = ((ids == self.think_end) & in_turn).cumsum(1) > 0
        else:  # one generated token per row
            fresh = self.mask is None or len(self.mask) != len(ids)
            before = torch.zeros_like(ids, dtype=torch.bool) if fresh else self.mask[:, -1:]
            self.mask = before | (ids == self.think_end)


class SteeringHook:
    """Adds `scale * vector` to the output of one decoder layer while attached: at every position, or with
    `positions` only at the memory's."""

    def __init__(self, model, layer: int, vector: torch.Tensor, scale: float = 1.0,
                 positions: MemoryPositions | None = None):
        layers = decoder_layers(model)
        if not -len(layers) <= layer < len(layers):
            raise AdapterError(f"layer {layer} does not exist: the model has {len(layers)} decoder layers")
        hidden = model.config.get_text_config().hidden_size
        if vector.shape != (hidden,):
            raise AdapterError(f"vector has shape {tuple(vector.shape)}, the model's hidden size is {hidden}")
        self.vector = vector
        self.scale = scale
        self.positions = positions
        self._model = model
        self._layer = layers[layer]
        self._handles = []

    def _add(self, module, inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output  # older decoder layers return a tuple
        shift = self.scale * self.vector.to(hidden.dtype)
        if self.positions is not None:
            shift = self.positions.mask.unsqueeze(-1).to(hidden.dtype) * shift
        return (hidden + shift, *output[1:]) if isinstance(output, tuple) else hidden + shift

    def attach(self) -> SteeringHook:
        if not self._handles:
            if self.positions is not None:
                inner = getattr(self._model, "model", self._model)  # what training calls directly, too
                self._handles.append(inner.register_forward_pre_hook(self.positions.observe, with_kwargs=True))
            self._handles.append(self._layer.register_forward_hook(self._add))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> SteeringHook:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()


def attach_adapter(model, adapter: SteeringAdapter, device=None, tokenizer=None) -> SteeringHook:
    """Attach a loaded adapter to `model` at its trained layer, scale and positions (`steer: memory` needs
    the `tokenizer` to find the memory by)."""
    vector = adapter.vector.to(device) if device is not None else adapter.vector
    positions = None
    if adapter.info.steer == "memory":
        if tokenizer is None:
            raise AdapterError(f"adapter {adapter.version} steers the memory only: attaching it needs the tokenizer")
        positions = MemoryPositions.for_tokenizer(tokenizer)
    return SteeringHook(model, adapter.info.layer, vector, adapter.info.scale, positions).attach()
