"""Bounded growth: once a budget (rows or payload bytes) is set, merge near-duplicate consecutive
memories, and consolidate old ones into coarser summaries until the store is within the budget.

- **Merge**: consecutive memories (the next starts within `merge_gap_seconds` of the previous' end) whose
  content words overlap by at least `merge_similarity` (Jaccard) become one memory spanning both, with the
  sentences of the later ones that add something.
- **Consolidate**: while over budget, memories older than `keep_recent_seconds` (before the newest one's
  end) are grouped into windows of `summary_span_seconds` and each window becomes one extractive summary:
  its sentences that add the most content words not yet covered, up to `summary_chars`, in time order.
  If still over budget, the windows grow `span_growth` times and summaries are summarised in turn.
- Every replacement records provenance (which memories it replaced); memories that a logged answer cites
  are never deleted, only marked as replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from taskmem_nodes.answerer import content_words, split_sentences
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store.memory_store import MemoryStore

MAX_LEVELS = 4


@dataclass
class RetentionConfig:
    """The retention policy (the store node's `retention_*` parameters)."""

    max_memories: int = 0
    """Active memories to keep at most (0 = no row budget)."""
    max_bytes: int = 0
    """Payload bytes (text, raw output and vectors of active memories) to keep at most (0 = no byte budget)."""
    merge_similarity: float = 0.8
    """Content-word Jaccard similarity at which consecutive memories are near-duplicates (> 1 = never merge)."""
    merge_gap_seconds: float = 1.0
    """Memories are consecutive when the next starts at most this long after the previous ends."""
    keep_recent_seconds: float = 3600.0
    """Memories that ended within this time of the newest memory are never consolidated."""
    summary_span_seconds: float = 600.0
    """Time window of a first-level summary."""
    span_growth: float = 6.0
    """Each further level's window is this many times longer."""
    summary_chars: int = 1000
    """Longest summary text."""

    def __post_init__(self) -> None:
        if self.max_memories < 0 or self.max_bytes < 0:
            raise ValueError("retention budgets must be 0 (none) or positive")
        if self.summary_span_seconds <= 0 or self.span_growth <= 1 or self.summary_chars < 80:
            raise ValueError("summary_span_seconds must be > 0, span_growth > 1 and summary_chars >= 80")

    @property
    def bounded(self) -> bool:
        return bool(self.max_memories or self.max_bytes)


@dataclass
class RetentionReport:
    merged: int = 0
    """Memories folded into a merge."""
    summarised: int = 0
    """Memories folded into a summary."""
    written: int = 0
    """Merges and summaries written."""
    active_before: int = 0
    active_after: int = 0
    over_budget: bool = False
    """Still over budget: what is left is recent or already at the coarsest level."""


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the content words of two texts."""
    words_a, words_b = set(content_words(a)), set(content_words(b))
    if not words_a and not words_b:
        return 1.0
    return len(words_a & words_b) / len(words_a | words_b)


def _replacement_id(kind: str, replaced: Sequence[MemoryRecord]) -> str:
    digest = hashlib.sha1("\n".join(m.memory_id for m in replaced).encode()).hexdigest()[:12]
    return f"{kind}-{digest}"


def merged_memory(run: Sequence[MemoryRecord]) -> MemoryRecord:
    """One memory for a run of near-duplicates: the first's text plus the sentences of the others that are new."""
    sentences = split_sentences(run[0].text)
    for memory in run[1:]:
        sentences += [s for s in split_sentences(memory.text) if all(similarity(s, t) < 0.8 for t in sentences)]
    first = run[0]
    return MemoryRecord(
        _replacement_id("merged", run), first.clip_id, first.start, max(m.end for m in run), " ".join(sentences),
        entity_ids=tuple(dict.fromkeys(e for m in run for e in m.entity_ids)), model_version=first.model_version,
        adapter_version=first.adapter_version, created_at=max(m.created_at for m in run), frame_id=first.frame_id,
        pose=first.pose, kind="merged",
    )


def summary_memory(group: Sequence[MemoryRecord], max_chars: int) -> MemoryRecord:
    """An extractive summary of memories in time order: greedily the sentences that add most new content
    words (near-duplicates skipped), within `max_chars`, put back in time order."""
    sentences = [s for m in group for s in split_sentences(m.text)]
    candidates = [(i, s, set(content_words(s))) for i, s in enumerate(sentences)]
    covered: set[str] = set()
    chosen: list[tuple[int, str]] = []
    length = 0
    while candidates:
        index, sentence, words = max(candidates, key=lambda c: (len(c[2] - covered), -c[0]))
        candidates = [c for c in candidates if c[0] != index]
        if not words - covered or length + len(sentence) + 1 > max_chars:
            continue
        chosen.append((index, sentence))
        covered |= words
        length += len(sentence) + 1
    text = " ".join(s for _, s in sorted(chosen)) or group[0].text[:max_chars]
    return MemoryRecord(
        _replacement_id("summary", group), group[0].clip_id, group[0].start, max(m.end for m in group), text,
        entity_ids=tuple(dict.fromkeys(e for m in group for e in m.entity_ids)),
        model_version=group[0].model_version, created_at=max(m.created_at for m in group), kind="summary",
    )


def merge_near_duplicates(store: MemoryStore, config: RetentionConfig, since: float | None = None
                          ) -> tuple[int, int]:
    """Merge runs of near-duplicate consecutive memories (starting at `since`): (memories folded, merges written)."""
    if config.merge_similarity > 1:
        return 0, 0
    folded, written, run = 0, 0, []
    for memory in [*store.memories(start=since), None]:
        if (memory is not None and run and memory.kind != "summary"
                and memory.start - run[-1].end <= config.merge_gap_seconds
                and similarity(memory.text, run[-1].text) >= config.merge_similarity):
            run.append(memory)
            continue
        if len(run) > 1:
            store.replace_memories(merged_memory(run), [m.memory_id for m in run])
            folded += len(run)
            written += 1
        run = [memory] if memory is not None and memory.kind != "summary" else []
    return folded, written


@dataclass
class _Usage:
    """Active memories and payload bytes, kept up to date as replacements are written (recounting a large
    store after every summary would cost more than the summaries)."""

    memories: int
    payload: int

    @classmethod
    def of(cls, store: MemoryStore, config: RetentionConfig) -> _Usage:
        return cls(store.counts()["active_memories"], store.payload_bytes() if config.max_bytes else 0)

    def over(self, config: RetentionConfig) -> bool:
        return bool((config.max_memories and self.memories > config.max_memories)
                    or (config.max_bytes and self.payload > config.max_bytes))


def consolidate(store: MemoryStore, config: RetentionConfig, report: RetentionReport) -> None:
    """Summarise old memories, oldest window first, coarser levels as needed, until within budget."""
    usage = _Usage.of(store, config)
    newest = store.latest_memory()
    if newest is None:
        return
    horizon = newest.end - config.keep_recent_seconds
    span = config.summary_span_seconds
    for _ in range(MAX_LEVELS):
        if not usage.over(config):
            break
        windows: dict[int, list[MemoryRecord]] = {}
        for memory in store.memories(end=horizon):
            if memory.end <= horizon:
                windows.setdefault(int(memory.start // span), []).append(memory)
        for _, group in sorted(windows.items()):
            if len(group) < 2:
                continue
            usage.payload -= store.replace_memories(summary_memory(group, config.summary_chars),
                                                    [m.memory_id for m in group])
            usage.memories -= len(group) - 1
            report.summarised += len(group)
            report.written += 1
            if not usage.over(config):
                break
        span *= config.span_growth
    report.over_budget = _Usage.of(store, config).over(config)


def apply_retention(store: MemoryStore, config: RetentionConfig, since: float | None = None) -> RetentionReport:
    """With a budget set: merge near-duplicates (from `since`), then consolidate while over budget. Without
    one, memory is left as written."""
    report = RetentionReport(active_before=store.counts()["active_memories"])
    if config.bounded:
        report.merged, report.written = merge_near_duplicates(store, config, since)
        consolidate(store, config, report)
    report.active_after = store.counts()["active_memories"]
    return report
