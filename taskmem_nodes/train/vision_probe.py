"""A direct training signal for a vision tower that starts from random weights.

Real MLLMs start from a pretrained vision encoder; the tiny default model does not, and through the language
loss alone its tower learned only the room's colours (measured: after 1,200 warm-start steps the text loss
was 0.49 with the real video and 0.53 with a black one). This probe reads the vision tokens of the newest
clip (pooled) and predicts what the clip shows at its first and last frame: who is there, in which shirt,
doing what, carrying something, which objects lie in the room, lights and door. Its loss is added to the
warm start's; the probe is dropped afterwards, the checkpoint stays a standard Qwen3-VL.
"""

from __future__ import annotations

from itertools import product

import torch

from taskmem_nodes.sim.world import ACTIVITIES, COLOURS, World, WorldConfig, WorldState


def label_names(config: WorldConfig) -> list[str]:
    """Names of the probe's binary labels for worlds of `config`."""
    pids = range(1, config.max_person_id + 1)
    things = [f"{c} {k}" for c, k in product(config.colours, config.object_kinds)]
    names = []
    for phase in ("first", "last"):
        names += [f"{phase}: person {p}" for p in pids] + [f"{phase}: {t}" for t in things]
    names += [f"last: person {p} in {s}" for p, s in product(pids, COLOURS)]
    names += [f"last: person {p} {a}" for p, a in product(pids, ACTIVITIES)]
    names += [f"last: person {p} carrying" for p in pids]
    names += ["last: lights off", "last: door open"]
    return names


def _visible(state: WorldState, room: str, phase: str) -> set[str]:
    shown = {f"{phase}: person {p.pid}" for p in state.in_room(room)}
    shown |= {f"{phase}: {o.colour} {o.kind}" for o in state.objects if o.place.startswith(f"{room} ")}
    if phase == "last":
        for person in state.in_room(room):
            shown |= {f"last: person {person.pid} in {person.shirt}", f"last: person {person.pid} {person.activity}"}
            if person.carrying:
                shown.add(f"last: person {person.pid} carrying")
        if not state.rooms[room].lights_on:
            shown.add("last: lights off")
        if state.rooms[room].door_open:
            shown.add("last: door open")
    return shown


def scene_labels(world: World, index: int, first_time: float, last_time: float, names: list[str]) -> torch.Tensor:
    """Multi-hot labels of clip `index` as its first and last frames (stream times) show it."""
    clip = world.clips[index]
    shown = _visible(clip.state_at(first_time), clip.room, "first") | _visible(clip.state_at(last_time), clip.room,
                                                                               "last")
    return torch.tensor([name in shown for name in names], dtype=torch.float32)


class VisionProbe(torch.nn.Module):
    """Pooled vision tokens of the newest clip -> logits of the scene labels."""

    def __init__(self, hidden: int, labels: int):
        super().__init__()
        self.head = torch.nn.Sequential(torch.nn.Linear(2 * hidden, hidden), torch.nn.GELU(),
                                        torch.nn.Linear(hidden, labels))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([tokens.mean(0), tokens.amax(0)]))


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
