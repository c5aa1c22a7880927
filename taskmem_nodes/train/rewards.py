"""Phase One rewards, as the paper defines them, for a group of rollouts of the same clip.

- **format**: the output parses as `<think>…</think>{"description": …}`; otherwise a fixed penalty and
  nothing else counts;
- **thinking length**: 0 up to `thinking_budget` tokens, falling linearly to -1 at twice the budget;
- **quality** = fidelity AND non-redundancy: +0.5 when every statement is true of the clip, none repeats
  the preceding memories and the entry is not filler, else a penalty; optionally (`true_fact`,
  `wrong_statement`, both 0 in the paper) a credit per new true fact and a charge per false or repeated
  statement, for a policy whose rich entries are almost never all true: without it every rich rollout
  scores like a wrong one and the group learns nothing but to shorten;
- **richness**: correct rollouts of the group are ranked by their amount of new true information; the
  normalised rank adds a small bonus (without it the policy learns to write very short, safe memories).
The judge is pluggable: ground truth here (`judge_entry`), an LLM judge on real video.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskmem_nodes.policy import MemoryParseError, parse_output
from taskmem_nodes.train.fact_judge import EntryVerdict


@dataclass
class RewardConfig:
    """Weights of the Phase One reward."""

    format_penalty: float = -2.0
    """Reward of an output that does not parse."""
    thinking_budget: int = 32
    """Thinking tokens that cost nothing; the penalty reaches -1 at twice this."""
    correct: float = 0.5
    """Quality reward of an entry that is all true and new."""
    incorrect: float = -0.3
    """Quality reward of an entry with a false or repeated statement."""
    richness: float = 0.3
    """Bonus of the richest correct rollout of the group (the poorest gets 0)."""
    true_fact: float = 0.0
    """Quality credit per new true fact of the entry (statement-level credit; 0 = the paper's entry level)."""
    wrong_statement: float = 0.0
    """Quality charge per false or repeated statement (negative; 0 = the paper's entry level)."""


@dataclass(frozen=True)
class Scored:
    """One rollout's reward and its parts."""

    reward: float
    parsed: bool
    verdict: EntryVerdict | None
    thinking_penalty: float
    richness_bonus: float


def thinking_penalty(tokens: int, budget: int) -> float:
    """0 up to `budget` tokens, then linearly down to -1 at 2 x budget (and no lower)."""
    if tokens <= budget:
        return 0.0
    return -min(1.0, (tokens - budget) / max(1, budget))


def score_group(outputs: Sequence[str], judge: Callable[[str], EntryVerdict],
                count_tokens: Callable[[str], int], config: RewardConfig) -> list[Scored]:
    """Rewards of a group of rollouts for one clip; `judge(description)` gives the entry's verdict."""
    parsed = []
    for text in outputs:
        try:
            parsed.append(parse_output(text))
        except MemoryParseError:
            parsed.append(None)
    verdicts = [judge(p.description) if p else None for p in parsed]
    correct = sorted({v.rich for v in verdicts if v is not None and v.correct})
    scored = []
    for memory, verdict in zip(parsed, verdicts, strict=True):
        if memory is None:
            scored.append(Scored(config.format_penalty, False, None, 0.0, 0.0))
            continue
        think = thinking_penalty(count_tokens(memory.thinking), config.thinking_budget)
        quality = config.correct if verdict.correct else config.incorrect
        quality += config.true_fact * verdict.rich + config.wrong_statement * verdict.wrong
        bonus = 0.0
        if verdict.correct and len(correct) > 1:
            bonus = config.richness * correct.index(verdict.rich) / (len(correct) - 1)
        scored.append(Scored(quality + think + bonus, True, verdict, think, bonus))
    return scored
