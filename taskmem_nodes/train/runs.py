"""What every training recipe shares: its settings file, resumable checkpoints and the final checkpoint."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from taskmem_nodes.train.policy_model import RestrictedPolicy


def load_recipe(cls, path: str | Path, **overrides):
    """A recipe dataclass from a YAML file; unknown keys are an error naming the known ones."""
    data = {**(yaml.safe_load(Path(path).read_text()) or {}), **overrides}
    known = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(data) - known):
        raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(known)}")
    return cls(**data)


def start_or_resume(out: Path, recipe, fresh: Callable[[], RestrictedPolicy]) -> tuple[RestrictedPolicy, dict]:
    """The policy and trainer state of `<out>/last` when a run stopped there, else `fresh()` at step 0."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(recipe), indent=1))
    last = out / "last"
    if (last / "trainer_state.pt").exists():
        policy = RestrictedPolicy.load(last)
        state = torch.load(last / "trainer_state.pt", weights_only=False)
    else:
        policy, state = fresh(), {"step": 0, "log": []}
    policy.model.float()
    return policy, state


def save_checkpoint(policy: RestrictedPolicy, optimizer, state: dict, target: Path) -> None:
    """Write a resumable checkpoint (model, optimizer, trainer state) as `target`, atomically."""
    save_model(policy, target, lambda staging: torch.save({"optimizer": optimizer.state_dict(), **state},
                                                           staging / "trainer_state.pt"))


def save_model(policy: RestrictedPolicy, target: Path, more: Callable[[Path], None] | None = None) -> None:
    """Write the policy (and whatever `more` adds) next to `target`, then swap it in: a kill mid-write leaves
    the previous one."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    policy.save(staging)
    if more is not None:
        more(staging)
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old)
    else:
        staging.rename(target)


def finish(policy: RestrictedPolicy, out: Path, log: list[dict]) -> Path:
    """`<out>/final` (the trained checkpoint) and `<out>/log.json`."""
    final = out / "final"
    shutil.rmtree(final, ignore_errors=True)
    policy.model.eval()
    policy.save(final)
    (out / "log.json").write_text(json.dumps(log))
    return final
