"""Phase One, step 1: the supervised warm start of the memorization policy on the simulated world.

Run:  taskmem train warm-start --config config/train/warm_start_tiny.yaml

Recipe, in order: (1) build a fresh Qwen3-VL of the configured size with the real processor and tokenizer (or
load `base_checkpoint`); (2) the world's vocabulary: logits over those ids only; (3) a curriculum from worlds
whose seeds never appear in the benchmark: first `single_clip_steps` on each clip alone with everything it
shows as target (short, deterministic examples: where vision-to-text grounding is learned), then `steps` on the
policy's own inputs (50-s window, a few frames per clip, the preceding clips' memories) with the ground-truth
new content as target; throughout, the cell probe's loss (what each cell of the newest clip shows, read from
its vision token: the tower starts from random weights); (4) AdamW, linear warm-up then cosine decay over both
stages; (5) a checkpoint every `checkpoint_every` steps (`<out>/last`, plus the optimizer state), so a killed
run resumes where it stopped; (6) `<out>/final` and a PNG of the loss curves.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer
from taskmem_nodes.models.tiny import build_tiny_checkpoint
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import NUMBERINGS, SCAN_NUMBERINGS, ClipExample, clip_alone_examples, stream_examples
from taskmem_nodes.train.policy_model import THINK_PREFILL, RestrictedPolicy
from taskmem_nodes.train.runs import finish, load_recipe, save_checkpoint, start_or_resume
from taskmem_nodes.train.vision_probe import CellProbe, VisionCapture, cell_labels
from taskmem_nodes.train.vocab import training_vocabulary

TRAIN_SEED_BASE = 1_000_000
"""Training worlds use seeds from here on; benchmark worlds use seed * 1000 + stream (far below)."""
SINGLE_CLIP_SEED_OFFSET = 700_000
"""The single-clip stage draws its worlds apart from the window stage's."""


@dataclass
class WarmStartConfig:
    """Everything that shapes a warm-start run."""

    out_dir: str = "runs/warm-start"
    """Where checkpoints, the training log and the loss plot go."""
    base_checkpoint: str = ""
    """Start from this checkpoint; '' builds a fresh model of the sizes below."""
    text_hidden: int = 256
    """Text decoder width."""
    layers: int = 4
    """Text decoder layers."""
    heads: int = 4
    """Attention heads (key/value heads: half of them)."""
    vision_depth: int = 2
    """Vision encoder blocks."""
    vision_hidden: int = 128
    """Vision encoder width."""
    world: dict = field(default_factory=dict)
    """Overrides of the world settings (sim/worlds/default.yaml) for the training worlds."""
    frames_per_clip: int = 2
    """Frames of each clip the policy sees (first and last: before and after every event)."""
    tracker_dropout: float = 0.0
    """Fraction of training worlds streamed without the person tracker's ids in the prompt (robots without one)."""
    cell_probe_weight: float = 0.0
    """Weight of the cell probe's loss (what each cell of the newest clip shows, from its vision token; needs cell_px
    32); 0: off."""
    attention_guide_weight: float = 0.0
    """Weight of the attention guide: a decoder layer's attention from each token of the thinking's scan to the
    vision token of the cell it names (-log of the heads' mean weight); 0: off."""
    attention_layer: int = -1
    """The decoder layer the attention guide shapes."""
    count_guide_weight: float = 0.0
    """Weight of the counting guide: the same layer's attention from the position that writes an object statement's
    count to the scan's label of that place and each unit of that colour and kind listed there, spread evenly by
    every head (cross-entropy against the uniform split), so the weight a head leaves on the label tells how many
    units there are; 0: off."""
    count_guide: str = "spread"
    """What the counting guide asks of the count's position: "spread" (above) or "point" (the heads' mean
    attention on the last unit of the group, its number in a numbered scan, as a copied id points at its earlier
    occurrence: the count is then a copy)."""
    numbered_units: str = ""
    """Number a place's repeated units in the scan's text, so the last unit of a group carries the count an object
    statement writes: "running" (`purple mug, purple mug 2, purple mug 3`, a successor step per unit) or "size"
    (`purple mug 3, purple mug 3, purple mug 3`: each unit its group's size); "": no numbers. The attention guide
    then also points what follows each unit's name (its number, or the comma) where `number_guide` says."""
    number_guide: str = "successor"
    """Where a numbered scan's number is read: "successor" (what follows a unit's name attends to the unit before
    it, whose number it continues) or "cell" (to the unit's own cell, whose vision token the cell probe then also
    teaches the unit's number: the number becomes a copy of what the tower sees, as the unit's name is)."""
    count_token_weight: float = 1.0
    """Weight of each object statement's count digit in the text loss (1: as every other token). The digit is
    1-2 of ~100 target tokens and "1" is most often right, so at 1 the model writes "1" for nearly every group
    (measured: 2 of 37 twos right, teacher-forced)."""
    max_new_facts: int = 0
    """A memory budget: stage 2's targets (and the preceding memories shown) hold the room and at most this many
    of the clip's new facts, drawn at random, so the policy must choose what to write (the method's 1-2
    sentences); 0: every new fact."""
    vision_steps: int = 0
    """Stage 0 steps: the vision tower and the cell probe alone, on each clip alone (no decoder: ~0.55 s a step
    here against ~1.3 s for a single-clip step), so the tower can learn what the probe asks before the decoder
    reads it; needs cell_probe_weight."""
    single_clip_steps: int = 0
    """Stage 1 steps: each clip alone (no window, no memories), its whole description as target."""
    steps: int = 600
    """Stage 2 steps: the policy's real input (50-s window, preceding memories), the new content as target."""
    batch_size: int = 4
    """Examples per step (gradients accumulated)."""
    lr: float = 1e-3
    """Peak learning rate."""
    warmup_steps: int = 20
    """Linear warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    checkpoint_every: int = 50
    """Steps between resumable checkpoints."""
    seed: int = 0
    """Initialisation and data order."""

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> WarmStartConfig:
        return load_recipe(cls, path, **overrides)

    def __post_init__(self):
        if self.count_guide not in ("spread", "point"):
            raise ValueError(f"count_guide must be 'spread' or 'point', not {self.count_guide!r}")
        if self.numbered_units not in SCAN_NUMBERINGS:
            raise ValueError(f"numbered_units must be one of {NUMBERINGS} or '', not {self.numbered_units!r}")
        if self.number_guide not in ("successor", "cell"):
            raise ValueError(f"number_guide must be 'successor' or 'cell', not {self.number_guide!r}")
        if self.vision_steps and not self.cell_probe_weight:
            raise ValueError("vision_steps train the tower on the cell probe alone: set cell_probe_weight")

    @property
    def numbers_from_cells(self) -> bool:
        """Whether the scan's unit numbers are read from the units' cells (`number_guide`)."""
        return bool(self.numbered_units) and self.number_guide == "cell"

    @property
    def total_steps(self) -> int:
        return self.vision_steps + self.single_clip_steps + self.steps

    def stage(self, step: int) -> tuple[str, int]:
        """The stage of `step` ("vision", "single clip" or "window") and the number of its first example batch:
        the single-clip stage's count on from the vision stage's (both draw clips alone, each its own), the
        window stage's from 0."""
        if step < self.vision_steps + self.single_clip_steps:
            return ("vision" if step < self.vision_steps else "single clip"), step
        return "window", step - self.vision_steps - self.single_clip_steps

    def world_config(self) -> WorldConfig:
        return WorldConfig.from_dict(self.world)


class ExampleSource:
    """Example number k, deterministically: world TRAIN_SEED_BASE + seed offset + k // clips, and a clip of
    it in a fixed scrambled order, so a resumed run sees exactly the examples it would have seen."""

    def __init__(self, world_config: WorldConfig, frames_per_clip: int, seed: int, clip_alone: bool = False,
                 tracker_dropout: float = 0.0, max_new_facts: int = 0, numbered: str = ""):
        self.world_config = world_config
        self.max_new_facts = max_new_facts
        self.numbered = numbered
        self.frames_per_clip = frames_per_clip
        self.tracker_dropout = tracker_dropout
        self.clip_alone = clip_alone
        self.first_world = TRAIN_SEED_BASE + seed * 100_000 + (SINGLE_CLIP_SEED_OFFSET if clip_alone else 0)
        self.clips = world_config.clips
        self.stride = next(s for s in range(7, 1000) if math.gcd(s, self.clips) == 1)
        self._cached: tuple[int, list[ClipExample]] | None = None

    def __getitem__(self, k: int) -> ClipExample:
        world_seed = self.first_world + k // self.clips
        if self._cached is None or self._cached[0] != world_seed:
            world = World(dataclasses.replace(self.world_config, seed=world_seed))
            tracker = random.Random(world_seed).random() >= self.tracker_dropout
            examples = clip_alone_examples(world, frames_per_clip=self.frames_per_clip, tracker=tracker,
                                           numbered=self.numbered) \
                if self.clip_alone else stream_examples(world, frames_per_clip=self.frames_per_clip, tracker=tracker,
                                                        max_new_facts=self.max_new_facts, numbered=self.numbered)
            self._cached = (world_seed, list(examples))
        return self._cached[1][(k * self.stride) % self.clips]


def learning_rate(config: WarmStartConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 0 (`step` counts from the first stage's start). The vision stage, which
    trains the tower alone, has a schedule of its own; the decoder's stages (single clip, window) share one."""
    start, length = (0, config.vision_steps) if step < config.vision_steps else (
        config.vision_steps, config.total_steps - config.vision_steps)
    step -= start
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, length - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def untrained_checkpoint(config: WarmStartConfig, out: str | Path) -> Path:
    """The recipe's model with random weights (its sizes and seed): what a warm start from scratch begins with."""
    return build_tiny_checkpoint(
        out, text_hidden=config.text_hidden, layers=config.layers, heads=config.heads,
        kv_heads=max(1, config.heads // 2), vision_depth=config.vision_depth, vision_hidden=config.vision_hidden,
        seed=config.seed, video_max_pixels=config.world_config().cell_px ** 2 * 48,  # the whole 8 x 6-cell frame
    )


def _build_policy(config: WarmStartConfig, out: Path) -> RestrictedPolicy:
    world = config.world_config()
    base = Path(config.base_checkpoint) if config.base_checkpoint else untrained_checkpoint(config, out / "base")
    allowed = training_vocabulary(build_qwen_tokenizer(), world)
    return RestrictedPolicy.load(base, allowed, frames_per_clip=config.frames_per_clip)


def target_tokens(policy: RestrictedPolicy, example: ClipExample) -> Callable[[int, int], list[int]]:
    """Maps a character span of the target to the indexes of its tokens (0 = the first target token)."""
    text = example.target.removeprefix(THINK_PREFILL)
    shift = len(example.target) - len(text)
    offsets = policy.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return lambda start, end: [j for j, (a, b) in enumerate(offsets) if b > start - shift and a < end - shift]


class _CellTask:
    """The cell probe of a run: its module and its loss on the newest clip of the last forward pass."""

    def __init__(self, policy: RestrictedPolicy, config: WarmStartConfig, saved: dict | None):
        self.weight = config.cell_probe_weight
        self.numbers = config.numbered_units if config.numbers_from_cells else ""
        self.module = CellProbe(policy.model.config.get_text_config().hidden_size, config.world_config(),
                                bool(self.numbers)) if self.weight else None
        if saved is not None and self.module is not None:
            self.module.load_state_dict(saved)
        self.capture = VisionCapture(policy.model) if self.weight else None

    def loss(self, example: ClipExample, sequence) -> torch.Tensor:
        tokens = self.capture.newest_clip(sequence.inputs["video_grid_thw"])
        return self.module.loss(tokens, cell_labels(example.world, example.index, *example.frame_span, self.numbers))

    def start_step(self) -> None:
        if self.module is not None:
            self.module.numbers_read = [0, 0]

    def step_figures(self) -> dict:
        """For the log: the fraction of unit cells whose number the probe read right this step (numbered runs)."""
        if self.module is None or not self.module.numbers_read[1]:
            return {}
        right, total = self.module.numbers_read
        return {"numbers_read": right / total}

    def state(self) -> dict:
        return {"probe": self.module.state_dict()} if self.module is not None else {}


class _AttentionGuide:
    """Teaches the decoder where to look: each scanned item of the thinking attends to its cell's vision token,
    each copied tracker id to where that id was written before (the tracker line, earlier in the target), and in a
    numbered scan what follows a unit's name to the unit before it (whose number it continues) or to its own cell."""

    def __init__(self, policy: RestrictedPolicy, config: WarmStartConfig):
        self.policy, self.weight, self.layer = policy, config.attention_guide_weight, config.attention_layer
        self.count_weight, self.count_mode = config.count_guide_weight, config.count_guide
        self.numbers_from_cells = config.numbers_from_cells
        if self.active:
            policy.model.set_attn_implementation("eager")  # sdpa returns no attention weights

    @property
    def active(self) -> bool:
        return bool(self.weight or self.count_weight)

    def pairs(self, example: ClipExample, sequence) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(query positions, key positions, owners): the position predicting each guided target token, and the
        keys it should attend to, each key with the index of its query (a copied id has one key per earlier
        occurrence; a scanned item's token one: the vision token of its cell in the newest clip)."""
        tokens_in = target_tokens(self.policy, example)
        ids = sequence.inputs["input_ids"][0]
        video = (ids == self.policy.model.config.video_token_id).nonzero().flatten()
        newest = int(video[-self.policy.tokens_per_group(sequence):][0])
        queries: list[int] = []
        keys: list[list[int]] = []
        for start, end, cell in example.cell_refs:
            for j in tokens_in(start, end):
                queries.append(sequence.prompt_tokens - 1 + j)
                keys.append([newest + cell])
        cell_of_name_ending_at = {end: cell for _, end, cell in example.cell_refs}
        for start, end, key_start, key_end in example.successor_refs:
            key = newest + cell_of_name_ending_at[start] if self.numbers_from_cells \
                else sequence.prompt_tokens + tokens_in(key_start, key_end)[-1]
            for j in tokens_in(start, end):
                queries.append(sequence.prompt_tokens - 1 + j)
                keys.append([key])
        written: dict[str, list[list[int]]] = {}  # entity -> the token positions of each occurrence so far
        for entity, positions in self._tracker_line_ids(ids[: sequence.prompt_tokens]):
            written.setdefault(entity, []).append(positions)
        for start, end, entity in sorted(example.id_refs):
            tokens = [sequence.prompt_tokens + j for j in tokens_in(start, end)]
            earlier = [occurrence for occurrence in written.get(entity, []) if len(occurrence) == len(tokens)]
            for m, position in enumerate(tokens if earlier else []):
                queries.append(position - 1)
                keys.append([occurrence[m] for occurrence in earlier])
            written.setdefault(entity, []).append(tokens)
        owners = [k for k, group in enumerate(keys) for _ in group]
        return (torch.tensor(queries, dtype=torch.long), torch.tensor([p for g in keys for p in g], dtype=torch.long),
                torch.tensor(owners, dtype=torch.long))

    def _tracker_line_ids(self, prompt_ids: torch.Tensor) -> list[tuple[str, list[int]]]:
        """(entity, positions of its id's digit tokens) of every `<person_k>` tag in the prompt."""
        tokenizer = self.policy.tokenizer
        tag = tokenizer("person_", add_special_tokens=False)["input_ids"]
        ids = prompt_ids.tolist()
        found = []
        for i in range(len(ids) - len(tag)):
            if ids[i: i + len(tag)] == tag:
                digits = end = i + len(tag)
                while end < len(ids) and tokenizer.decode([ids[end]]).isdigit():
                    end += 1
                if end > digits:
                    found.append((f"person_{tokenizer.decode(ids[digits:end])}", list(range(digits, end))))
        return found

    def loss(self, example: ClipExample, sequence, attention: torch.Tensor) -> torch.Tensor:
        queries, keys, owners = self.pairs(example, sequence)
        if not len(queries):
            return torch.zeros(())
        weights = attention[:, queries[owners], keys].mean(0)  # (keys,) the heads' mean attention
        on_keys = torch.zeros(len(queries), dtype=weights.dtype).index_add(0, owners, weights)
        return -torch.log(on_keys.clamp(min=1e-6)).mean()

    def count_pairs(self, example: ClipExample, sequence) -> list[tuple[int, list[int]]]:
        """(query, keys) per object statement: the position predicting its count digit, and the last token of the
        scan's place label and of each unit counted there."""
        tokens_in = target_tokens(self.policy, example)
        start_of_target = sequence.prompt_tokens
        return [(start_of_target + tokens_in(start, end)[0] - 1,
                 [start_of_target + tokens_in(a, b)[-1] for a, b in spans])
                for start, end, spans in example.count_refs]

    def count_loss(self, example: ClipExample, sequence, attention: torch.Tensor) -> torch.Tensor:
        """"spread": mean over statements and heads of the cross-entropy between a head's attention and the even
        split over the label and the units. Per head, not on the heads' mean: a head that looks at the units alone,
        or at the label alone, says nothing of their number, and two such heads make an even mean. "point": -log
        of the heads' mean attention on the group's last unit (its number's last token)."""
        pairs = self.count_pairs(example, sequence)
        if not pairs:
            return torch.zeros(())
        if self.count_mode == "point":
            losses = [-torch.log(attention[:, query, keys[-1]].mean().clamp(min=1e-6)) for query, keys in pairs]
        else:
            losses = [-torch.log(attention[:, query, keys].clamp(min=1e-6)).mean() for query, keys in pairs]
        return torch.stack(losses).mean()


def count_positions(policy: RestrictedPolicy, example: ClipExample, weight: float) -> dict[int, float]:
    """Target token index -> loss weight of every object statement's count digit (none at weight 1)."""
    if weight == 1.0 or not example.count_refs:
        return {}
    tokens_in = target_tokens(policy, example)
    return {j: weight for start, end, _ in example.count_refs for j in tokens_in(start, end)}


def text_loss(logits: torch.Tensor, sequence, weights: dict[int, float]) -> torch.Tensor:
    """Mean cross-entropy of the target tokens, the tokens in `weights` counted that many times."""
    losses = torch.nn.functional.cross_entropy(logits, sequence.labels, reduction="none")
    if not weights:
        return losses.mean()
    scale = torch.ones_like(losses)
    scale[list(weights)] = torch.tensor(list(weights.values()), dtype=losses.dtype)
    return (losses * scale).sum() / scale.sum()


def train_warm_start(config: WarmStartConfig, *, on_step: Callable[[int, float], None] | None = None) -> Path:
    """Run (or resume) the warm start; returns the final checkpoint directory."""
    out = Path(config.out_dir)
    torch.manual_seed(config.seed)
    policy, state = start_or_resume(out, config, lambda: _build_policy(config, out))
    policy.model.train()
    probe = _CellTask(policy, config, state.pop("probe", None))
    guide = _AttentionGuide(policy, config)
    trained = policy.parameters() + (list(probe.module.parameters()) if probe.module is not None else [])
    optimizer = torch.optim.AdamW(trained, lr=config.lr, weight_decay=config.weight_decay)
    if "optimizer" in state:
        optimizer.load_state_dict(state.pop("optimizer"))
    clips_alone = ExampleSource(config.world_config(), config.frames_per_clip, config.seed, clip_alone=True,
                                tracker_dropout=config.tracker_dropout, numbered=config.numbered_units)
    sources = {"vision": clips_alone, "single clip": clips_alone,
               "window": ExampleSource(config.world_config(), config.frames_per_clip, config.seed,
                                       tracker_dropout=config.tracker_dropout, max_new_facts=config.max_new_facts,
                                       numbered=config.numbered_units)}
    step = state["step"]
    while step < config.total_steps:
        started = time.monotonic()
        stage, first = config.stage(step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad()
        total = probe_total = guide_total = count_total = 0.0
        probe.start_step()
        for i in range(config.batch_size):
            example = sources[stage][first * config.batch_size + i]
            sequence = policy.encode(example.request, example.target)
            if stage == "vision":
                policy.see(sequence)
                probe_loss = probe.loss(example, sequence) / config.batch_size
                probe_total += probe_loss.item()
                (probe.weight * probe_loss).backward()
                continue
            logits, attention = policy.forward(sequence, guide.layer if guide.active else None)
            loss = text_loss(logits, sequence, count_positions(policy, example, config.count_token_weight)) \
                / config.batch_size
            total += loss.item()
            if guide.weight:
                guide_loss = guide.loss(example, sequence, attention) / config.batch_size
                guide_total += guide_loss.item()
                loss = loss + guide.weight * guide_loss
            if guide.count_weight:
                count_loss = guide.count_loss(example, sequence, attention) / config.batch_size
                count_total += count_loss.item()
                loss = loss + guide.count_weight * count_loss
            if probe.weight:
                probe_loss = probe.loss(example, sequence) / config.batch_size
                probe_total += probe_loss.item()
                loss = loss + probe.weight * probe_loss
            loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        policy.write_back()
        step += 1
        state["log"].append({"step": step, "stage": stage, "loss": total,
                             "probe_loss": probe_total, "guide_loss": guide_total, "count_loss": count_total,
                             **probe.step_figures(),
                             "lr": learning_rate(config, step - 1),
                             "seconds": time.monotonic() - started})
        state["step"] = step
        if on_step is not None:  # the vision stage has no text loss: its progress is the probe's
            on_step(step, probe_total if stage == "vision" else total)
        if step % config.checkpoint_every == 0 or step == config.total_steps:
            save_checkpoint(policy, optimizer, {**state, **probe.state()}, out / "last")
    final = finish(policy, out, state["log"])
    plot_losses(state["log"], out / "loss.png")
    return final


def plot_losses(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    for stage in ("single clip", "window"):  # the vision stage has no memory text
        entries = [e for e in log if e.get("stage", "window") == stage]
        if entries:
            axis.plot([e["step"] for e in entries], [e["loss"] for e in entries], linewidth=0.8,
                      label=f"memory text, {stage} (cross-entropy)")
    for key, label in (("probe_loss", "cell probe (cross-entropy)"), ("guide_loss", "attention guide (-log weight)"),
                       ("count_loss", "counting guide (cross-entropy)")):
        if any(e.get(key) for e in log):
            axis.plot([e["step"] for e in log], [e.get(key, 0.0) for e in log], linewidth=0.8, label=label)
    axis.set(xlabel="step", ylabel="loss", yscale="log", title="warm start")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
