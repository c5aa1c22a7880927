"""A direct training signal for a vision tower that starts from random weights: the cell probe.

Real MLLMs start from a pretrained vision encoder; the tiny default model does not, and through the language
loss alone its tower learned only the room's colours (measured: after 1,200 warm-start steps the text loss
was 0.49 with the real video and 0.53 with a black one; a probe of the pooled clip tokens stayed at the labels'
prior). At the default cell size each merged vision token is one 32-px cell of the renderer's 8 x 6 layout, so
this probe asks every token of the newest clip what its cell shows at the clip's first and last frame: the
colour there (object or shirt), the object kind, the person id. Its loss is added to the warm start's; the
probe is dropped afterwards and the checkpoint stays a standard Qwen3-VL.
"""

from __future__ import annotations

import torch

from taskmem_nodes.sim.render import (
    GRID_COLUMNS,
    GRID_ROWS,
    PLACE_COLUMNS,
    UNITS_PER_PLACE,
    place_units,
    shirt_columns,
)
from taskmem_nodes.sim.world import COLOURS, RoomSpec, World, WorldConfig, WorldState

MERGED_PATCH_PX = 32
"""Pixels per merged vision token of Qwen3-VL (patch 16, 2 x 2 merge)."""


CELL_HEADS = ("colour", "kind", "person")
"""What the cell probe reads from each merged vision token (one 32-px layout cell), at the first and last frame."""
NUMBER_HEAD = "number"
"""Optional head: an object unit's number as a numbered scan writes it (`examples.unit_number`: its place in its
group, or its group's size)."""


def cell_classes(config: WorldConfig, numbers: bool = False) -> dict[str, list[str]]:
    """Class names per head (with `numbers`, also `NUMBER_HEAD`'s); class 0 is 'nothing there'."""
    classes = {"colour": ["-", *COLOURS], "kind": ["-", *config.object_kinds],
               "person": ["-", *(str(p) for p in range(1, config.max_person_id + 1))]}
    if numbers:
        classes[NUMBER_HEAD] = ["-", *(str(n) for n in range(1, UNITS_PER_PLACE + 1))]
    return classes


def _cell_layout(state: WorldState, room: RoomSpec, config: WorldConfig, numbering: str) -> dict[str, list[int]]:
    """Per-head class of each of the 8 x 6 cells as the renderer draws `room` in `state` (row-major); the units'
    numbers by `numbering` ("" leaves them 0)."""
    from taskmem_nodes.train.examples import unit_number

    classes = cell_classes(config)
    cells = {head: [0] * (GRID_COLUMNS * GRID_ROWS) for head in (*CELL_HEADS, NUMBER_HEAD)}
    for column, place in zip(PLACE_COLUMNS, room.places):  # object units in row 2, in the renderer's order
        units = place_units(state, room.name, place)
        for slot, (colour, kind) in enumerate(units):
            cells["colour"][2 * GRID_COLUMNS + column + slot] = classes["colour"].index(colour)
            cells["kind"][2 * GRID_COLUMNS + column + slot] = classes["kind"].index(kind)
            if numbering:
                cells[NUMBER_HEAD][2 * GRID_COLUMNS + column + slot] = unit_number(units, slot, numbering)
    for person in state.in_room(room.name):  # shirts span rows 4-5 around the slot's centre column
        for column in shirt_columns(person.slot):
            for row in (4, 5):
                cells["person"][row * GRID_COLUMNS + column] = person.pid
                cells["colour"][row * GRID_COLUMNS + column] = classes["colour"].index(person.shirt)
    return cells


def cell_labels(world: World, index: int, first_time: float, last_time: float, numbers: str = "") -> torch.Tensor:
    """(2 frames, heads, cells) class indexes of what clip `index` shows in each cell at its first and last frame
    (with `numbers`, a numbering of `examples.NUMBERINGS`, the heads include `NUMBER_HEAD`, last)."""
    clip = world.clips[index]
    room = world.config.room_spec(clip.room)
    heads = (*CELL_HEADS, NUMBER_HEAD) if numbers else CELL_HEADS
    frames = []
    for time in (first_time, last_time):
        cells = _cell_layout(clip.state_at(time), room, world.config, numbers)
        frames.append([cells[head] for head in heads])
    return torch.tensor(frames, dtype=torch.long)


class CellProbe(torch.nn.Module):
    """Each merged vision token -> what its cell shows at the first and the last frame (per head; with `numbers`,
    also each object unit's number, `NUMBER_HEAD`)."""

    def __init__(self, hidden: int, config: WorldConfig, numbers: bool = False):
        super().__init__()
        if config.cell_px != MERGED_PATCH_PX:
            raise ValueError(f"the cell probe needs cell_px {MERGED_PATCH_PX} (one vision token per cell), "
                             f"not {config.cell_px}; set cell_probe_weight 0 for other cell sizes")
        self.sizes = [len(names) for names in cell_classes(config, numbers).values()]
        self.numbers = numbers
        self.head = torch.nn.Linear(hidden, 2 * sum(self.sizes))
        self.numbers_read = [0, 0]
        """[right, total] of the number head's argmax over the unit cells of every `loss` call so far."""

    def loss(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over heads of the cross-entropy over frames and cells; tokens (cells, hidden), labels (2, heads,
        cells). The number head's is over the cells holding a unit only (the others are read for nothing, and at
        ~6 units in 48 cells "nothing there" would be most of its loss)."""
        logits = self.head(tokens).view(tokens.shape[0], 2, sum(self.sizes))
        total, start = torch.zeros(()), 0
        for h, size in enumerate(self.sizes):
            part = logits[..., start:start + size].permute(1, 2, 0)  # (2, size, cells)
            start += size
            target = labels[:, h, :]
            if self.numbers and h == len(self.sizes) - 1:
                if not (target > 0).any():
                    continue
                target = target.masked_fill(target == 0, -100)  # cross_entropy's ignore_index
                units = target > 0
                self.numbers_read[0] += int((part.argmax(1) == target)[units].sum())
                self.numbers_read[1] += int(units.sum())
            total = total + torch.nn.functional.cross_entropy(part, target)
        return total / len(self.sizes)


class VisionCapture:
    """Keeps the merged vision tokens of the model's last forward pass (a hook on the vision tower)."""

    def __init__(self, model):
        self.tokens: torch.Tensor | None = None
        model.model.visual.register_forward_hook(self._keep)

    def _keep(self, module, args, output) -> None:
        self.tokens = output.pooler_output

    def newest_clip(self, grid_thw: torch.Tensor) -> torch.Tensor:
        """Tokens of the last temporal group (the newest clip's first and last frame)."""
        groups = int(grid_thw[0, 0])
        per_group = self.tokens.shape[0] // groups
        return self.tokens[-per_group:]
