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

from taskmem_nodes.sim.world import World


def statements(text: str) -> list[str]:
    """Normalized sentences of a memory entry."""
    return [s for s in (" ".join(part.lower().split()).rstrip(".") for part in re.split(r"(?<=\.)\s+", text))
            if s]


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


def judge_entry(world: World, index: int, text: str, preceding: Sequence[str] = ()) -> EntryVerdict:
    """Judge the memory `text` written for clip `index` of `world`, given the memories of the clips before."""
    clip = world.clips[index]
    truth = {s for fact in clip.facts for s in statements(fact.text)}
    room = statements(f"in the {clip.room}.")[0]
    new = set(statements(world.describe_new(index)))
    news = len(new - {room})
    said_before = {s for memory in preceding for s in statements(memory)} - {room} - new
    said = statements(text)
    true = [s for s in said if s in truth]
    redundant = [s for s in said if s in said_before]
    rich = {s for s in true if s not in said_before and s != room}
    return EntryVerdict(len(said), len(true), len(redundant), len(rich), news)
