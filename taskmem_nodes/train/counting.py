"""Whether a policy can write a group's count: teacher-forced on held-out simulated clips (the target up to each
object statement's count digit, then the policy's most likely next token), tallied by the group's true size.
Free-running figures mix the count with the scan and the choice of groups; this isolates the count.
`taskmem train counting` prints it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import torch

from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import stream_examples
from taskmem_nodes.train.inspect import HELD_OUT_SEEDS
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.warm_start import target_tokens


def count_digits(policy: RestrictedPolicy, seeds: Sequence[int] = HELD_OUT_SEEDS, clips_per_world: int = 0,
                 on_clip: Callable[[], None] | None = None) -> dict[int, tuple[int, int]]:
    """Group size -> (count digits written right, object statements) over the clips of the held-out worlds
    `seeds` (the first `clips_per_world` of each; 0 = all), each prompt with ground-truth preceding memories."""
    right: Counter = Counter()
    total: Counter = Counter()
    policy.model.eval()
    for seed in seeds:
        world = World(WorldConfig(seed=seed))
        for number, example in enumerate(stream_examples(world, frames_per_clip=policy.frames_per_clip)):
            if clips_per_world and number >= clips_per_world:
                break
            if example.count_refs:
                sequence = policy.encode(example.request, example.target)
                with torch.no_grad():
                    predicted = policy.target_logits(sequence).argmax(-1)
                tokens_in = target_tokens(policy, example)
                for start, end, _ in example.count_refs:
                    size = int(example.target[start:end])
                    positions = tokens_in(start, end)
                    total[size] += 1
                    right[size] += bool((predicted[positions] == sequence.labels[positions]).all())
            if on_clip is not None:
                on_clip()
    return {size: (right[size], total[size]) for size in sorted(total)}
