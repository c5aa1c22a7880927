"""How well a memorizer knows which of its statements are wrong: each statement's confidence (the probability of
its least likely token, what the confidence floor reads) against ground truth, on held-out simulated streams
played the deployed way (the memorizer's own preceding memories). `taskmem train calibration` prints it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskmem_nodes.memorizer import Memorizer
from taskmem_nodes.models.base import MemorizerBackend
from taskmem_nodes.policy import PRECEDING_MEMORIES, statement_confidences
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import stream_clips
from taskmem_nodes.train.fact_judge import statement_values, statements
from taskmem_nodes.train.inspect import statement_kind

CALIBRATION_SEEDS = (557_001, 557_002, 557_003, 557_004)
"""World seeds no recipe trains on, validates on or inspects (see `inspect.HELD_OUT_SEEDS`)."""

DEFAULT_FLOORS = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class ScoredStatement:
    kind: str  # "room", "person" or "other" (`inspect.statement_kind`)
    confidence: float  # probability of its least likely token
    value: int  # +1 a new true fact, -1 false or repeated, 0 the clip's room (`fact_judge.statement_values`)


def score_statements(backend: MemorizerBackend, seeds: Sequence[int] = CALIBRATION_SEEDS, clips_per_world: int = 15,
                     on_clip: Callable[[], None] | None = None) -> list[ScoredStatement]:
    """Stream `clips_per_world` clips of each held-out world through a memorizer on the loaded `backend`, with
    no floor (every statement it writes is scored), and score each statement of each memory."""
    scored: list[ScoredStatement] = []
    for seed in seeds:
        world = World(WorldConfig(seed=seed))
        memorizer = Memorizer(backend)
        preceding: list[str] = []
        for index, clip in enumerate(stream_clips(world, 1.0)[:clips_per_world]):
            record = memorizer.memorize(clip)
            result = memorizer.last_generation
            if isinstance(record, MemoryRecord) and result is not None:
                confidence: dict[str, float] = {}  # the memory keeps a repeated statement's first occurrence
                for part, value in statement_confidences(result.text, result.token_starts, result.token_probs) or []:
                    for sentence in statements(part):
                        confidence.setdefault(sentence, value)
                sentences = statements(record.text)
                values = statement_values(world, index, record.text, preceding[-PRECEDING_MEMORIES:])
                scored += [ScoredStatement(statement_kind(s), confidence[s], v)
                           for s, v in zip(sentences, values, strict=True) if s in confidence]
                preceding.append(record.text)
            if on_clip is not None:
                on_clip()
    return scored


def separation(scored: Sequence[ScoredStatement], kind: str) -> float | None:
    """Area under the ROC curve of confidence telling `kind`'s true statements from its wrong ones (0.5: no
    better than chance); None when either side is empty."""
    true = [s.confidence for s in scored if s.kind == kind and s.value > 0]
    wrong = [s.confidence for s in scored if s.kind == kind and s.value < 0]
    if not true or not wrong:
        return None
    wins = sum((t > w) + 0.5 * (t == w) for t in true for w in wrong)
    return wins / (len(true) * len(wrong))


def kept_above(scored: Sequence[ScoredStatement], floor: float) -> dict[str, float]:
    """What a floor keeps: `true` and `wrong` statements after the room, and `fidelity` (the fraction of kept
    statements, rooms included, that are not wrong, as the benchmark counts it)."""
    kept = [s for s in scored if s.kind == "room" or s.confidence >= floor]
    body = [s for s in kept if s.kind != "room"]
    return {"true": sum(s.value > 0 for s in body), "wrong": sum(s.value < 0 for s in body),
            "fidelity": sum(s.value >= 0 for s in kept) / len(kept) if kept else 0.0}
