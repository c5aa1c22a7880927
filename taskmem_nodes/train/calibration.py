"""How well a memorizer knows which of its statements are wrong: each statement's confidence (the probability of
its least likely token, what the confidence floor reads) against ground truth, on held-out simulated streams
played the deployed way (the memorizer's own preceding memories), and what its statements are: new, repeated,
false or copied from a memory shown, and how the false ones are wrong (`error_of`). `taskmem train calibration`
prints it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskmem_nodes.memorizer import Memorizer
from taskmem_nodes.models.base import MemorizerBackend
from taskmem_nodes.policy import PRECEDING_MEMORIES, statement_confidences
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import stream_clips
from taskmem_nodes.train.fact_judge import (
    FALSE_VERDICTS,
    JudgedClip,
    statement_verdicts,
    statements,
    verdict_value,
)
from taskmem_nodes.train.inspect import group_counts, named_person, statement_kind

CALIBRATION_SEEDS = (557_001, 557_002, 557_003, 557_004)
"""World seeds no recipe trains on, validates on or inspects (see `inspect.HELD_OUT_SEEDS`)."""

DEFAULT_FLOORS = (0.3, 0.4, 0.5, 0.6, 0.7)


ERRORS = {"group": {"count": "miscounted", "place": "misplaced", "thing": "no such things"},
          "person": {"id": "another's id", "shirt": "shirt", "doing": "what they do", "nobody": "no such person"}}
"""How a false statement of each kind is wrong (`error_of`), with the names the breakdown prints."""


@dataclass(frozen=True)
class ScoredStatement:
    kind: str  # "room", "person", "group" (an object group) or "other"
    confidence: float  # probability of its least likely token
    verdict: str  # `fact_judge.STATEMENT_VERDICTS`
    error: str = ""  # how a false group or person statement is wrong (`ERRORS`)

    @property
    def value(self) -> int:
        """+1 a new true fact, -1 false or repeated, 0 the clip's room (`fact_judge.verdict_value`)."""
        return verdict_value(self.verdict)


def error_of(kind: str, sentence: str, truth: set[str]) -> str:
    """How the false statement `sentence` of `kind` is wrong against the clip's `truth` (`ERRORS`): a group
    the clip shows with another count, those things at another place, or no such things; a person the clip shows
    in another shirt or doing something else, someone the clip shows under another id, or nobody it shows.
    "" for the other kinds."""
    if kind == "group":
        group = next(iter(group_counts(f"{sentence}.")))
        shown = group_counts(" ".join(f"{fact}." for fact in sorted(truth)))
        if group in shown:
            return "count"
        things = group.partition(" on the ")[0]
        return "place" if any(key.partition(" on the ")[0] == things for key in shown) else "thing"
    if kind == "person":
        who, shirt = named_person(sentence), _shirt(sentence)
        people = [fact for fact in truth if statement_kind(fact) == "person"]
        same = [fact for fact in people if named_person(fact) == who]
        if same:
            return "doing" if any(_shirt(fact) == shirt for fact in same) else "shirt"
        return "id" if any(_shirt(fact) == shirt for fact in people) else "nobody"
    return ""


def _shirt(sentence: str) -> str:
    """The shirt colour of a person statement ("person 3 in green is cooking" -> "green")."""
    words = sentence.split()
    return words[3] if len(words) > 3 and words[2] == "in" else ""


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
                shown = preceding[-PRECEDING_MEMORIES:]
                truth = JudgedClip.of(world, index, shown).truth
                verdicts = statement_verdicts(world, index, record.text, shown)
                for sentence, verdict in zip(statements(record.text), verdicts, strict=True):
                    if sentence not in confidence:
                        continue
                    kind = statement_kind(sentence)
                    if kind == "other" and group_counts(f"{sentence}."):
                        kind = "group"
                    error = error_of(kind, sentence, truth) if verdict == "false" else ""
                    scored.append(ScoredStatement(kind, confidence[sentence], verdict, error))
                preceding.append(record.text)
            if on_clip is not None:
                on_clip()
    return scored


def separation(scored: Sequence[ScoredStatement], *kinds: str) -> float | None:
    """Area under the ROC curve of confidence telling the true statements of `kinds` from their wrong ones (0.5: no
    better than chance); None when either side is empty."""
    true = [s.confidence for s in scored if s.kind in kinds and s.value > 0]
    wrong = [s.confidence for s in scored if s.kind in kinds and s.value < 0]
    if not true or not wrong:
        return None
    wins = sum((t > w) + 0.5 * (t == w) for t in true for w in wrong)
    return wins / (len(true) * len(wrong))


def kept_above(scored: Sequence[ScoredStatement], floor: float) -> dict[str, float]:
    """What a floor keeps: `true` (new) and `wrong` (false or repeated) statements after the room, and `fidelity`
    (the fraction of kept statements, rooms included, that are true, repeated or not, as the benchmark counts it)."""
    kept = [s for s in scored if s.kind == "room" or s.confidence >= floor]
    body = [s for s in kept if s.kind != "room"]
    return {"true": sum(s.value > 0 for s in body), "wrong": sum(s.value < 0 for s in body),
            "fidelity": sum(s.verdict not in FALSE_VERDICTS for s in kept) / len(kept) if kept else 0.0}


def breakdown(scored: Sequence[ScoredStatement]) -> dict[str, Counter]:
    """Per kind of statement ("person", "group", "other"): how many were `said`, how many of each verdict, and of
    the false groups and people how many of each of their `ERRORS`."""
    rows: dict[str, Counter] = {kind: Counter() for kind in ("person", "group", "other")}
    for statement in scored:
        if statement.kind in rows:
            rows[statement.kind].update(["said", statement.verdict])
            if statement.error:
                rows[statement.kind][statement.error] += 1
    return rows
