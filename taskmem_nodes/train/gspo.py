"""Phase One, step 2: reinforcement learning of the memorization policy with GSPO on the simulated world.

Run:  taskmem train phase-one --config config/train/phase_one_tiny.yaml

GSPO is sequence-level GRPO: for each clip the policy samples a group of G memories; each gets the Phase One
reward (`rewards.py`, judged against ground truth); advantages are the rewards less the group's mean (or, with
`baseline: greedy`, less the greedy memory's reward; with `baseline: length`, less the group's line of reward
against statement count), divided by the group's spread (or not, `scale: none`), only the positive ones kept
with `push: up` (only those of correct rollouts with `push: correct`); the loss is -A_i * s_i with
s_i = exp(mean token log-ratio of rollout i), clipped, no KL term; with `credit: statement` (GSPO-token) each
statement's tokens also get that statement's own credit (`statement_credit.py`). With `validate_every`,
held-out worlds are memorized greedily every so many steps (`validation.py`; freely or as deployed,
`validation_decoding`) and the best checkpoint (`select_by`) is kept.
trl's GRPOTrainer has no video input, hence this short loop.

The curriculum is on-policy and streaming: `streams` worlds advance one clip per step, and the preceding
memories each prompt shows are the policy's own outputs for the earlier clips of that world.
Checkpoints (`<out>/last`) hold the model, the optimizer and the streams' positions and memories.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from taskmem_nodes.memorizer import memorizer_parameters
from taskmem_nodes.models.steering import THINK_END
from taskmem_nodes.policy import PRECEDING_MEMORIES, MemoryParseError, parse_output
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.examples import (
    SCAN_NUMBERINGS,
    own_reading_target,
    stream_clips,
    streamed_example,
    streamed_request,
)
from taskmem_nodes.train.fact_judge import (
    EntryVerdict,
    JudgedClip,
    departure,
    judge_entry,
    sentence_spans,
    statement_values,
)
from taskmem_nodes.train.policy_model import RestrictedPolicy, inference_decoding
from taskmem_nodes.train.rewards import RewardConfig, score_group
from taskmem_nodes.train.rollouts import choice_group, sample_group
from taskmem_nodes.train.runs import finish, load_recipe, save_checkpoint, save_model, start_or_resume
from taskmem_nodes.train.statement_credit import centred_credits, statement_token_credit, token_offsets
from taskmem_nodes.train.validation import VALIDATION_SEEDS, carry, figures, greedy_outputs, validate
from taskmem_nodes.train.warm_start import TRAIN_SEED_BASE, ExampleSource

SUPERVISED_SEED = 8
"""`ExampleSource` seed of the supervised term's worlds (1,800,000 and up: no warm start or curriculum's)."""


@dataclass
class PhaseOneConfig:
    """Everything that shapes a GSPO run."""

    out_dir: str = "runs/phase-one"
    """Checkpoints, the log and the reward plot."""
    init_checkpoint: str = "runs/warm-start/final"
    """The warm-started policy to improve (or a previous Phase One run)."""
    world: dict = field(default_factory=dict)
    """Overrides of the world settings for the training worlds."""
    streams: int = 2
    """Worlds advanced in parallel, one clip per step each."""
    group_size: int = 8
    """Rollouts per clip (the paper: 8)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (with `sample: choices`, of their choices)."""
    sample: str = "free"
    """How a group is sampled: "free" (every token at `temperature`, the method) or "choices" (decoded as the
    deployed memorizer decodes, through its format enforcer and budgets, greedily but for the memory's choices:
    the greedy thinking, then which statement follows a full stop and whether the memory goes on or closes
    sampled at `temperature`, `rollouts.choice_group`). With "choices" the group differs only where the deployed
    greedy policy decides what to write, so the update is about those decisions, not about how it reads the
    clip; the greedy output is the group's reference (`carry: greedy` costs nothing more)."""
    max_new_tokens: int = 96
    """Longest rollout."""
    steps: int = 200
    """Optimizer steps."""
    lr: float = 2e-5
    """Learning rate (constant)."""
    clip_epsilon: float = 0.2
    """Clipping of the sequence-level ratio."""
    baseline: str = "group"
    """What a rollout's reward is compared with: "group" (the group's mean, GRPO), "greedy" (the reward of
    the greedy memory for the same prompt, as in self-critical training: only rollouts better than what the
    deployed policy writes are pushed up) or "length" (the group's least-squares line of reward against
    statement count: only what a rollout does better than the group's rollouts of its length counts, so the
    update rewards true statements rather than fewer ones)."""
    credit: str = "sequence"
    """Whose advantage a token gets: "sequence" (its rollout's, GSPO) or "statement" (GSPO-token: the tokens of
    each statement of the memory also get that statement's centred credit, `statement_credit.py`)."""
    statement_weight: float = 0.5
    """Weight of the statement credit against the sequence advantage (with `credit: statement`)."""
    scale: str = "std"
    """How advantages are scaled: "std" (divided by the group's spread, GRPO) or "none" (raw reward units,
    as in Dr. GRPO: a group whose rollouts differ only by a few hundredths of thinking penalty then moves
    the policy a few hundredths, not as much as a group with a right and a wrong memory)."""
    push: str = "both"
    """Which rollouts move the policy: "both" (better ones up, worse ones down, GRPO), "up" (only rollouts
    better than the baseline, their advantage kept, the others' set to 0: the rejection-sampling end of GRPO,
    no unlikelihood on the policy's own worse samples) or "correct" (as "up", and only rollouts that pass the
    quality gate: every statement true, none repeated, not filler)."""
    supervised_weight: float = 0.0
    """Weight of a supervised term in every step, as in InstructGPT's PPO-ptx: the warm start's language loss on
    `supervised_batch` ground-truth examples of worlds apart from the curriculum's (0: GSPO alone, the paper)."""
    supervised_batch: int = 8
    supervised_source: str = "worlds"
    """Where the supervised term's examples come from: "worlds" (`supervised_batch` clips of fresh worlds, the
    memories shown the ground truth's) or "own" (each stream's current clip, the memories shown the policy's
    own, the target what is new to them: everything true the frames show that those memories do not state, as
    the judge counts it. DAgger: the expert labels the states the policy itself reaches, so it learns to state
    what it missed or misread before instead of only what changed)."""
    own_target: str = "unstated"
    """With `supervised_source: own`, which of the clip's facts that are not new the target adds: "unstated"
    (every one no memory shown states), "untold" (only those about a person, object group or room's lights no
    memory shown speaks of: a thing it misread is not restated, so the policy does not learn to restate what its
    memory already mentions) or "read" (the target's thinking is the policy's own greedy scan of the clip, not
    learned, and its memory every unstated fact that scan read right: it learns to state what it read right and
    its memories lack, never to guess at what it misread)."""
    false_statement_weight: float = 0.0
    """With `own_target: read`, weight of an unlikelihood term on the deployed policy's memory of each stream's
    clip: -log(1 - p) of the token where each statement that is false or repeats the memories shown went wrong
    (`fact_judge.departure`). The read target teaches what to state after its own scan; this makes the policy
    unsure of what it states wrongly, so it states it less, and the memorizer's confidence floor
    (`min_statement_confidence`) leaves out the rest."""
    numbered_units: str = ""
    """The supervised term's scans: "" plain, or numbered as the init checkpoint's warm start numbered them
    ("running" or "size", `examples.NUMBERINGS`): a policy warm-started on numbered scans keeps writing them."""
    rl: bool = True
    """False: no rollouts, the supervised term alone: the control that tells what the RL part adds to it."""
    rewards: dict = field(default_factory=dict)
    """Overrides of `RewardConfig`."""
    checkpoint_every: int = 20
    """Steps between resumable checkpoints."""
    carry: str = "sample"
    """The memory each stream carries on to its next prompts: "sample" (the group's first rollout) or "greedy"
    (one more, greedy, generation: what the deployed policy would have written)."""
    validate_every: int = 0
    """Steps between held-out validations (`validation.py`; 0 = none); the best one is kept as `<out>/best`."""
    validation_clips: int = 15
    """Clips of each validation world per validation."""
    validation_decoding: str = "free"
    """How held-out memories are decoded: "free" (as the rollouts) or "deployed" (through the memorizer's format
    enforcer and budgets, config/taskmem.yaml, as the benchmark and the robot decode)."""
    select_by: str = "reward"
    """Which held-out figure picks `<out>/best`: the Phase One "reward" or "rich" (new true facts per entry,
    what memory-only answers need)."""
    stream_starts: list[int] = field(default_factory=list)
    """The clip each stream starts at (one per stream; empty: every stream at clip 0). Twenty steps from clip 0
    train on clips 0-19 of each world alone, while the benchmark's streams run 30 clips and a robot's go on; later
    starts put those later states (more people met, more of its own memories behind it) in the curriculum. A stream
    that starts late first memorizes the clips just before its start, greedily as deployed, so its first prompts
    show the policy's own memories."""
    seed: int = 0
    """Sampling and world seeds."""

    def __post_init__(self):
        if self.stream_starts and (len(self.stream_starts) != self.streams or min(self.stream_starts) < 0):
            raise ValueError(f"stream_starts needs one clip index >= 0 per stream ({self.streams}), "
                             f"not {self.stream_starts}")
        if not self.rl and self.supervised_weight <= 0:
            raise ValueError("rl: false trains nothing without a positive supervised_weight")
        if self.false_statement_weight > 0 and (self.supervised_source, self.own_target) != ("own", "read"):
            raise ValueError("false_statement_weight needs supervised_source: own and own_target: read")
        if self.supervised_source not in ("worlds", "own"):
            raise ValueError(f"supervised_source must be 'worlds' or 'own', not {self.supervised_source!r}")
        for name, allowed in (("carry", ("sample", "greedy")), ("baseline", ("group", "greedy", "length")),
                              ("scale", ("std", "none")), ("push", ("both", "up", "correct")),
                              ("credit", ("sequence", "statement")), ("validation_decoding", ("free", "deployed")),
                              ("select_by", ("reward", "rich")), ("sample", ("free", "choices")),
                              ("own_target", ("unstated", "untold", "read")),
                              ("numbered_units", SCAN_NUMBERINGS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> PhaseOneConfig:
        return load_recipe(cls, path, **overrides)


@dataclass
class StreamState:
    """Where one training world is, and what the policy itself wrote for its earlier clips."""

    world_seed: int
    index: int = 0
    memories: list[str] = field(default_factory=list)  # one per clip so far ("" when the output was unusable)


class Curriculum:
    """The on-policy streaming curriculum: worlds in order of seed, each played clip by clip."""

    def __init__(self, config: PhaseOneConfig, frames_per_clip: int, states: list[StreamState] | None = None):
        self.world_config = WorldConfig.from_dict(config.world)
        self.frames_per_clip = frames_per_clip
        first = TRAIN_SEED_BASE + 500_000 + config.seed * 100_000  # apart from the warm start's worlds
        self.states = states or [StreamState(first + i) for i in range(config.streams)]
        self.next_seed = max(s.world_seed for s in self.states) + 1
        self._worlds: dict[int, tuple[World, list]] = {}

    def world(self, state: StreamState) -> tuple[World, list]:
        if state.world_seed not in self._worlds:
            world = World(dataclasses.replace(self.world_config, seed=state.world_seed))
            self._worlds[state.world_seed] = (world, stream_clips(world, 1.0))
        return self._worlds[state.world_seed]

    def request(self, state: StreamState):
        """The policy input for the stream's current clip, with its own preceding memories."""
        _, clips = self.world(state)
        return streamed_request(clips, state.index, state.memories, self.frames_per_clip)[0]

    def judge(self, state: StreamState) -> Callable[[str], EntryVerdict]:
        """The ground-truth verdict of a memory for the stream's current clip, given the memories it shows."""
        world, _ = self.world(state)
        return partial(judge_entry, world, state.index, preceding=self._preceding(state))

    def judged_clip(self, state: StreamState) -> JudgedClip:
        """What a memory for the stream's current clip is judged against, given the memories it shows."""
        world, _ = self.world(state)
        return JudgedClip.of(world, state.index, self._preceding(state))

    def statement_judge(self, state: StreamState) -> Callable[[str], list[int]]:
        """The ground-truth value of each statement of a memory for the stream's current clip."""
        world, _ = self.world(state)
        return partial(statement_values, world, state.index, preceding=self._preceding(state))

    @staticmethod
    def _preceding(state: StreamState) -> list[str]:
        return state.memories[max(0, state.index - PRECEDING_MEMORIES):]

    def start_late(self, starts: Sequence[int], write: Callable[[list[StreamState]], list[str]]) -> None:
        """Put each stream at its clip of `starts`, the memories of the clips shown before it written by
        `write(streams)` (one output per stream, for its current clip), those of earlier clips left empty."""
        for state, start in zip(self.states, starts, strict=True):
            world, _ = self.world(state)
            if start >= len(world.clips):
                raise ValueError(f"stream_starts: clip {start} is past the world's {len(world.clips)} clips")
            state.index = max(0, start - PRECEDING_MEMORIES)
            state.memories = [""] * state.index
        while behind := [s for s, start in zip(self.states, starts, strict=True) if s.index < start]:
            for state, text in zip(behind, write(behind), strict=True):
                self.advance(state, description_of(text))

    def advance(self, state: StreamState, memory: str) -> None:
        state.memories.append(memory)
        state.index += 1
        world, _ = self.world(state)
        if state.index >= len(world.clips):  # the world ended: start the next one
            self._worlds.pop(state.world_seed, None)
            state.world_seed, state.index, state.memories = self.next_seed, 0, []
            self.next_seed += 1


def gspo_loss(policy: RestrictedPolicy, request, rollouts: list[torch.Tensor],
              advantages: Sequence[float | torch.Tensor], epsilon: float,
              old_logprobs: list[float] | None = None) -> torch.Tensor:
    """Mean over the group of -min(s A, clip(s) A), s = exp(mean log-ratio of the rollout's tokens against the
    policy that sampled it; on-policy, with `old_logprobs` None, s is 1 and carries the gradient). An advantage
    given per token (a tensor) is GSPO-token's: s_t = sg[s] * p_t / sg[p_t], the token terms averaged."""
    total = torch.zeros(())
    for i, (ids, advantage) in enumerate(zip(rollouts, advantages, strict=True)):
        token_logprobs = policy.token_logprobs(policy.encode_ids(request, ids))
        mean_logprob = token_logprobs.mean()
        old = mean_logprob.detach() if old_logprobs is None else old_logprobs[i]
        ratio = torch.exp(mean_logprob - old)
        if isinstance(advantage, torch.Tensor):
            ratio = ratio.detach() * torch.exp(token_logprobs - token_logprobs.detach())
        terms = torch.min(ratio * advantage, ratio.clamp(1 - epsilon, 1 + epsilon) * advantage)
        total = total - terms.mean()
    return total / len(rollouts)


def train_phase_one(config: PhaseOneConfig, *, on_step: Callable[[int, dict], None] | None = None,
                    on_validation: Callable[[int, dict], None] | None = None) -> Path:
    """Run (or resume) GSPO; returns the final checkpoint directory (the best validated one is `<out>/best`)."""
    out = Path(config.out_dir)
    policy, state = start_or_resume(out, config, lambda: RestrictedPolicy.load(config.init_checkpoint))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=0.0)
    if "optimizer" in state:
        optimizer.load_state_dict(state.pop("optimizer"))
    curriculum = Curriculum(config, policy.frames_per_clip, [StreamState(**s) for s in state.get("streams", [])]
                            or None)
    rewards = RewardConfig(**config.rewards)
    torch.manual_seed(config.seed + state["step"])  # a resumed run samples like a fresh one at that step

    def count_tokens(text: str) -> int:
        return len(policy.tokenizer.encode(text, add_special_tokens=False))

    state.setdefault("validation", [])
    processors, limit = held_out_decoding(policy, config)

    def validate_at(step: int) -> None:
        due = config.validate_every and (step % config.validate_every == 0 or step == config.steps)
        if not due or any(v["step"] == step for v in state["validation"]):
            return
        held_out = Curriculum(config, policy.frames_per_clip, [StreamState(s) for s in VALIDATION_SEEDS])
        figures = validate(policy, held_out, config.validation_clips, rewards, count_tokens, limit, processors)
        state["validation"].append({"step": step, **figures})
        if figures[config.select_by] >= max(v[config.select_by] for v in state["validation"]):
            save_model(policy, out / "best")
        if on_validation is not None:
            on_validation(step, figures)

    choice_decoding = inference_decoding(policy, memorizer_parameters(), config.max_new_tokens)
    if config.stream_starts and "streams" not in state:  # a fresh run: streams to their starts
        curriculum.start_late(config.stream_starts, lambda streams: greedy_outputs(
            policy, curriculum, choice_decoding[1], choice_decoding[0], streams=streams))
    supervised = ExampleSource(curriculum.world_config, policy.frames_per_clip, SUPERVISED_SEED + config.seed,
                               numbered=config.numbered_units)
    step = state["step"]
    validate_at(step)
    while step < config.steps:
        started = time.monotonic()
        optimizer.zero_grad()
        summary = {}
        deployed = None  # what the deployed policy writes for each stream's clip, when a step needs it
        if config.supervised_source == "own" and (config.own_target == "read" or not config.rl):
            deployed = greedy_outputs(policy, curriculum, choice_decoding[1], choice_decoding[0])
        if config.supervised_weight > 0 and config.supervised_source == "own":  # before the streams advance
            summary["supervised_loss"] = _add_own_memory_gradient(policy, curriculum, config, deployed)
        if config.rl:
            groups = [_learn_from_clip(policy, curriculum, stream, config, rewards, count_tokens, choice_decoding)
                      for stream in curriculum.states]
            summary |= {key: sum(g[key] for g in groups) / len(groups) for key in groups[0]}
        elif config.supervised_source == "own":  # no rollouts: go on with what the deployed policy writes
            summary["carried_rich"] = figures(carry(curriculum, deployed, rewards, count_tokens))["rich"]
        if config.supervised_weight > 0 and config.supervised_source == "worlds":
            summary["supervised_loss"] = _add_supervised_gradient(policy, supervised, step, config)
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        policy.write_back()
        step += 1
        state["log"].append({"step": step, **summary, "seconds": time.monotonic() - started})
        state["step"] = step
        state["streams"] = [dataclasses.asdict(s) for s in curriculum.states]
        if on_step is not None:
            on_step(step, summary)
        validate_at(step)
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(policy, optimizer, state, out / "last")
    final = finish(policy, out, state["log"])
    (out / "validation.json").write_text(json.dumps(state["validation"]))
    plot_rewards(state["log"], out / "rewards.png", state["validation"])
    return final


def held_out_decoding(policy: RestrictedPolicy, config: PhaseOneConfig) -> tuple[Callable[[], list], int]:
    """The processor factory and token limit of held-out validation: the rollouts' free decoding, or the deployed
    memorizer's format enforcer and budgets (`validation_decoding: deployed`)."""
    if config.validation_decoding == "deployed":
        return inference_decoding(policy, memorizer_parameters(), config.max_new_tokens)
    return list, config.max_new_tokens


def _add_supervised_gradient(policy: RestrictedPolicy, examples: ExampleSource, step: int,
                             config: PhaseOneConfig) -> float:
    """Add the gradient of `supervised_weight` x the mean language loss of step `step`'s ground-truth examples
    (the next `supervised_batch` of `examples`, so a resumed run sees the same ones); returns that loss."""
    policy.model.train()
    total = 0.0
    for k in range(step * config.supervised_batch, (step + 1) * config.supervised_batch):
        example = examples[k]
        loss = policy.loss(policy.encode(example.request, example.target)) / config.supervised_batch
        (config.supervised_weight * loss).backward()
        total += loss.item()
    return total


def _add_own_memory_gradient(policy: RestrictedPolicy, curriculum: Curriculum, config: PhaseOneConfig,
                             deployed: list[str] | None) -> float:
    """Add the gradient of `supervised_weight` x the mean language loss of every stream's current clip, its
    memories shown the policy's own and its target what is new to them (`supervised_source: own`; with
    `own_target: read`, after the scan of `deployed`, the deployed policy's output for each stream's clip)."""
    policy.model.train()
    total = 0.0
    for k, stream in enumerate(curriculum.states):
        world, clips = curriculum.world(stream)
        if config.own_target == "read":
            try:
                thinking = parse_output(deployed[k]).thinking
            except MemoryParseError:  # nothing read to learn after
                continue
            request, target = own_reading_target(world, clips, stream.index, stream.memories, thinking,
                                                 frames_per_clip=policy.frames_per_clip)
            start = policy.answer_start(target)
            if config.false_statement_weight > 0:
                unlikely = _false_statement_loss(policy, request, deployed[k], curriculum.judged_clip(stream))
                if unlikely.requires_grad:  # the memory stated something wrong
                    (config.false_statement_weight * unlikely / len(curriculum.states)).backward()
        else:
            example = streamed_example(world, clips, stream.index, stream.memories,
                                       frames_per_clip=policy.frames_per_clip, own_memories=True,
                                       numbered=config.numbered_units,
                                       untold_only=config.own_target == "untold")
            request, target, start = example.request, example.target, 0
        loss = policy.loss(policy.encode(request, target), start) / len(curriculum.states)
        (config.supervised_weight * loss).backward()
        total += loss.item()
    return total


def _false_statement_loss(policy: RestrictedPolicy, request, output: str, clip: JudgedClip) -> torch.Tensor:
    """Mean -log(1 - p) over the tokens where the statements of `output` that are false or repeated went wrong
    (`fact_judge.departure`: a miscounted group's count digit, a repeat's first token), each p given the output
    before it; 0 when every statement is right."""
    sequence = policy.encode(request, output)
    ids = sequence.inputs["input_ids"][0, sequence.prompt_tokens:]
    text = policy.output_text(ids)
    description = description_of(text)
    where = text.find(description, text.find(THINK_END)) if description else -1
    offsets = token_offsets(policy.output_text, ids)
    wrong, earlier = torch.zeros(len(ids), dtype=torch.bool), set()
    for start, end, sentence in sentence_spans(description) if where >= 0 else []:
        at = departure(sentence, clip, earlier)
        earlier.add(sentence)
        if at is not None:
            char = where + start + min(at, end - start - 1)
            wrong |= torch.tensor([first <= char < last for first, last in itertools.pairwise(offsets)])
    if not wrong.any():
        return torch.zeros(())
    probs = policy.token_logprobs(sequence)[wrong].exp()
    return -torch.log1p(-probs.clamp(max=1 - 1e-6)).mean()


def _learn_from_clip(policy: RestrictedPolicy, curriculum: Curriculum, stream: StreamState,
                     config: PhaseOneConfig, rewards: RewardConfig, count_tokens,
                     choice_decoding: tuple[Callable[[], list], int]) -> dict[str, float]:
    """Sample a group for the stream's current clip (choices as `choice_decoding` decodes), score it, add its
    GSPO gradient (scaled to the step's streams), advance the stream with the policy's own memory; returns the
    group's means."""
    request = curriculum.request(stream)
    policy.model.eval()
    greedy = None
    if config.sample == "choices":
        greedy_ids, rollouts = choice_group(policy, request, config.group_size, config.temperature, choice_decoding)
        greedy = policy.output_text(greedy_ids)
    else:
        rollouts = sample_group(policy, request, config.group_size, config.temperature, config.max_new_tokens)
    texts = [policy.output_text(r) for r in rollouts]
    judge = curriculum.judge(stream)
    if greedy is None and (config.carry == "greedy" or config.baseline == "greedy"):
        greedy = policy.output_text(sample_group(policy, request, 1, 0.0, config.max_new_tokens)[0])
    if config.baseline == "greedy":  # ranked for richness together with the samples
        *scored, greedy_scored = score_group([*texts, greedy], judge, count_tokens, rewards)
    else:
        scored = score_group(texts, judge, count_tokens, rewards)
    values = torch.tensor([s.reward for s in scored])
    if config.baseline == "greedy":
        centred = values - greedy_scored.reward
    elif config.baseline == "length":
        centred = length_residuals(values, [s.verdict.statements if s.verdict else 0 for s in scored])
    else:
        centred = values - values.mean()
    policy.model.train()
    advantages = pushed(scaled_advantages(values, centred, config.scale), config.push,
                        [bool(s.verdict and s.verdict.correct) for s in scored])
    if config.credit == "statement":
        advantages = _with_statement_credit(policy, rollouts, texts, scored, curriculum.statement_judge(stream),
                                            advantages, config.statement_weight)
    if advantages is not None:
        loss = gspo_loss(policy, request, rollouts, advantages, config.clip_epsilon)  # one on-policy update
        (loss / len(curriculum.states)).backward()
    curriculum.advance(stream, description_of(greedy if config.carry == "greedy" else texts[0]))
    return {
        "reward": float(values.mean()),
        "parsed": sum(s.parsed for s in scored) / len(scored),
        "correct": sum(bool(s.verdict and s.verdict.correct) for s in scored) / len(scored),
        "rich": sum(s.verdict.rich for s in scored if s.verdict) / len(scored),
        "wrong": sum(s.verdict.wrong for s in scored if s.verdict) / len(scored),
        "filler": sum(bool(s.verdict and s.verdict.filler) for s in scored) / len(scored),
        "thinking_penalty": sum(s.thinking_penalty for s in scored) / len(scored),
        **({"greedy_reward": greedy_scored.reward} if config.baseline == "greedy" else {}),
    }


def _with_statement_credit(policy: RestrictedPolicy, rollouts: list[torch.Tensor], texts: list[str],
                           scored: list, judge: Callable[[str], list[int]], advantages: list[float] | None,
                           weight: float) -> list[torch.Tensor] | None:
    """Per-token advantages: the sequence advantage (0 for a group that scored alike) plus `weight` times the
    centred credit of the statement each token belongs to; None when neither says anything."""
    descriptions = [description_of(text) if s.parsed else "" for text, s in zip(texts, scored, strict=True)]
    credits = centred_credits([judge(d) if s.parsed else None for d, s in zip(descriptions, scored, strict=True)])
    tokens = [statement_token_credit(text, description, token_offsets(policy.output_text, ids), credit)
              for ids, text, description, credit in zip(rollouts, texts, descriptions, credits, strict=True)]
    if advantages is None and not any(t.abs().max() > 1e-6 for t in tokens if len(t)):
        return None
    return [(advantages[i] if advantages else 0.0) + weight * t for i, t in enumerate(tokens)]


def scaled_advantages(values: torch.Tensor, centred: torch.Tensor, scale: str) -> list[float] | None:
    """The group's advantages: `centred` rewards divided by the rewards' spread ("std") or as they are
    ("none"); None for a group whose rollouts all score alike (it teaches nothing)."""
    if values.std() <= 1e-6 or centred.abs().max() <= 1e-6:
        return None
    return (centred / values.std() if scale == "std" else centred).tolist()


def pushed(advantages: list[float] | None, push: str, correct: Sequence[bool]) -> list[float] | None:
    """The advantages that move the policy: all of them ("both"), only the positive ones ("up"), or only the
    positive ones of `correct` rollouts ("correct")."""
    if advantages is None or push == "both":
        return advantages
    return [max(0.0, a) if push == "up" or ok else 0.0 for a, ok in zip(advantages, correct, strict=True)]


def length_residuals(values: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
    """`values` less their least-squares line against `lengths` (less their mean when all lengths are equal)."""
    x = torch.tensor(lengths, dtype=values.dtype)
    x = x - x.mean()
    slope = (x * values).sum() / (x * x).sum() if (x * x).sum() > 0 else 0.0
    return values - values.mean() - slope * x


def description_of(text: str) -> str:
    """The memory of a policy output; "" when it does not parse (a parsed description is never empty)."""
    try:
        return parse_output(text).description
    except MemoryParseError:
        return ""


def plot_rewards(log: list[dict], path: Path, validation: Sequence[dict] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["step"] for e in log]
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    nan = float("nan")
    axes[0].plot(steps, [e.get("reward", nan) for e in log], label="mean reward")
    if any("supervised_loss" in e for e in log):
        axes[0].plot(steps, [e.get("supervised_loss", nan) for e in log], label="supervised loss")
    if validation:
        axes[0].plot([v["step"] for v in validation], [v["reward"] for v in validation], "o-",
                     label="held-out greedy reward")
    axes[0].set(xlabel="step", title="GSPO: reward")
    axes[0].legend(fontsize=8)
    for key in ("parsed", "correct", "filler"):
        axes[1].plot(steps, [e.get(key, nan) for e in log], label=key)
    axes[1].plot(steps, [e.get("rich", nan) / 5 for e in log], label="new true facts / 5")
    axes[1].plot(steps, [e.get("wrong", nan) / 5 for e in log], label="wrong statements / 5")
    axes[1].set(xlabel="step", title="rollouts", ylim=(0, 1))
    axes[1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
