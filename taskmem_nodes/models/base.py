"""The memorizer backend interface shared by every inference runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class BackendError(RuntimeError):
    """A backend cannot load its checkpoint or cannot serve a request."""


@dataclass(frozen=True)
class GenerationResult:
    """One memorizer response.

    Attributes:
        text: the raw decoded model response with special tokens removed, e.g.
            '<think>...</think>\\n\\n{"description": "..."}'. It may be malformed when decoding is free.
        prompt_tokens: tokens of the expanded prompt (text + vision placeholders).
        output_tokens: newly generated tokens, including the closing end-of-turn token.
        seconds: wall time of the whole request (preprocessing + generation + decoding).
        adapter_version: the steering adapter the response was generated with ("" = none).
        token_starts: where each generated token starts in `text` (empty when the backend does not tell).
        token_probs: each generated token's probability when it was chosen, under the decoding's constraints;
            the memorizer leaves out statements it was unsure of (`policy.confident_statements`).
    """

    text: str
    prompt_tokens: int
    output_tokens: int
    seconds: float
    adapter_version: str = ""
    token_starts: tuple[int, ...] = ()
    token_probs: tuple[float, ...] = ()


@runtime_checkable
class MemorizerBackend(Protocol):
    """A loaded (or loadable) memorizer model.

    `generate` takes a request with `messages`, `video` (T, H, W, 3) uint8 and `frame_times`
    (see `taskmem_nodes.policy.PolicyRequest`).
    """

    model_version: str

    def load(self) -> None: ...

    def unload(self) -> None: ...

    @property
    def loaded(self) -> bool: ...

    def generate(self, request: Any) -> GenerationResult: ...
