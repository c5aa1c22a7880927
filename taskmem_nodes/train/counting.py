"""Whether a policy writes into its memory what its scan read: each object statement's count and each person
statement's colour, teacher-forced on held-out simulated clips (the target up to that word, then the policy's
most likely next token). Free-running figures mix the writing with the scan and with the choice of what to state;
this isolates the writing. `taskmem train counting` prints it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import ClipExample, description_start, stream_examples
from taskmem_nodes.train.inspect import HELD_OUT_SEEDS
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.warm_start import target_tokens

PERSON_COLOUR = "person's colour"
_PERSON_COLOUR = re.compile(r"\bperson \d+ in (\w+)")


def copied_words(example: ClipExample) -> list[tuple[str, int, int]]:
    """(row, start, end) of every word of the target's memory that copies the scan: each object statement's count
    digit (row "count of <n>") and each person statement's colour (row `PERSON_COLOUR`)."""
    counts = [(f"count of {example.target[start:end]}", start, end) for start, end, _ in example.count_refs]
    described = description_start(example.target, example.description)
    colours = [(PERSON_COLOUR, described + m.start(1), described + m.end(1))
               for m in _PERSON_COLOUR.finditer(example.description)]
    return counts + colours


def written_right(policy: RestrictedPolicy, seeds: Sequence[int] = HELD_OUT_SEEDS, clips_per_world: int = 0,
                  numbered: str = "", on_clip: Callable[[], None] | None = None) -> dict[str, tuple[int, int]]:
    """Row -> (words written right, words) over the clips of the held-out worlds `seeds` (the first
    `clips_per_world` of each; 0 = all), each prompt with ground-truth preceding memories (the target's scan
    numbered with `numbered`); rows as `copied_words`, counts by group size."""
    right: Counter = Counter()
    total: Counter = Counter()
    policy.model.eval()
    for seed in seeds:
        world = World(WorldConfig(seed=seed))
        examples = stream_examples(world, frames_per_clip=policy.frames_per_clip, numbered=numbered)
        for number, example in enumerate(examples):
            if clips_per_world and number >= clips_per_world:
                break
            words = copied_words(example)
            if words:
                sequence = policy.encode(example.request, example.target)
                with torch.no_grad():
                    predicted = policy.target_logits(sequence).argmax(-1)
                tokens_in = target_tokens(policy, example)
                for row, start, end in words:
                    positions = tokens_in(start, end)
                    total[row] += 1
                    right[row] += bool((predicted[positions] == sequence.labels[positions]).all())
            if on_clip is not None:
                on_clip()
    return {row: (right[row], total[row]) for row in sorted(total)}
