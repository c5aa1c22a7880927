"""Phase One, step 1: the supervised warm start of the memorization policy on the simulated world.

Run:  taskmem train warm-start --config config/train/warm_start_tiny.yaml

Recipe, in order: (1) build a fresh Qwen3-VL of the configured size with the real processor and tokenizer (or
load `base_checkpoint`); (2) the world's vocabulary: logits over those ids only; (3) examples: the policy's
own inputs (50-s window, a few frames per clip, the preceding clips' memories) and the ground-truth new
content as target, from worlds whose seeds never appear in the benchmark, plus the vision probe's loss (what
the newest clip shows, read straight from its vision tokens: the tower starts from random weights); (4) AdamW,
linear warm-up then cosine decay; (5) a checkpoint every `checkpoint_every` steps (`<out>/last`, plus the
optimizer state), so a killed run resumes where it stopped; (6) `<out>/final` and a PNG of the loss curve.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer
from taskmem_nodes.models.tiny import build_tiny_checkpoint
from taskmem_nodes.models.transformers_backend import prepare_inputs
from taskmem_nodes.policy import build_request, pick_frames
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import ClipExample, stream_clips, stream_examples
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.runs import finish, load_recipe, save_checkpoint, start_or_resume
from taskmem_nodes.train.vision_probe import VisionCapture, VisionProbe, label_names, scene_labels
from taskmem_nodes.train.vocab import training_vocabulary

TRAIN_SEED_BASE = 1_000_000
"""Training worlds use seeds from here on; benchmark worlds use seed * 1000 + stream (far below)."""


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
    vision_probe_weight: float = 1.0
    """Weight of the vision probe's loss (what the newest clip shows, read from its vision tokens); 0: off."""
    vision_steps: int = 0
    """Steps of vision pretraining before the warm start: the tower and the probe alone, on single clips."""
    vision_batch: int = 32
    """Clips per vision pretraining step."""
    steps: int = 600
    """Optimizer steps."""
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

    @property
    def total_steps(self) -> int:
        return self.vision_steps + self.steps

    def world_config(self) -> WorldConfig:
        return WorldConfig.from_dict(self.world)


class ExampleSource:
    """Example number k, deterministically: world TRAIN_SEED_BASE + seed offset + k // clips, and a clip of
    it in a fixed scrambled order, so a resumed run sees exactly the examples it would have seen."""

    def __init__(self, world_config: WorldConfig, frames_per_clip: int, seed: int):
        self.world_config = world_config
        self.frames_per_clip = frames_per_clip
        self.first_world = TRAIN_SEED_BASE + seed * 100_000
        self.clips = world_config.clips
        self.stride = next(s for s in range(7, 1000) if math.gcd(s, self.clips) == 1)
        self._cached: tuple[int, list[ClipExample]] | None = None

    def __getitem__(self, k: int) -> ClipExample:
        world_seed = self.first_world + k // self.clips
        if self._cached is None or self._cached[0] != world_seed:
            world = World(dataclasses.replace(self.world_config, seed=world_seed))
            self._cached = (world_seed, list(stream_examples(world, frames_per_clip=self.frames_per_clip)))
        return self._cached[1][(k * self.stride) % self.clips]


class VisionClipSource:
    """Vision pretraining batches: clip number k of worlds apart from the warm start's, as (pixel values,
    grid, scene labels) of the clip alone with the policy's frames per clip."""

    def __init__(self, policy: RestrictedPolicy, world_config: WorldConfig, names: list[str], seed: int):
        self.policy, self.world_config, self.names = policy, world_config, names
        self.first_world = TRAIN_SEED_BASE + 900_000 + seed * 10_000
        self.clips = world_config.clips
        self._cached: tuple[int, list] | None = None

    def _world_items(self, world_seed: int) -> list:
        world = World(dataclasses.replace(self.world_config, seed=world_seed))
        items = []
        for index, clip in enumerate(stream_clips(world, 1.0)):
            shown = pick_frames(clip.frames, self.policy.frames_per_clip)
            _, inputs = prepare_inputs(self.policy.processor, build_request([clip], [], self.policy.frames_per_clip))
            labels = scene_labels(world, index, shown[0].stamp, shown[-1].stamp, self.names)
            items.append((inputs["pixel_values_videos"], inputs["video_grid_thw"], labels))
        return items

    def batch(self, step: int, size: int) -> list:
        out = []
        for k in range(step * size, (step + 1) * size):
            world_seed = self.first_world + k // self.clips
            if self._cached is None or self._cached[0] != world_seed:
                self._cached = (world_seed, self._world_items(world_seed))
            out.append(self._cached[1][k % self.clips])
        return out


def _vision_step(policy: RestrictedPolicy, probe: _VisionTask, batch: list) -> torch.Tensor:
    """The probe's loss on a batch of single clips, through the vision tower only."""
    pixels = torch.cat([item[0] for item in batch])
    grids = torch.cat([item[1] for item in batch])
    tokens = policy.model.model.visual(pixels, grid_thw=grids, return_dict=True).pooler_output
    per_clip = tokens.shape[0] // len(batch)
    logits = torch.stack([probe.module(tokens[k * per_clip:(k + 1) * per_clip]) for k in range(len(batch))])
    labels = torch.stack([item[2] for item in batch])
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)


def learning_rate(config: WarmStartConfig, step: int) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _build_policy(config: WarmStartConfig, out: Path) -> RestrictedPolicy:
    world = config.world_config()
    if config.base_checkpoint:
        base = Path(config.base_checkpoint)
    else:
        base = build_tiny_checkpoint(
            out / "base", text_hidden=config.text_hidden, layers=config.layers, heads=config.heads,
            kv_heads=max(1, config.heads // 2), vision_depth=config.vision_depth, vision_hidden=config.vision_hidden,
            seed=config.seed, video_max_pixels=world.cell_px ** 2 * 48,  # one vision token per 2x2 cells
        )
    allowed = training_vocabulary(build_qwen_tokenizer(), world)
    return RestrictedPolicy.load(base, allowed, frames_per_clip=config.frames_per_clip)


def train_warm_start(config: WarmStartConfig, *, on_step: Callable[[int, float], None] | None = None) -> Path:
    """Run (or resume) the warm start; returns the final checkpoint directory."""
    out = Path(config.out_dir)
    torch.manual_seed(config.seed)
    policy, state = start_or_resume(out, config, lambda: _build_policy(config, out))
    policy.model.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    source = ExampleSource(config.world_config(), config.frames_per_clip, config.seed)
    probe = _VisionTask(policy, config, state.pop("probe", None))
    if probe.weight:
        optimizer.add_param_group({"params": list(probe.module.parameters())})
    if "optimizer" in state:
        optimizer.load_state_dict(state.pop("optimizer"))
    vision_step = state.setdefault("vision_step", 0)
    if vision_step < config.vision_steps:
        clips = VisionClipSource(policy, config.world_config(), probe.names, config.seed)
    while vision_step < config.vision_steps:  # stage 1: the vision tower learns to see the world
        started = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = config.lr * min(1.0, (vision_step + 1) / config.warmup_steps)
        optimizer.zero_grad()
        loss = _vision_step(policy, probe, clips.batch(vision_step, config.vision_batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 1.0)
        optimizer.step()
        vision_step += 1
        state["vision_log"] = [*state.get("vision_log", []),
                               {"step": vision_step, "probe_loss": loss.item(), "seconds": time.monotonic() - started}]
        state["vision_step"] = vision_step
        if on_step is not None:
            on_step(vision_step, loss.item())
        if vision_step % config.checkpoint_every == 0 or vision_step == config.vision_steps:
            save_checkpoint(policy, optimizer, {**state, "probe": probe.module.state_dict()}, out / "last")
    step = state["step"]
    while step < config.steps:  # stage 2: the memory text, with the probe's loss alongside
        started = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad()
        total = probe_total = 0.0
        for i in range(config.batch_size):
            example = source[step * config.batch_size + i]
            sequence = policy.encode(example.request, example.target)
            loss = policy.loss(sequence) / config.batch_size
            total += loss.item()
            if probe.weight:
                probe_loss = probe.loss(example, sequence) / config.batch_size
                probe_total += probe_loss.item()
                loss = loss + probe.weight * probe_loss
            loss.backward()
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], 1.0)
        optimizer.step()
        policy.write_back()
        step += 1
        state["log"].append({"step": step, "loss": total, "probe_loss": probe_total,
                             "lr": learning_rate(config, step - 1), "seconds": time.monotonic() - started})
        state["step"] = step
        if on_step is not None:
            on_step(config.vision_steps + step, total)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(policy, optimizer, {**state, "probe": probe.module.state_dict()}, out / "last")
    final = finish(policy, out, state["log"])
    plot_losses(state["log"], state.get("vision_log", []), out / "loss.png")
    return final


class _VisionTask:
    """The vision probe of a run (see vision_probe.py): its module, labels and loss."""

    def __init__(self, policy: RestrictedPolicy, config: WarmStartConfig, saved: dict | None):
        self.weight = config.vision_probe_weight
        self.names = label_names(config.world_config())
        self.module = VisionProbe(policy.model.config.get_text_config().hidden_size, len(self.names))
        if saved is not None:
            self.module.load_state_dict(saved)
        self.capture = VisionCapture(policy.model) if self.weight else None

    def loss(self, example: ClipExample, sequence) -> torch.Tensor:
        """Binary cross-entropy of the scene labels, from the last forward pass's vision tokens."""
        tokens = self.capture.newest_clip(sequence.inputs["video_grid_thw"])
        labels = scene_labels(example.world, example.index, *example.frame_span, self.names)
        return torch.nn.functional.binary_cross_entropy_with_logits(self.module(tokens), labels)


def plot_losses(log: list[dict], vision_log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in log]
    figure, (first, axis) = plt.subplots(1, 2, figsize=(10, 3.5))
    first.plot([e["step"] for e in vision_log], [e["probe_loss"] for e in vision_log], linewidth=0.8)
    first.set(xlabel="step", ylabel="BCE", title="stage 1: vision probe")
    axis.plot(steps, [e["loss"] for e in log], linewidth=0.8, label="memory text (cross-entropy)")
    if any(e.get("probe_loss") for e in log):
        axis.plot(steps, [e.get("probe_loss", 0.0) for e in log], linewidth=0.8, label="vision probe (BCE)")
    axis.set(xlabel="step", ylabel="loss", yscale="log", title="stage 2: warm start")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
