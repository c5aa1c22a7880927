"""Held-out validation of a Phase One policy the way the benchmark uses it: greedy memories, streaming on its
own earlier memories, judged against ground truth with the Phase One reward.

The training reward is measured on sampled rollouts of the clips being trained on; this measures what the
deployed (greedy) policy writes on worlds no recipe trains on, so a run can be stopped, or its best checkpoint
kept, where held-out memories are best rather than where the sampled reward is highest.
"""

from __future__ import annotations

from collections.abc import Callable

from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.rewards import RewardConfig, score_group

VALIDATION_SEEDS = (556_001, 556_002)
"""World seeds apart from training (1,000,000 and up), the benchmark (seed * 1000 + i) and `inspect`."""


def validate(policy: RestrictedPolicy, curriculum, clips_per_world: int, rewards: RewardConfig,
             count_tokens: Callable[[str], int], max_new_tokens: int,
             processors: Callable[[], list] = list) -> dict[str, float]:
    """Play `clips_per_world` clips of each of `curriculum`'s worlds greedily, each prompt showing the policy's
    own memories, each decoded through fresh `processors()` (e.g. the deployed format enforcer); returns the mean
    reward, fidelity (true / stated statements), new true facts per entry (`rich`), wrong statements per entry,
    and the fractions of entries that parse and that are correct."""
    scored = []
    for _ in range(clips_per_world):
        scored += carry(curriculum, greedy_outputs(policy, curriculum, max_new_tokens, processors), rewards,
                        count_tokens)
    return figures(scored)


def greedy_outputs(policy: RestrictedPolicy, curriculum, max_new_tokens: int,
                   processors: Callable[[], list] = list, streams: list | None = None) -> list[str]:
    """The greedy output for the current clip of every stream of `curriculum` (or of `streams`), each through
    fresh `processors()`."""
    from taskmem_nodes.train.rollouts import sample_group

    policy.model.eval()
    return [policy.output_text(sample_group(policy, curriculum.request(stream), 1, 0.0, max_new_tokens,
                                            processors())[0])
            for stream in (curriculum.states if streams is None else streams)]


def carry(curriculum, outputs: list[str], rewards: RewardConfig, count_tokens: Callable[[str], int]) -> list:
    """Score `outputs` (one per stream, for its current clip) and advance every stream with its memory."""
    from taskmem_nodes.train.gspo import description_of

    scored = []
    for stream, text in zip(curriculum.states, outputs, strict=True):
        scored += score_group([text], curriculum.judge(stream), count_tokens, rewards)
        curriculum.advance(stream, description_of(text))
    return scored


def figures(scored: list) -> dict[str, float]:
    """`validate`'s figures of scored greedy entries."""
    verdicts = [s.verdict for s in scored if s.verdict]
    stated = sum(v.statements for v in verdicts)
    return {
        "reward": sum(s.reward for s in scored) / len(scored),
        "fidelity": sum(v.true for v in verdicts) / stated if stated else 0.0,
        "rich": sum(v.rich for v in verdicts) / len(scored),
        "wrong": sum(v.wrong for v in verdicts) / len(scored),
        "correct": sum(v.correct for v in verdicts) / len(scored),
        "parsed": sum(s.parsed for s in scored) / len(scored),
    }
