"""The memorizers a benchmark compares, behind one small interface.

- `PolicyMemorizer`: the TaskMem policy (50-s window + its own last memories), on any backend.
- `CaptionerMemorizer`: a generic fixed-prompt captioner on the same backend: it sees only the current clip
  and no memory (what ReMEmbR-style stacks do); the baseline a learned policy must beat.
- `OracleMemorizer`: writes the ground-truth description of each clip (upper bound; synthetic world only).
- `NoMemory`: writes nothing, so every question is abstained from (the trivial baseline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from taskmem_nodes.clips import Clip
from taskmem_nodes.memorizer import Memorizer
from taskmem_nodes.models.base import MemorizerBackend
from taskmem_nodes.policy import PolicyRequest, parse_output, pick_frames
from taskmem_nodes.records import MemoryRecord

CAPTION_PROMPT = (
    "Describe what you see in this video. Reply as <think>...</think> followed by a JSON object "
    '{"description": "..."}.'
)


@dataclass(frozen=True)
class ClipContext:
    """Where a clip sits: which stream, and its index in that stream (clip k covers [10k, 10k + 10) s)."""

    stream_id: str
    index: int


class StreamMemorizer(Protocol):
    name: str

    def reset(self) -> None:
        """Forget everything: a new stream starts."""

    def memorize(self, clip: Clip, context: ClipContext) -> str | None:
        """The memory text for `clip`, or None when nothing is written (a rejected output, or by design)."""


class PolicyMemorizer:
    """The TaskMem memorization policy."""

    def __init__(self, backend: MemorizerBackend, min_statement_confidence: float = 0.0, name: str = "policy"):
        self.name = name
        self.backend = backend
        self.min_statement_confidence = min_statement_confidence
        self.reset()

    def reset(self) -> None:
        self._memorizer = Memorizer(self.backend, min_statement_confidence=self.min_statement_confidence)

    def memorize(self, clip: Clip, context: ClipContext) -> str | None:
        result = self._memorizer.memorize(clip)
        return result.text if isinstance(result, MemoryRecord) else None


class CaptionerMemorizer:
    """A fixed-prompt captioner: the current clip only, no memory of earlier clips."""

    def __init__(self, backend: MemorizerBackend, name: str = "captioner"):
        self.name = name
        self.backend = backend

    def reset(self) -> None:
        pass

    def memorize(self, clip: Clip, context: ClipContext) -> str | None:
        frames = pick_frames(clip.frames, getattr(self.backend, "frames_per_clip", 0))
        request = PolicyRequest(
            messages=[{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": CAPTION_PROMPT}]}],
            video=np.stack([f.image for f in frames]),
            frame_times=tuple(f.stamp - clip.start for f in frames),
        )
        try:
            return parse_output(self.backend.generate(request).text).description
        except ValueError:  # MemoryParseError: an unusable caption writes nothing
            return None


class OracleMemorizer:
    """Ground-truth descriptions, looked up per (stream, clip index)."""

    def __init__(self, describe: Callable[[ClipContext], str | None], name: str = "oracle"):
        self.name = name
        self._describe = describe

    def reset(self) -> None:
        pass

    def memorize(self, clip: Clip, context: ClipContext) -> str | None:
        return self._describe(context)


class NoMemory:
    """Writes nothing: every question is abstained from."""

    name = "no-memory"

    def reset(self) -> None:
        pass

    def memorize(self, clip: Clip, context: ClipContext) -> str | None:
        return None
