"""Phase Two's task-relevance reward model: shown ~5 recent questions of one task type and two memories of the
same clip, which memory is more useful for answering questions like these (or a tie)?

- `GroundTruthTaskJudge` (the synthetic world): the memory with more true, new facts of the kinds such
  questions are answered from (`sim.tasks.ANSWERING_FACTS`; a fact about something a question names counts
  twice), each false statement counting against it;
- `AnsweringTaskJudge` (the synthetic world): the memory that, read after the clip's preceding memories, answers
  more of the questions of that type the clip itself holds, as the fixed answerer reads it (a right answer +1, a
  wrong one -1, an abstention 0): a statement that is half right (a miscounted group, in the right place) still
  answers a location question;
- `OpenAITaskJudge`: a model behind an OpenAI-compatible endpoint answers "A", "B" or "tie".
Callers judge every pair in both orders and keep only verdicts that agree (`preferences.judge_pairs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from taskmem_nodes.answerer import LexicalAnswerer
from taskmem_nodes.bench.judges import ChatEndpoint, JudgeError, endpoint_spec
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.sim.tasks import TaskConfig, TaskGenerator, answers_task_type
from taskmem_nodes.sim.world import World
from taskmem_nodes.train.fact_judge import statements

Verdict = Literal["first", "second", "tie"]


@dataclass(frozen=True)
class ClipRef:
    """The clip two candidate memories were written for."""

    stream_id: str
    index: int
    preceding: tuple[str, ...] = ()  # the memories of the clips before it, as the policy saw them


def _verdict(first_score: int, second_score: int) -> Verdict:
    return "first" if first_score > second_score else "second" if second_score > first_score else "tie"


class TaskJudge(Protocol):
    name: str

    def prefer(self, clip: ClipRef, task_type: str, questions: Sequence[str], first: str, second: str) -> Verdict:
        """Which memory of `clip` helps more with questions like `questions`."""


@dataclass
class GroundTruthTaskJudge:
    """Task relevance from the simulated world's ground truth."""

    worlds: dict[str, World]
    name: str = "ground-truth"

    def usefulness(self, clip: ClipRef, task_type: str, questions: Sequence[str], memory: str) -> int:
        world = self.worlds[clip.stream_id]
        facts = {statements(f.text)[0]: f for f in world.clips[clip.index].facts}
        said_before = {s for m in clip.preceding for s in statements(m)}
        asked = " ".join(questions).lower()
        score = 0
        for sentence in set(statements(memory)):
            fact = facts.get(sentence)
            if fact is None:
                score -= 1  # false: it would mislead the answer
            elif sentence not in said_before and answers_task_type(fact, task_type):
                score += 2 if any(subject in asked for subject in fact.subjects) else 1
        return score

    def prefer(self, clip: ClipRef, task_type: str, questions: Sequence[str], first: str, second: str) -> Verdict:
        a, b = (self.usefulness(clip, task_type, questions, m) for m in (first, second))
        return _verdict(a, b)


@dataclass
class AnsweringTaskJudge:
    """Task relevance as the benchmark scores it: which memory answers more of the clip's own questions."""

    worlds: dict[str, World]
    name: str = "ground-truth-answers"

    def __post_init__(self):
        self._answerer = LexicalAnswerer()
        self._probes: dict[tuple[str, int, str], list] = {}

    def probes(self, clip: ClipRef, task_type: str) -> list:
        """Every question of `task_type` whose answer lies in this clip (the task builders on it alone), as
        (question, options, answer)."""
        key = (clip.stream_id, clip.index, task_type)
        if key not in self._probes:
            world = self.worlds[clip.stream_id]
            drafts = TaskGenerator(world, TaskConfig(), seed=clip.index).builders[task_type]([world.clips[clip.index]])
            self._probes[key] = [(d.question, sorted({*d.wrong, d.answer}), d.answer) for d in drafts if d.answer]
        return self._probes[key]

    def usefulness(self, clip: ClipRef, task_type: str, memory: str) -> int:
        memories = [MemoryRecord(f"preceding-{k}", "", 0.0, 0.0, text) for k, text in enumerate(clip.preceding)]
        memories.append(MemoryRecord("candidate", "", 0.0, 0.0, memory))
        score = 0
        for question, options, answer in self.probes(clip, task_type):
            reply = self._answerer.answer(question, options, memories)
            if reply.answered:
                score += 1 if reply.option_index >= 0 and options[reply.option_index] == answer else -1
        return score

    def prefer(self, clip: ClipRef, task_type: str, questions: Sequence[str], first: str, second: str) -> Verdict:
        a, b = (self.usefulness(clip, task_type, m) for m in (first, second))
        return _verdict(a, b)


TASK_JUDGE_PROMPT = (
    "A robot writes short memories of what its camera sees and later answers questions from those memories "
    "only. Below are recent questions it was asked and two candidate memories of the same 10-second clip. "
    "Which memory would be more useful for answering questions like these? Judge usefulness only, not length "
    "or style. Reply with exactly one of: A, B, tie."
)


@dataclass
class OpenAITaskJudge(ChatEndpoint):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint compares the two memories."""

    name: str = "openai"

    def prefer(self, clip: ClipRef, task_type: str, questions: Sequence[str], first: str, second: str) -> Verdict:
        asked = "\n".join(f"- {q}" for q in questions)
        verdict, content = self.reply_word(TASK_JUDGE_PROMPT, f"Questions ({task_type}):\n{asked}\n\nMemory A: "
                                                              f"{first}\n\nMemory B: {second}\n\nMore useful "
                                                              "(A, B or tie)?")
        if verdict.startswith("tie"):
            return "tie"
        if verdict in ("a", "b"):
            return "first" if verdict == "a" else "second"
        raise JudgeError(f"task judge replied {content[:80]!r}, not A, B or tie")


def make_task_judge(spec: str, worlds: dict[str, World] | None = None) -> TaskJudge:
    """'ground-truth' or 'ground-truth-answers' (synthetic world), or 'openai:<base_url>#<model>'."""
    if spec == "ground-truth":
        return GroundTruthTaskJudge(worlds or {})
    if spec == "ground-truth-answers":
        return AnsweringTaskJudge(worlds or {})
    if spec.startswith("openai:"):
        return OpenAITaskJudge(*endpoint_spec(spec))
    raise ValueError(f"unknown task judge {spec!r}; use ground-truth, ground-truth-answers or "
                     "openai:<base_url>#<model>")
