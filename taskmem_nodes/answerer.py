"""Answering questions from memory text alone, with the right to abstain.

`LexicalAnswerer` is the default: a deterministic reader, not a language model. It reads only the text of
the memories it is given, sentence by sentence, and answers when that text supports one answer clearly:
- the question's *subject* is its content words minus question filler ("what colour", "doing", "these") and
  minus the words of the options; only sentences that state the whole subject are evidence;
- multiple choice: an option is supported by an evidence sentence that contains all its own words; with an
  order word ("first", "last", "earliest", "latest") the option stated earliest or latest in time wins, else
  the option with the most supporting sentences; no support, or a tie, is an abstention;
- open questions: the evidence sentence (the latest, or the earliest for "first") is the answer, when it
  shares at least `min_overlap` words with the question; otherwise it abstains ("insufficient information").
Being deterministic, it is a fixed answerer for comparing memorizers; an LLM answerer plugs in behind the
same `Answerer` protocol.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store import STOPWORDS

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


def _fold(word: str) -> str:
    """Fold common English inflections: "carries", "carrying" -> "carry"; "sitting", "sits" -> "sit";
    "bottles", "bottle" -> "bottl"; "boxes" -> "box"."""
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + replacement
            if suffix in ("ing", "ed") and len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "ls":
                word = word[:-1]  # sitting -> sitt -> sit
            break
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


def content_words(text: str) -> list[str]:
    """Content words of `text` in order, folded."""
    return [_fold(w) for w in re.findall(r"\w+", text.lower()) if w not in STOPWORDS]


def _terms(text: str) -> set[str]:
    return set(content_words(text))


def _states(phrase: list[str], tokens: list[str], slack: int = 1) -> bool:
    """True when the words of `phrase` occur close together in `tokens`, in any order, with at most `slack`
    other words among them ("red mug" matches "red coffee mug", not "red shirt carrying a white mug")."""
    wanted = set(phrase)
    limit = len(wanted) + slack
    for start, token in enumerate(tokens):
        if token not in wanted:
            continue
        window = tokens[start: start + limit]
        if wanted <= set(window):
            return True
    return False


_ORDER_WORDS = {"first": min, "earliest": min, "earlier": min, "last": max, "latest": max, "later": max}
_FILLER_WORDS = {_fold(w) for w in ("happen", "occur", "seen", "see", "saw", "event", "thing", "these", "those",
                                     "colour", "color", "kind", "type", "many", "much", "doing", "wear")}


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


@dataclass(frozen=True)
class _Evidence:
    memory_id: str
    when: tuple[float, int]  # (memory start, sentence position): orders statements in time
    sentence: str
    tokens: tuple[str, ...]

    @property
    def terms(self) -> frozenset[str]:
        return frozenset(self.tokens)


@dataclass
class LexicalAnswerer:
    """Deterministic sentence reader (see the module docstring)."""

    min_overlap: int = 2
    name: str = "lexical"

    def answer(self, question: str, options: Sequence[str], memories: Sequence[MemoryRecord]) -> Answer:
        consulted = tuple(m.memory_id for m in memories)
        if not memories:
            return Answer(False, ABSTAIN_TEXT, -1, (), "no memories to read")
        words = re.findall(r"\w+", question.lower())
        order = next((_ORDER_WORDS[w] for w in words if w in _ORDER_WORDS), None)
        option_terms = [_terms(o) for o in options]
        not_subject = {_fold(w) for w in _ORDER_WORDS} | _FILLER_WORDS | set().union(*option_terms)
        phrases = self._subject_phrases(content_words(question), not_subject)
        subject = {word for phrase in phrases for word in phrase}
        evidence = [e for e in self._statements(memories) if all(_states(p, list(e.tokens)) for p in phrases)]
        if not evidence:
            return Answer(False, ABSTAIN_TEXT, -1, consulted, f"no memory states {sorted(subject)}")
        if options:
            return self._choose(options, option_terms, subject, evidence, order, consulted)
        return self._extract(_terms(question), evidence, order, consulted)

    @staticmethod
    def _subject_phrases(tokens: list[str], not_subject: set[str]) -> list[list[str]]:
        """Runs of subject words in the question ("where was the red mug last seen" -> [["red", "mug"]])."""
        phrases, current = [], []
        for token in tokens:
            if token in not_subject:
                if current:
                    phrases.append(current)
                current = []
            else:
                current.append(token)
        return [*phrases, current] if current else phrases

    @staticmethod
    def _statements(memories: Sequence[MemoryRecord]) -> list[_Evidence]:
        return [_Evidence(m.memory_id, (m.start, i), sentence, tuple(content_words(sentence)))
                for m in memories for i, sentence in enumerate(split_sentences(m.text))]

    def _choose(self, options, option_terms, subject, evidence, order, consulted) -> Answer:
        support: dict[int, list[_Evidence]] = {}
        for index, terms in enumerate(option_terms):
            own = terms - subject
            found = [e for e in evidence if own and own <= e.terms]
            if found:
                support[index] = found
        if not support:
            return Answer(False, ABSTAIN_TEXT, -1, consulted, "no option is stated with the subject")
        if order is not None:
            if not subject and len(support) < 2:  # "which happened first?" needs two of the events in memory
                return Answer(False, ABSTAIN_TEXT, -1, consulted, "fewer than two of the options are in memory")
            when = {i: order(e.when for e in found) for i, found in support.items()}
            best_time = order(when.values())
            winners = [i for i, t in when.items() if t == best_time]
        else:
            most = max(len(found) for found in support.values())
            winners = [i for i, found in support.items() if len(found) == most]
        if len(winners) != 1:
            return Answer(False, ABSTAIN_TEXT, -1, consulted, f"options {winners} are equally supported")
        best = winners[0]
        cited = tuple(dict.fromkeys(e.memory_id for e in support[best]))
        how = f"stated {order.__name__} in time" if order else f"stated in {len(support[best])} sentences"
        return Answer(True, options[best], best, cited, how)

    def _extract(self, question_terms, evidence, order, consulted) -> Answer:
        pick = order or max
        best = pick(evidence, key=lambda e: (len(question_terms & e.terms), e.when) if pick is max
                    else (-len(question_terms & e.terms), e.when))
        shared = len(question_terms & best.terms)
        if shared < self.min_overlap:
            return Answer(False, ABSTAIN_TEXT, -1, consulted, f"best sentence shares {shared} words with the question")
        return Answer(True, best.sentence, -1, (best.memory_id,), f"sentence shares {shared} words with the question")


def make_answerer(name: str, **options) -> Answerer:
    """Answerer by name (the task node's `answerer` parameter)."""
    if name == "lexical":
        return LexicalAnswerer(**options)
    raise ValueError(f"unknown answerer {name!r}; available: lexical")
