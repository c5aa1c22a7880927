"""Answering questions from memory text alone, with the right to abstain.

`LexicalAnswerer` is the default: a deterministic reader, not a language model. It reads only the text of
the memories it is given and answers when that text supports one answer clearly:
- multiple choice: each option is scored by the words it shares with memories that are about the question
  (memories weighted by their overlap with the question); the best option must have support and beat the
  runner-up, otherwise it abstains;
- "which happened first / where was it last seen" (an order word and options): the option stated in the
  earliest (or latest) memory sentence that also mentions the question's subject wins;
- open questions: the memory sentence sharing the most content words with the question is the answer, when
  it shares at least `min_overlap` of them; otherwise it abstains ("insufficient information").
Being deterministic, it is a fixed answerer for comparing memorizers; an LLM answerer plugs in behind the
same `Answerer` protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store import query_terms

ABSTAIN_TEXT = "cannot find the answer in memory"


@dataclass(frozen=True)
class Answer:
    """An answer, or an abstention (`answered` False)."""

    answered: bool
    text: str
    option_index: int  # -1 for open questions and abstentions
    memory_ids: tuple[str, ...]  # the memories the answer was read from (all consulted when abstaining)
    explanation: str


class Answerer(Protocol):
    name: str

    def answer(self, question: str, options: Sequence[str], memories: Sequence[MemoryRecord]) -> Answer: ...


def _terms(text: str) -> set[str]:
    """Content words with the common English inflections folded ("carries" -> "carry", "walked" -> "walk")."""
    out = set()
    for word in query_terms(text):
        for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + replacement
                break
        out.add(word)
    return out


_ORDER_WORDS = {"first": min, "earliest": min, "earlier": min, "last": max, "latest": max, "later": max}
_EVENT_WORDS = {"happen", "happened", "occur", "occurred", "seen", "see", "saw", "event", "thing"}


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


@dataclass
class LexicalAnswerer:
    """Deterministic word-overlap reader (see the module docstring)."""

    min_overlap: int = 2
    margin: float = 1e-6
    name: str = "lexical"

    def answer(self, question: str, options: Sequence[str], memories: Sequence[MemoryRecord]) -> Answer:
        consulted = tuple(m.memory_id for m in memories)
        question_terms = _terms(question)
        if not memories:
            return Answer(False, ABSTAIN_TEXT, -1, (), "no memories to read")
        if options:
            order = next((_ORDER_WORDS[w] for w in re.findall(r"\w+", question.lower()) if w in _ORDER_WORDS), None)
            by_time = self._choose_by_time(question_terms, options, memories, order) if order else None
            return by_time or self._choose(question_terms, options, memories, consulted)
        return self._extract(question_terms, memories, consulted)

    def _choose(self, question_terms, options, memories, consulted) -> Answer:
        weighted = []  # (memory, weight, its terms)
        for memory in memories:
            terms = _terms(memory.text)
            weighted.append((memory, 1.0 + len(question_terms & terms), terms))
        scores = []
        for option in options:
            option_terms = _terms(option) - question_terms
            scores.append(sum(w * len(option_terms & terms) for _, w, terms in weighted))
        ranked = sorted(range(len(options)), key=lambda i: scores[i], reverse=True)
        best = ranked[0]
        runner_up = scores[ranked[1]] if len(ranked) > 1 else 0.0
        if scores[best] <= 0 or scores[best] - runner_up <= self.margin:
            return Answer(False, ABSTAIN_TEXT, -1, consulted, f"no option is clearly supported (scores {scores})")
        option_terms = _terms(options[best])
        support = tuple(m.memory_id for m, _, terms in weighted if option_terms & terms)
        return Answer(True, options[best], best, support, f"option scores {scores}")

    def _choose_by_time(self, question_terms, options, memories, order) -> Answer | None:
        """The option whose statement comes first (order=min) or last (max) in time; None when undecided."""
        subject = question_terms - set(_ORDER_WORDS) - _EVENT_WORDS
        times: dict[int, tuple[float, str]] = {}  # option index -> (time, memory id)
        for index, option in enumerate(options):
            option_terms = _terms(option) - subject
            if not option_terms:
                continue
            for memory in memories:
                for sentence in _sentences(memory.text):
                    terms = _terms(sentence)
                    if option_terms <= terms and (not subject or subject & terms):
                        found = (memory.start, memory.memory_id)
                        if index not in times or order(found[0], times[index][0]) != times[index][0]:
                            times[index] = found
        if not times or (len(times) < 2 and not subject):
            return None
        best_time = order(t for t, _ in times.values())
        winners = [i for i, (t, _) in times.items() if t == best_time]
        if len(winners) != 1:
            return None
        index = winners[0]
        return Answer(True, options[index], index, (times[index][1],), f"stated {order.__name__} in time")

    def _extract(self, question_terms, memories, consulted) -> Answer:
        best: tuple[int, str, str] | None = None  # (overlap, sentence, memory id)
        for memory in memories:
            for sentence in _sentences(memory.text):
                overlap = len(question_terms & _terms(sentence))
                if best is None or overlap > best[0]:
                    best = (overlap, sentence, memory.memory_id)
        if best is None or best[0] < self.min_overlap:
            found = 0 if best is None else best[0]
            return Answer(False, ABSTAIN_TEXT, -1, consulted, f"best sentence shares {found} words with the question")
        return Answer(True, best[1], -1, (best[2],), f"sentence shares {best[0]} words with the question")


def make_answerer(name: str, **options) -> Answerer:
    """Answerer by name (the task node's `answerer` parameter)."""
    if name == "lexical":
        return LexicalAnswerer(**options)
    raise ValueError(f"unknown answerer {name!r}; available: lexical")
