"""The token ids a policy trained on the simulated world needs: every word its memories and thinking can use
and the output format's tokens. Training computes logits over these ids only (the full 151,936-id softmax
costs ~80 % of a tiny model's compute, see ENVIRONMENT.md); the checkpoint stays a standard Qwen3-VL."""

from __future__ import annotations

import dataclasses
from itertools import product

from taskmem_nodes.sim.world import ACTIVITIES, COLOURS, PLURALS, World, WorldConfig
from taskmem_nodes.train.examples import target_output, thinking_for

FORMAT_TEXTS = ("<think>\n", "\n</think>\n\n", '{"description": "', '"}', "<|im_end|>")


def grammar_phrases(config: WorldConfig) -> list[str]:
    """Every word form a fact sentence of this world can contain, in the contexts it appears in."""
    rooms = [r.name for r in config.room_specs]
    places = [f"{r.name} {p}" for r in config.room_specs for p in r.places]
    things = [f"{c} {PLURALS.get(k, k + 's')}" for c, k in product(config.colours, config.object_kinds)]
    things += [f"a {c} {k}" for c, k in product(config.colours, config.object_kinds)]
    things += [f"{n} {c} {k}" for n, c, k in product(range(1, 4), config.colours, config.object_kinds)]
    people = [f"person {i} in {shirt}" for i, shirt in product(range(1, config.max_person_id + 1), COLOURS)]
    verbs = ["enters the", "leaves the", "picks up", "from the", "puts", "on the", "appears on the",
             "disappears from the", "starts", "is", "carrying", "lights turn on", "lights turn off", "lights are off",
             "door opens", "door closes", "in the", "The", "new fact", "new facts", "0", "4", "5", "6"]
    scans = [f"{p}: {c} {k}, {c} {k}." for p, c, k in product(
        [p for r in config.room_specs for p in r.places], config.colours, config.object_kinds)]
    scans += [f"{i} {shirt} {doing}," for i, shirt, doing in product(
        range(1, config.max_person_id + 1), COLOURS, [*ACTIVITIES, *(f"carrying {c} {k}" for c, k in product(
            config.colours, config.object_kinds))])]
    scans += [f"The {room}, new." for room in rooms]
    scans += ["first:", "last:", "same.", "nothing.", "people: none.", "lights off.", "lights on.", "door open.",
              "door closed."]
    return [*rooms, *places, *things, *people, *ACTIVITIES, *verbs, *scans]


def training_vocabulary(tokenizer, config: WorldConfig, worlds: int = 20) -> list[int]:
    """Sorted token ids of the grammar's phrases (with and without a leading space and full stop) and of the
    whole targets of `worlds` sample streams, plus the format's tokens."""
    ids: set[int] = set()

    def add(text: str) -> None:
        ids.update(tokenizer.encode(text, add_special_tokens=False))

    for phrase in grammar_phrases(config):
        for variant in (phrase, f" {phrase}", f" {phrase}.", f"{phrase}."):
            add(variant)
    for seed in range(worlds):
        world = World(dataclasses.replace(config, seed=10_000 + seed))
        for index in range(len(world.clips)):
            clip = world.clips[index]
            add(target_output(world.describe_new(index), thinking_for(world, index, (clip.start, clip.end - 1))))
    for text in FORMAT_TEXTS:
        add(text)
    return sorted(ids)


def prompt_vocabulary(processor, config: WorldConfig, worlds: int = 2, frames_per_clip: int = 2) -> list[int]:
    """Sorted token ids of the policy's prompts on `worlds` sample streams as the processor expands them (chat
    template, instructions, clock and frame times, video placeholders): the embedding rows a trained policy
    reads besides its own vocabulary."""
    from taskmem_nodes.models.transformers_backend import prepare_inputs
    from taskmem_nodes.policy import tracker_line
    from taskmem_nodes.train.examples import stream_examples

    ids: set[int] = set()
    for seed in range(worlds):
        world = World(dataclasses.replace(config, seed=20_000 + seed))
        for tracker in (True, False):
            for example in stream_examples(world, frames_per_clip=frames_per_clip, tracker=tracker):
                ids.update(prepare_inputs(processor, example.request)[1]["input_ids"][0].tolist())
    people = [(f"person_{i}", side) for i in range(1, config.max_person_id + 1) for side in ("left", "middle", "right")]
    for line in (tracker_line(people), tracker_line([])):  # every id the simulated tracker can name
        ids.update(processor.tokenizer.encode("\n" + line, add_special_tokens=False))
    return sorted(ids)
