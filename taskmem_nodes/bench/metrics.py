"""Accuracy, Coverage and Precision per task type, as the paper reports them, and their spread across seeds.

- Coverage = answered / tasks; Precision = correct / answered; Accuracy = correct / tasks = Coverage x Precision.
- A task whose right answer is to abstain ("not seen") counts as answered either way: abstaining is a correct
  answer, answering anything is a wrong one. So the identity above holds for every type.
- Multiple choice is right when the chosen option is the answer; open answers go to a `Judge`.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from taskmem_nodes.bench.harness import TaskOutcome
from taskmem_nodes.bench.judges import Judge

OVERALL = "overall"
METRICS = ("accuracy", "coverage", "precision")


@dataclass
class Tally:
    """Counts for one task type (or overall)."""

    tasks: int = 0
    answered: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.tasks if self.tasks else 0.0

    @property
    def coverage(self) -> float:
        return self.answered / self.tasks if self.tasks else 0.0

    @property
    def precision(self) -> float:
        return self.correct / self.answered if self.answered else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"tasks": self.tasks, "answered": self.answered, "correct": self.correct,
                **{m: getattr(self, m) for m in METRICS}}


def score(outcome: TaskOutcome, judge: Judge) -> tuple[bool, bool]:
    """(answered, correct) for one outcome, by the rules in the module docstring."""
    task = outcome.task
    if task.should_abstain:
        return True, not outcome.answered
    if not outcome.answered:
        return False, False
    if task.options:
        return True, outcome.option_index == task.answer_index
    return True, judge.judge(task, outcome.answer)


def tally(outcomes: Iterable[TaskOutcome], judge: Judge) -> dict[str, Tally]:
    """Per task type, plus `OVERALL`."""
    tallies: dict[str, Tally] = {OVERALL: Tally()}
    for outcome in outcomes:
        answered, correct = score(outcome, judge)
        for key in (outcome.task.task_type, OVERALL):
            counts = tallies.setdefault(key, Tally())
            counts.tasks += 1
            counts.answered += answered
            counts.correct += correct
    return tallies


def focus_groups(task_types: Iterable[str], focus: Sequence[str]) -> dict[str, list[str]]:
    """"focused" (the `focus` types) and "others" (every other asked type), the issue's two groups."""
    return {"focused": list(focus), "others": [t for t in task_types if t != OVERALL and t not in focus]}


def pooled(tallies: dict[str, Tally], task_types: Iterable[str]) -> Tally:
    """The tallies of several task types taken together (types that were not asked count nothing)."""
    counted = [tallies[t] for t in task_types if t in tallies]
    return Tally(sum(t.tasks for t in counted), sum(t.answered for t in counted), sum(t.correct for t in counted))


@dataclass(frozen=True)
class Spread:
    """A metric over seeds: mean, sample standard deviation, range, and the seeds it came from."""

    mean: float
    std: float
    low: float
    high: float
    seeds: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return cls(statistics.fmean(values), std, min(values), max(values), len(values))

    def as_dict(self) -> dict[str, float]:
        std = None if math.isnan(self.std) else self.std  # one seed: no spread (JSON has no NaN)
        return {"mean": self.mean, "std": std, "min": self.low, "max": self.high, "seeds": self.seeds}


def across_seeds(per_seed: list[dict[str, Tally]]) -> dict[str, dict[str, Spread]]:
    """`result[task_type][metric]` over the seeds in which that type was asked."""
    types = sorted({t for tallies in per_seed for t in tallies}, key=lambda t: (t == OVERALL, t))
    return {t: {m: Spread.of([getattr(s[t], m) for s in per_seed if t in s and s[t].tasks]) for m in METRICS}
            for t in types}


def sign_flip_p(differences: list[float], exact_up_to: int = 16, draws: int = 65536) -> float:
    """Two-sided p-value of paired differences (one per seed) under "no difference": the share of the 2^n ways
    of flipping their signs whose mean is at least as far from 0 as the observed one (exact up to `exact_up_to`
    seeds, else `draws` seeded random flips). With n seeds it cannot fall below 2 / 2^n: 0.125 for 4 seeds."""
    if not differences:
        return 1.0
    observed = abs(sum(differences)) - 1e-12  # a flip summing to the same value in another order still counts
    if len(differences) <= exact_up_to:
        flips = itertools.product((1, -1), repeat=len(differences))
    else:
        rng = random.Random(0)
        flips = ([rng.choice((1, -1)) for _ in differences] for _ in range(draws))
    outcomes = [abs(sum(sign * d for sign, d in zip(signs, differences))) >= observed for signs in flips]
    return sum(outcomes) / len(outcomes)
