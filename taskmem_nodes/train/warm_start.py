"""Phase One, step 1: the supervised warm start of the memorization policy on the simulated world.

Run:  taskmem train warm-start --config config/train/warm_start_tiny.yaml

Recipe, in order: (1) build a fresh Qwen3-VL of the configured size with the real processor and tokenizer (or
load `base_checkpoint`); (2) the world's vocabulary: logits over those ids only; (3) examples: the policy's
own inputs (50-s window, a few frames per clip, the preceding clips' memories) and the ground-truth new
content as target, from worlds whose seeds never appear in the benchmark; (4) AdamW, linear warm-up then
cosine decay; (5) a checkpoint every `checkpoint_every` steps (`<out>/last`, plus the optimizer state), so a
killed run resumes where it stopped; (6) `<out>/final` and a PNG of the loss curve.
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
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import ClipExample, stream_examples
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.runs import finish, load_recipe, save_checkpoint, start_or_resume
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
    if "optimizer" in state:
        optimizer.load_state_dict(state.pop("optimizer"))
    source = ExampleSource(config.world_config(), config.frames_per_clip, config.seed)
    step = state["step"]
    while step < config.steps:
        started = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad()
        total = 0.0
        for i in range(config.batch_size):
            example = source[step * config.batch_size + i]
            loss = policy.loss(policy.encode(example.request, example.target)) / config.batch_size
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        policy.write_back()
        step += 1
        state["log"].append({"step": step, "loss": total, "lr": learning_rate(config, step - 1),
                             "seconds": time.monotonic() - started})
        state["step"] = step
        if on_step is not None:
            on_step(step, total)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(policy, optimizer, state, out / "last")
    final = finish(policy, out, state["log"])
    plot_losses(state["log"], out / "loss.png")
    return final


def plot_losses(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in log]
    losses = [e["loss"] for e in log]
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(steps, losses, linewidth=0.8)
    axis.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="warm start: target-token loss")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
