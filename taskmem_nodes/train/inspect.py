"""Which statements of a policy's memories are true, by kind (rooms, people, everything else), on held-out
simulated clips: where a checkpoint is right and where it guesses. `taskmem train inspect` prints it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from taskmem_nodes.policy import MemoryParseError, parse_output
from taskmem_nodes.sim.world import PLURALS, World, WorldConfig
from taskmem_nodes.train.examples import stream_examples
from taskmem_nodes.train.fact_judge import statements
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.rollouts import sample_group

HELD_OUT_SEEDS = (555_001, 555_002, 555_003)
"""World seeds no recipe trains on (training worlds start at 1,000,000; benchmark worlds are seed * 1000 + i)."""


def named_person(sentence: str) -> str:
    """The "person k" a person statement is about."""
    return " ".join(sentence.split()[:2])


def statement_kind(sentence: str) -> str:
    return "room" if sentence.startswith("in the ") else "person" if sentence.startswith("person ") else "other"


_SINGULAR = {plural: kind for kind, plural in PLURALS.items()}


def group_counts(text: str) -> dict[str, str]:
    """Each object group a memory states, in the singular ("purple mug on the living room sofa") -> its count
    ("3"), so a miscounted group is the same group."""
    groups = {}
    for sentence in statements(text):
        count, _, rest = sentence.partition(" ")
        if count.isdigit() and " on the " in rest:
            thing, _, place = rest.partition(" on the ")
            colour, _, kind = thing.partition(" ")
            kind = _SINGULAR.get(kind, kind.removesuffix("s") if count != "1" else kind)
            groups[f"{colour} {kind} on the {place}"] = count
    return groups


def statement_truth(policy: RestrictedPolicy, clips: int, *, temperature: float = 0.0, rollouts: int = 1,
                    tracker: bool = True, numbered: str = "", max_new_tokens: int = 200, seed: int = 0,
                    on_clip: Callable[[], None] | None = None) -> Counter:
    """Counts over `clips` held-out clips (ground-truth preceding memories): `<kind>_said` / `<kind>_true`
    statements, `person_id_true` person statements naming someone the clip shows, `new_facts` the clips show
    and `new_stated` of them stated, `entries`, `unparsed`; `scan_right` entries whose thinking is the target's
    word for word (a numbered scan's, with `numbered`) and `written_right` of them whose memory states exactly the
    target's facts (where the writing, not the seeing, goes wrong); of the target's object groups, `count_right`
    and `count_wrong` stated with the right or another count, `groups_missed` not stated. Greedy at temperature 0,
    else `rollouts` samples per clip."""
    torch.manual_seed(seed)
    policy.model.eval()
    counts: Counter = Counter()
    done = 0
    for world_seed in HELD_OUT_SEEDS:
        world = World(WorldConfig(seed=world_seed))
        for example in stream_examples(world, frames_per_clip=policy.frames_per_clip, tracker=tracker,
                                       numbered=numbered):
            if done >= clips:
                return counts
            outputs = sample_group(policy, example.request, rollouts if temperature > 0 else 1, temperature,
                                   max_new_tokens)
            truth = {s for fact in world.clips[example.index].facts for s in statements(fact.text)}
            new = {s for s in statements(world.describe_new(example.index)) if statement_kind(s) != "room"}
            present = {named_person(s) for s in truth if statement_kind(s) == "person"}
            target_thinking = parse_output(example.target).thinking
            target_groups = group_counts(example.description)
            for ids in outputs:
                try:
                    memory = parse_output(policy.output_text(ids))
                except MemoryParseError:
                    counts["unparsed"] += 1
                    continue
                said = statements(memory.description)
                if memory.thinking == target_thinking:
                    counts["scan_right"] += 1
                    counts["written_right"] += set(said) == set(statements(example.description))
                for sentence in said:
                    kind = statement_kind(sentence)
                    counts[f"{kind}_said"] += 1
                    counts[f"{kind}_true"] += sentence in truth
                    counts["person_id_true"] += kind == "person" and named_person(sentence) in present
                said_groups = group_counts(memory.description)
                for group, count in target_groups.items():
                    outcome = "groups_missed" if group not in said_groups else \
                        "count_right" if said_groups[group] == count else "count_wrong"
                    counts[outcome] += 1
                counts["new_facts"] += len(new)
                counts["new_stated"] += len(new & set(said))
                counts["entries"] += 1
            done += 1
            if on_clip is not None:
                on_clip()
    return counts
