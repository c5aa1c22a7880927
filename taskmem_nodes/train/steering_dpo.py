"""DPO of a steering vector against the frozen policy (Phase Two).

The policy's weights stay frozen; the only parameter is `s` (hidden size), added after decoder layer `layer`.
The reference model is the same policy without the vector, so the DPO loss per pair is
    -log sigmoid(beta * [(log pi_s(chosen) - log pi(chosen)) - (log pi_s(rejected) - log pi(rejected))])
over whole rollouts (thinking, JSON and end of turn), given the clip's prompt; or, with `span: memory`, over
the tokens after `</think>` only, each rollout given its own thinking: a task preference says which memory
to write, not how to see the clip. With `steer: memory` the vector is added only at the memory's positions.
trl's DPOTrainer has no video input, hence this short loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from taskmem_nodes.models.steering import STEER_MODES, THINK_END, MemoryPositions, SteeringHook, decoder_layers
from taskmem_nodes.train.policy_model import RestrictedPolicy


@dataclass(frozen=True)
class DpoExample:
    """A prompt with the rollout to prefer and the rollout to avoid (token ids of each)."""

    request: object  # PolicyRequest
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]


@dataclass
class DpoSettings:
    steps: int = 10
    """Full passes over the pairs (the paper: about 10)."""
    lr: float = 1e-3
    """Adam learning rate of the vector (the paper: 1e-3)."""
    beta: float = 0.1
    """DPO temperature."""
    span: str = "output"
    """The tokens the log-probabilities sum over: "output" (thinking, JSON, end of turn) or "memory" (after
    `</think>`, given the rollout's own thinking)."""
    steer: str = "all"
    """Where the vector is added, in training and when deployed: "all" positions (the paper) or only the
    "memory" (after `</think>`: the prompt and the thinking are computed as by the frozen policy)."""

    def __post_init__(self):
        if self.span not in SPANS:
            raise ValueError(f"span must be one of {SPANS}, not {self.span!r}")
        if self.steer not in STEER_MODES:
            raise ValueError(f"steer must be one of {STEER_MODES}, not {self.steer!r}")


SPANS = ("output", "memory")


def resolve_layer(model, layer: int | None) -> int:
    """`layer`, or the reference's depth when None: layer 22 of 48, scaled to this model's depth."""
    count = len(decoder_layers(model))
    index = round(count * 22 / 48) if layer is None else layer
    if not -count <= index < count:
        raise ValueError(f"layer {layer} does not exist: the model has {count} decoder layers")
    return index % count


def span_start(policy: RestrictedPolicy, ids: Sequence[int], span: str) -> int:
    """The first rollout token the DPO log-probability counts (0 for the whole output)."""
    if span == "output":
        return 0
    think_end = policy.tokenizer.convert_tokens_to_ids(THINK_END)
    if think_end not in ids:
        raise ValueError(f"a rollout without {THINK_END} has no memory span")
    return list(ids).index(think_end) + 1


def _logprob(policy: RestrictedPolicy, request, ids: Sequence[int], span: str) -> torch.Tensor:
    return policy.sequence_logprob(policy.encode_ids(request, torch.tensor(ids)), span_start(policy, ids, span))


def train_steering_vector(policy: RestrictedPolicy, examples: Sequence[DpoExample], layer: int,
                          settings: DpoSettings,
                          on_step: Callable[[int, dict], None] | None = None) -> tuple[torch.Tensor, list[dict]]:
    """The trained vector (at scale 1) and the per-step log (loss, preference accuracy, reward margin)."""
    if not examples:
        raise ValueError("DPO needs at least one preference pair")
    for parameter in policy.model.parameters():
        parameter.requires_grad_(False)
    policy.model.eval()  # no dropout: the reference and the steered policy must differ only by the vector
    with torch.no_grad():
        reference = [(_logprob(policy, e.request, e.chosen_ids, settings.span),
                      _logprob(policy, e.request, e.rejected_ids, settings.span)) for e in examples]
    hidden = policy.model.config.get_text_config().hidden_size
    vector = torch.nn.Parameter(torch.zeros(hidden))
    optimizer = torch.optim.Adam([vector], lr=settings.lr)
    log = []
    positions = MemoryPositions.for_tokenizer(policy.tokenizer) if settings.steer == "memory" else None
    with SteeringHook(policy.model, layer, vector, positions=positions):
        for step in range(1, settings.steps + 1):
            optimizer.zero_grad()
            losses, margins = [], []
            for example, (ref_chosen, ref_rejected) in zip(examples, reference, strict=True):
                chosen = _logprob(policy, example.request, example.chosen_ids, settings.span) - ref_chosen
                rejected = _logprob(policy, example.request, example.rejected_ids, settings.span) - ref_rejected
                margin = settings.beta * (chosen - rejected)
                loss = -torch.nn.functional.logsigmoid(margin) / len(examples)
                loss.backward()  # one example's graph at a time
                losses.append(float(loss.detach()) * len(examples))
                margins.append(float(margin.detach()))
            optimizer.step()
            entry = {"step": step, "loss": sum(losses) / len(losses),
                     "accuracy": sum(m > 0 for m in margins) / len(margins),
                     "margin": sum(margins) / len(margins), "vector_norm": float(vector.detach().norm())}
            log.append(entry)
            if on_step is not None:
                on_step(step, entry)
    return vector.detach().clone(), log
