"""Answer context: the memories an answerer reads, within a token budget, in time order with their spans.

Retrieval mode takes memories best first until the next would not fit the budget, then puts them in time
order (`HH:MM:SS-HH:MM:SS\\n<description>` each, as in the paper), so answering scales past what fits in
one prompt. Whole mode is the paper's protocol for short streams: every memory, in time order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskmem_nodes.records import MemoryRecord, render_entry

CONTEXT_MODES = ("retrieval", "whole")
ENTRY_SEPARATOR = "\n\n"


def approximate_tokens(text: str) -> int:
    """Token count estimate for budgets when no tokenizer is at hand: words and punctuation marks, each
    word over 6 letters counting twice (BPE splits long words)."""
    return sum(2 if len(piece) > 6 else 1 for piece in re.findall(r"\w+|[^\w\s]", text))


@dataclass(frozen=True)
class AnswerContext:
    """What the answerer reads."""

    memories: tuple[MemoryRecord, ...]
    """In time order."""
    text: str
    tokens: int
    left_out: int
    """Candidates that did not fit the budget."""


def assemble_context(ranked: Sequence[MemoryRecord], budget_tokens: int,
                     count_tokens: Callable[[str], int] = approximate_tokens) -> AnswerContext:
    """The best memories (given best first) that fit `budget_tokens` together, in time order. A memory
    too long for the remaining budget is skipped, and shorter ones after it may still fit."""
    if budget_tokens <= 0:
        raise ValueError("the context budget must be positive")
    chosen, used, separator = [], 0, count_tokens(ENTRY_SEPARATOR)
    for memory in ranked:
        cost = count_tokens(render_entry(memory)) + (separator if chosen else 0)
        if used + cost <= budget_tokens:
            chosen.append(memory)
            used += cost
    return _context(chosen, used, len(ranked) - len(chosen))


def whole_context(memories: Sequence[MemoryRecord],
                  count_tokens: Callable[[str], int] = approximate_tokens) -> AnswerContext:
    """Every memory, in time order (the paper's protocol)."""
    ordered = sorted(memories, key=lambda m: (m.start, m.end))
    text = ENTRY_SEPARATOR.join(render_entry(m) for m in ordered)
    return AnswerContext(tuple(ordered), text, count_tokens(text) if text else 0, 0)


def _context(chosen: list[MemoryRecord], tokens: int, left_out: int) -> AnswerContext:
    ordered = sorted(chosen, key=lambda m: (m.start, m.end))
    return AnswerContext(tuple(ordered), ENTRY_SEPARATOR.join(render_entry(m) for m in ordered), tokens, left_out)
