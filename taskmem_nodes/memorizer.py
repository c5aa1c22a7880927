"""The memorizer: for each clip, run the policy on its 50-s window and its own recent memories.

ROS-free, so the node, the benchmark and training share it. A backend error or a malformed output becomes a
`RejectedRecord` (kept for audit), never a memory.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from pathlib import Path

import numpy as np

from taskmem_nodes.clips import Clip, Frame
from taskmem_nodes.models.base import GenerationResult, MemorizerBackend
from taskmem_nodes.policy import (
    MAX_RAW_OUTPUT_CHARS,
    PRECEDING_MEMORIES,
    WINDOW_CLIPS,
    MemoryParseError,
    PrecedingMemory,
    build_request,
    confident_statements,
    parse_output,
    select_window,
)
from taskmem_nodes.records import MemoryRecord, RejectedRecord

BACKENDS = ("transformers",)
BACKEND_PARAMETERS = ("model_path", "device", "dtype", "max_thinking_tokens", "max_description_tokens",
                      "enforce_format")
"""Memorizer node parameters that configure its backend (the rest configure the `Memorizer`)."""


def memorizer_parameters(*params_files: str | Path) -> dict:
    """The memorizer node's parameters: config/taskmem.yaml, then each ROS params file in turn overriding it
    (e.g. a model config of config/models/)."""
    import yaml

    from taskmem_nodes.paths import config_dir

    params = {}
    for path in (config_dir() / "taskmem.yaml", *params_files):
        try:
            section = (yaml.safe_load(Path(path).expanduser().read_text()) or {}).get("memorizer", {})
        except (OSError, yaml.YAMLError, AttributeError) as err:
            raise ValueError(f"{path} is not a readable ROS parameters file: {err}") from None
        params.update((section or {}).get("ros__parameters", {}))
    return params


def backend_settings(params: dict) -> dict:
    """Backend config fields from memorizer node parameters; model_path "" is the shipped default model
    (expanded from its packed file on first use)."""
    settings = {name: params[name] for name in BACKEND_PARAMETERS if name in params}
    if not settings.get("model_path"):
        from taskmem_nodes.models.packed import ensure_default_model

        settings["model_path"] = str(ensure_default_model())
    return settings


def load_backend(name: str, **config) -> MemorizerBackend:
    """Create (not yet load) a backend by name; `config` are its config dataclass fields."""
    if name == "transformers":
        from taskmem_nodes.models.transformers_backend import TransformersBackend, TransformersBackendConfig

        return TransformersBackend(TransformersBackendConfig(**config))
    raise ValueError(f"unknown memorizer backend {name!r}; available: {', '.join(BACKENDS)}")


class Memorizer:
    """Writes one memory per clip from the clip's window and the policy's own preceding memories."""

    def __init__(self, backend: MemorizerBackend, *, window_clips: int = WINDOW_CLIPS,
                 preceding_memories: int = PRECEDING_MEMORIES, frames_per_clip: int | None = None,
                 min_statement_confidence: float = 0.0):
        if not 0.0 <= min_statement_confidence <= 1.0:
            raise ValueError(f"min_statement_confidence must be within [0, 1], got {min_statement_confidence}")
        self.backend = backend
        self.min_statement_confidence = min_statement_confidence  # statements less sure than this are left out
        self.window_clips = window_clips
        # None: as many as the checkpoint was trained on (its policy spec), else all sampled frames
        self.frames_per_clip = getattr(backend, "frames_per_clip", 0) if frames_per_clip is None else frames_per_clip
        self._clips: deque[Clip] = deque(maxlen=window_clips * 3)
        self._memories: deque[MemoryRecord] = deque(maxlen=preceding_memories)
        self.last_generation: GenerationResult | None = None  # the backend's last output, token figures and all

    @property
    def adapter_version(self) -> str:
        """The steering adapter memories are written with ("" = the base policy)."""
        return getattr(self.backend, "adapter_version", "")

    def set_adapter(self, adapter) -> float:
        """Hot-swap the steering adapter (None = the base policy) between two clips; returns the pause."""
        if not hasattr(self.backend, "set_adapter"):
            raise ValueError(f"the {type(self.backend).__name__} backend cannot run steering adapters")
        return self.backend.set_adapter(adapter)

    def observe(self, clip: Clip) -> None:
        """Remember a clip as context for later windows (call for every clip, even ones never memorized)."""
        if all(c.clip_id != clip.clip_id for c in self._clips):
            self._clips.append(clip)

    def memorize(self, clip: Clip) -> MemoryRecord | RejectedRecord:
        self.observe(clip)
        window = select_window(list(self._clips), clip, self.window_clips)
        preceding = [PrecedingMemory(m.start, m.end, m.text) for m in self._memories]
        started = time.monotonic()
        model_version = self.backend.model_version
        try:
            result = self.backend.generate(build_request(window, preceding, self.frames_per_clip))
        except Exception as err:  # any backend failure is recorded; the node keeps running
            return self._rejected(clip, "", f"backend error: {type(err).__name__}: {err}", model_version)
        self.last_generation = result
        try:
            parsed = parse_output(self._confident(result))
        except MemoryParseError as err:
            return self._rejected(clip, result.text, str(err), model_version, result.adapter_version)
        memory = MemoryRecord(
            memory_id=uuid.uuid4().hex, clip_id=clip.clip_id, start=clip.start, end=clip.end,
            text=parsed.description, entity_ids=parsed.entity_ids, raw_output=result.text[:MAX_RAW_OUTPUT_CHARS],
            model_version=model_version, adapter_version=result.adapter_version,
            generation_seconds=time.monotonic() - started,
        )
        self._memories.append(memory)
        return memory

    def _confident(self, result: GenerationResult) -> str:
        """The output with the statements the model was unsure of left out (the record's raw output keeps them)."""
        if self.min_statement_confidence <= 0.0:
            return result.text
        return confident_statements(result.text, result.token_starts, result.token_probs,
                                    self.min_statement_confidence)

    def warm_up(self) -> float:
        """Run the model once on a blank clip (first calls are slow), so the first real clip is not late.

        Returns the seconds it took; nothing is remembered.
        """
        blank = np.zeros((64, 64, 3), np.uint8)
        clip = Clip("warm-up", 0.0, 10.0, (Frame(0.0, blank), Frame(1.0, blank)), 1.0)
        started = time.monotonic()
        self.backend.generate(build_request([clip], []))
        return time.monotonic() - started

    def _rejected(self, clip: Clip, raw: str, reason: str, model_version: str,
                  adapter_version: str | None = None) -> RejectedRecord:
        return RejectedRecord(
            attempt_id=uuid.uuid4().hex, clip_id=clip.clip_id, start=clip.start, end=clip.end,
            raw_output=raw[:MAX_RAW_OUTPUT_CHARS], reason=reason, model_version=model_version,
            adapter_version=self.adapter_version if adapter_version is None else adapter_version,
        )
