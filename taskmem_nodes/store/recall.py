"""What a recall asks for, what it returns, and how ranked lists are fused."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from taskmem_nodes.records import MemoryRecord

MODES = ("hybrid", "text", "vector")
SYNTAXES = ("words", "fts")
RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al. 2009): a hit at rank r in a list adds 1 / (RRF_K + r)."""


@dataclass(frozen=True)
class RecallQuery:
    """One recall: free text and filters."""

    text: str = ""
    """Words to look for; empty = no text ranking (most recent first, or nearest to `around`)."""
    k: int = 8
    start: float | None = None
    """Only memories that end at or after this time (seconds)."""
    end: float | None = None
    """Only memories that start at or before this time."""
    around: float | None = None
    """Rank by closeness in time to this moment too, within `around_seconds` of it."""
    around_seconds: float = 600.0
    entity_ids: tuple[str, ...] = ()
    """Only memories that mention any of these entities."""
    task_type: str = ""
    """Only memories written under an adapter trained for this task type."""
    mode: str = "hybrid"
    """hybrid: BM25 and vectors fused; text: BM25 only; vector: embeddings only."""
    syntax: str = "words"
    """words: free text reduced to quoted terms (never a syntax error); fts: the text is an FTS5 query."""
    include_replaced: bool = False
    """Also memories that a merge or summary replaced (kept because an answer cites them)."""

    def window(self) -> tuple[float | None, float | None]:
        """The time window after `around` is applied."""
        start, end = self.start, self.end
        if self.around is not None:
            low, high = self.around - self.around_seconds, self.around + self.around_seconds
            start = low if start is None else max(start, low)
            end = high if end is None else min(end, high)
        return start, end


@dataclass
class RecallResult:
    """Best memories first, with their fused score, and notes on how the recall was done."""

    hits: list[tuple[MemoryRecord, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hashable]], k: int, rrf_k: int = RRF_K
                           ) -> list[tuple[Hashable, float]]:
    """Fuse ranked lists (best first) into the best `k` (item, score); ties keep the earlier list's order."""
    scores: dict[Hashable, float] = {}
    first_seen: dict[Hashable, tuple[int, int]] = {}
    for list_index, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
            first_seen.setdefault(item, (rank, list_index))
    ordered = sorted(scores, key=lambda item: (-scores[item], first_seen[item]))
    return [(item, scores[item]) for item in ordered[:k]]
