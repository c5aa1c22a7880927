"""Judging a memory entry against the simulated world's ground truth: the paper's quality and richness.

- a *statement* is a sentence of the entry; it is **true** when it states a fact the camera saw in the clip
  (its canonical sentence, compared after normalizing case, spaces and the full stop);
- it is **redundant** when one of the preceding memories already states it and it is not new in this clip
  (a state that changed and changed back, or a person who came back, is worth stating again);
- the entry is **filler** when it adds no new true fact although the clip shows something new (a bare "in the
  hall." after a clip full of events): the paper's text judge rejects filler;
- the entry is **correct** (quality: fidelity AND non-redundancy) when every statement is true, none is
  redundant and it is not filler; its **richness** is the number of distinct true statements that are not
  redundant.
On real video the same questions go to an LLM judge behind `taskmem_nodes.bench.judges`' endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from taskmem_nodes.sim.world import World, room_sentence


def sentence_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalized sentence) of each sentence of a memory entry, in order."""
    spans, start = [], 0
    for gap in [*re.finditer(r"(?<=\.)\s+", text), None]:
        end = gap.start() if gap else len(text)
        if normalized := " ".join(text[start:end].lower().split()).rstrip("."):
            spans.append((start, end, normalized))
        start = gap.end() if gap else end
    return spans


def statements(text: str) -> list[str]:
    """Normalized sentences of a memory entry."""
    return [sentence for _, _, sentence in sentence_spans(text)]


@dataclass(frozen=True)
class EntryVerdict:
    """What ground truth says about one memory entry."""

    statements: int
    true: int
    redundant: int
    rich: int  # distinct true, non-redundant statements (the room sentence not counted)
    news: int = 0  # new facts the clip shows (ground truth's rich); 0 when nothing new happened

    @property
    def wrong(self) -> int:
        """Statements that are false or repeat the preceding memories."""
        return self.statements - self.true + self.redundant

    @property
    def filler(self) -> bool:
        return self.rich == 0 and self.news > 0

    @property
    def fidelity(self) -> float:
        return self.true / self.statements if self.statements else 0.0

    @property
    def correct(self) -> bool:
        return self.statements > 0 and self.wrong == 0 and not self.filler


@dataclass(frozen=True)
class JudgedClip:
    """What a clip's memory is judged against."""

    truth: set[str]  # every fact the clip shows
    room: str
    new: set[str]  # what the clip shows that is new
    said_before: set[str]  # what the preceding memories state that is not new in this clip

    @classmethod
    def of(cls, world: World, index: int, preceding: Sequence[str]) -> JudgedClip:
        clip = world.clips[index]
        room = statements(room_sentence(clip.room))[0]
        new = set(statements(world.describe_new(index)))
        said_before = {s for memory in preceding for s in statements(memory)} - {room} - new
        return cls({s for fact in clip.facts for s in statements(fact.text)}, room, new, said_before)


def judge_entry(world: World, index: int, text: str, preceding: Sequence[str] = ()) -> EntryVerdict:
    """Judge the memory `text` written for clip `index` of `world`, given the memories of the clips before."""
    clip_truth = JudgedClip.of(world, index, preceding)
    truth, room, said_before = clip_truth.truth, clip_truth.room, clip_truth.said_before
    news = len(clip_truth.new - {room})
    said = statements(text)
    true = [s for s in said if s in truth]
    redundant = [s for s in said if s in said_before]
    rich = {s for s in true if s not in said_before and s != room}
    return EntryVerdict(len(said), len(true), len(redundant), len(rich), news)


STATEMENT_VERDICTS = ("room", "new", "repeated", "false", "copied")
"""What `statement_verdicts` calls a sentence: the clip's room, a new true fact, a true one the memory already
holds (the memories shown or an earlier sentence of the entry), a false one, a false one copied from the
memories shown."""


FALSE_VERDICTS = ("false", "copied")
"""The verdicts of statements that are not true of the clip."""


def verdict_value(verdict: str) -> int:
    """+1 a new true fact, 0 the clip's room, -1 anything else (false or repeated): what `statement_values` gives."""
    return {"room": 0, "new": 1}.get(verdict, -1)


def statement_verdicts(world: World, index: int, text: str, preceding: Sequence[str] = ()) -> list[str]:
    """Per sentence of `text` (as `sentence_spans` finds them), one of `STATEMENT_VERDICTS`."""
    clip_truth = JudgedClip.of(world, index, preceding)
    shown = {s for memory in preceding for s in statements(memory)}
    verdicts, seen = [], set()
    for sentence in statements(text):
        if sentence not in clip_truth.truth:
            verdicts.append("copied" if sentence in shown else "false")
        elif sentence in clip_truth.said_before or sentence in seen:
            verdicts.append("repeated")
        else:
            verdicts.append("room" if sentence == clip_truth.room else "new")
        seen.add(sentence)
    return verdicts


def statement_values(world: World, index: int, text: str, preceding: Sequence[str] = ()) -> list[int]:
    """Per sentence of `text` (as `sentence_spans` finds them): +1 a true fact that is new to the memory (what
    `EntryVerdict.rich` counts), -1 a false statement or one that repeats the preceding memories or an
    earlier sentence of the entry, 0 the room."""
    return [verdict_value(verdict) for verdict in statement_verdicts(world, index, text, preceding)]


def departure(sentence: str, clip: JudgedClip, earlier: set[str]) -> int | None:
    """Where a normalized statement of a memory went wrong: None when it is a new true fact or the room; 0 when
    it repeats the memories shown or an `earlier` sentence of the entry (stating it at all was the error); else
    the first character where it differs from the most alike true fact of the clip (a miscounted group's count,
    a person's wrong shirt or action)."""
    if sentence in clip.said_before or sentence in earlier:
        return 0
    if sentence in clip.truth:
        return None
    if not clip.truth:
        return 0
    closest = max(sorted(clip.truth), key=lambda fact: SequenceMatcher(None, sentence, fact).ratio())
    return next((k for k, (x, y) in enumerate(zip(sentence, closest)) if x != y), min(len(sentence), len(closest)))
