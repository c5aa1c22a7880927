"""A tiny Phase Two deployment for tests: a warm-started tiny policy streams one minute of the synthetic world,
tasks of a mix arrive and are logged, every clip is archived."""

from __future__ import annotations

from pathlib import Path

from taskmem_nodes.memorizer import load_backend
from taskmem_nodes.sim.tasks import TaskConfig
from taskmem_nodes.sim.world import WorldConfig
from taskmem_nodes.train.deployment import record_simulated_deployment
from taskmem_nodes.train.warm_start import WarmStartConfig, train_warm_start

TINY_WORLD = {"duration_s": 60.0, "cell_px": 16}


def tiny_deployment(root: Path, mix: dict[str, float]) -> tuple[Path, Path, dict]:
    """(policy checkpoint, deployment folder, counts)."""
    warm = train_warm_start(WarmStartConfig(out_dir=str(root / "warm"), text_hidden=64, layers=2, heads=2,
                                            vision_depth=1, vision_hidden=32, batch_size=1, steps=2, warmup_steps=1,
                                            world=TINY_WORLD))
    backend = load_backend("transformers", model_path=str(warm), device="cpu", max_thinking_tokens=16,
                           max_description_tokens=16, enforce_format=True)
    backend.load()
    counts = record_simulated_deployment(root / "deployment", backend, WorldConfig(**TINY_WORLD),
                                         TaskConfig(per_minute=40.0, mix=mix, min_delay_s=10.0), seeds=[3], streams=1)
    return warm, root / "deployment", counts
