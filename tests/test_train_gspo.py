"""GSPO on the simulated world: rollouts, rewards, an update, checkpoints, on-policy streaming memories."""

import json

import pytest
import torch

from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.gspo import Curriculum, PhaseOneConfig, StreamState, gspo_loss, train_phase_one
from taskmem_nodes.train.warm_start import WarmStartConfig, train_warm_start

TINY_WORLD = {"duration_s": 30.0, "cell_px": 16}


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    out = tmp_path_factory.mktemp("warm")
    return train_warm_start(WarmStartConfig(out_dir=str(out), text_hidden=64, layers=1, heads=2, vision_depth=1,
                                            vision_hidden=32, batch_size=1, steps=2, warmup_steps=1,
                                            world=TINY_WORLD))


def test_curriculum_shows_the_policys_own_memories_and_moves_to_the_next_world():
    config = PhaseOneConfig(world=TINY_WORLD, streams=1)
    curriculum = Curriculum(config, frames_per_clip=2)
    stream = curriculum.states[0]
    first_seed = stream.world_seed
    curriculum.advance(stream, "my own memory of clip zero.")
    text = curriculum.request(stream).messages[1]["content"][1]["text"]
    assert "my own memory of clip zero." in text
    assert curriculum.request(stream).video.shape[0] == 4  # two clips x first and last frame
    for _ in range(2):
        curriculum.advance(stream, "")
    assert stream.world_seed == first_seed + 1 and stream.index == 0 and stream.memories == []
    assert World(WorldConfig(**TINY_WORLD)).config.clips == 3


def test_streams_start_late_after_memorizing_the_clips_their_first_prompts_show(warm):
    from taskmem_nodes.train.policy_model import RestrictedPolicy
    from taskmem_nodes.train.validation import greedy_outputs

    world = {**TINY_WORLD, "duration_s": 90.0}  # 9 clips
    config = PhaseOneConfig(world=world, streams=3, stream_starts=[0, 2, 7])
    curriculum = Curriculum(config, frames_per_clip=2)
    asked = []

    def write(streams):
        asked.append([(s.world_seed, s.index) for s in streams])
        return [f"<think>scan</think>{{\"description\": \"memory of clip {s.index}.\"}}" for s in streams]

    seeds = [s.world_seed for s in curriculum.states]
    curriculum.start_late(config.stream_starts, write)
    assert [s.index for s in curriculum.states] == [0, 2, 7]
    assert asked == [[(seeds[1], 0), (seeds[2], 3)], [(seeds[1], 1), (seeds[2], 4)], [(seeds[2], 5)], [(seeds[2], 6)]]
    assert curriculum.states[2].memories == ["", "", "", *(f"memory of clip {i}." for i in range(3, 7))]
    shown = curriculum.request(curriculum.states[2]).messages[1]["content"][1]["text"]
    assert "memory of clip 6." in shown and "memory of clip 3." in shown  # the four clips before clip 7
    policy = RestrictedPolicy.load(warm)  # the real thing: the policy's own greedy memories
    real = Curriculum(config, policy.frames_per_clip)
    real.start_late([0, 0, 5], lambda streams: greedy_outputs(policy, real, 16, streams=streams))
    assert [s.index for s in real.states] == [0, 0, 5] and len(real.states[2].memories) == 5
    with pytest.raises(ValueError, match="stream_starts"):
        PhaseOneConfig(streams=2, stream_starts=[0])
    with pytest.raises(ValueError, match="past the world"):
        Curriculum(config, 2).start_late([0, 0, 9], write)


@pytest.mark.timeout(900)
def test_gspo_steps_checkpoint_and_resume(warm, tmp_path):
    config = dict(init_checkpoint=str(warm), world=TINY_WORLD, streams=1, group_size=3, max_new_tokens=24,
                  checkpoint_every=1, out_dir=str(tmp_path / "rl"), validate_every=1, validation_clips=1)
    train_phase_one(PhaseOneConfig(steps=1, **config))
    state = torch.load(tmp_path / "rl" / "last" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 1 and state["streams"][0]["index"] == 1 and len(state["streams"][0]["memories"]) == 1
    final = train_phase_one(PhaseOneConfig(steps=2, **config))  # resumes at step 1
    log = json.loads((tmp_path / "rl" / "log.json").read_text())
    assert [e["step"] for e in log] == [1, 2]
    assert all(0 <= e["parsed"] <= 1 and e["reward"] >= -3 for e in log)
    assert (tmp_path / "rl" / "rewards.png").read_bytes()[:4] == b"\x89PNG" and (final / "config.json").exists()
    validation = json.loads((tmp_path / "rl" / "validation.json").read_text())
    assert [v["step"] for v in validation] == [0, 1, 2]  # the resumed run did not validate step 1 again
    assert all(0 <= v["fidelity"] <= 1 and v["reward"] >= -3 for v in validation)
    assert (tmp_path / "rl" / "best" / "config.json").exists()


@pytest.mark.timeout(600)
def test_a_supervised_term_trains_on_ground_truth_beside_or_instead_of_the_rollouts(warm, tmp_path):
    """`supervised_weight` adds the warm start's language loss on ground-truth examples to each step (PPO-ptx);
    with `rl: false` it is the whole update, the control for what the RL part adds."""
    from taskmem_nodes.train.gspo import SUPERVISED_SEED
    from taskmem_nodes.train.policy_model import RestrictedPolicy
    from taskmem_nodes.train.warm_start import ExampleSource

    config = dict(init_checkpoint=str(warm), world=TINY_WORLD, streams=1, group_size=2, max_new_tokens=16,
                  supervised_weight=1.0, supervised_batch=2, lr=1e-2)
    train_phase_one(PhaseOneConfig(steps=1, out_dir=str(tmp_path / "mixed"), **config))
    mixed = json.loads((tmp_path / "mixed" / "log.json").read_text())[0]
    assert mixed["supervised_loss"] > 0 and "reward" in mixed
    final = train_phase_one(PhaseOneConfig(steps=3, rl=False, out_dir=str(tmp_path / "alone"), **config))
    log = json.loads((tmp_path / "alone" / "log.json").read_text())
    assert [set(e) for e in log] == [{"step", "supervised_loss", "seconds"}] * 3
    before, after = RestrictedPolicy.load(warm), RestrictedPolicy.load(final)
    example = ExampleSource(WorldConfig.from_dict(TINY_WORLD), before.frames_per_clip, SUPERVISED_SEED)[0]
    with torch.no_grad():  # the first step's first example is learned
        assert after.loss(after.encode(example.request, example.target)) < before.loss(
            before.encode(example.request, example.target))
    with pytest.raises(ValueError, match="supervised_weight"):
        PhaseOneConfig(rl=False)


@pytest.mark.timeout(600)
def test_the_on_policy_supervised_term_labels_the_clips_the_policys_own_memories_lead_to(warm, tmp_path):
    """`supervised_source: own` (DAgger): each stream's current clip, its own memories shown, labelled with what
    is new to them; without rollouts the streams go on with the deployed policy's greedy memories."""
    from taskmem_nodes.train.examples import streamed_example
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    config = PhaseOneConfig(init_checkpoint=str(warm), world=TINY_WORLD, streams=2, max_new_tokens=48, rl=False,
                            supervised_weight=1.0, supervised_source="own", lr=1e-2, steps=2,
                            numbered_units="running", out_dir=str(tmp_path / "own"))
    before = RestrictedPolicy.load(warm)
    curriculum = Curriculum(config, before.frames_per_clip)
    firsts = [streamed_example(*curriculum.world(stream), 0, [], frames_per_clip=before.frames_per_clip,
                               own_memories=True, numbered="running") for stream in curriculum.states]
    first = firsts[0]
    assert all(e.target != streamed_example(*curriculum.world(stream), 0, [], frames_per_clip=before.frames_per_clip,
                                            own_memories=True).target  # these clips have a repeated unit
               for e, stream in zip(firsts, curriculum.states, strict=True))
    with torch.no_grad():
        first_losses = [before.loss(before.encode(e.request, e.target)).item() for e in firsts]
    final = train_phase_one(config)
    log = json.loads((tmp_path / "own" / "log.json").read_text())
    assert [set(e) for e in log] == [{"step", "supervised_loss", "carried_rich", "seconds"}] * 2
    # the first step learned the streams' first clips, scanned with numbered units as the recipe asks
    assert log[0]["supervised_loss"] == pytest.approx(sum(first_losses) / len(first_losses), rel=1e-4)
    assert all(e["supervised_loss"] > 0 for e in log)
    streams = torch.load(tmp_path / "own" / "last" / "trainer_state.pt", weights_only=False)["streams"]
    assert [StreamState(**s).index for s in streams] == [2, 2]  # each stream went on by one clip per step
    after = RestrictedPolicy.load(final)
    with torch.no_grad():  # the first step's example is learned
        assert after.loss(after.encode(first.request, first.target)) < before.loss(
            before.encode(first.request, first.target))
    with pytest.raises(ValueError, match="supervised_source"):
        PhaseOneConfig(supervised_source="teacher")
    with pytest.raises(ValueError, match="numbered_units"):
        PhaseOneConfig(numbered_units="by slot")


@pytest.mark.timeout(600)
def test_the_own_reading_term_learns_the_memory_after_the_policys_own_scan(warm, tmp_path):
    """`own_target: read`: the target's thinking is the policy's own greedy scan, not learned; its memory (what
    that scan read right and the policy's memories lack) is."""
    from taskmem_nodes.memorizer import memorizer_parameters
    from taskmem_nodes.policy import parse_output
    from taskmem_nodes.train.examples import own_reading_target
    from taskmem_nodes.train.policy_model import RestrictedPolicy, inference_decoding
    from taskmem_nodes.train.rollouts import sample_group

    config = PhaseOneConfig(init_checkpoint=str(warm), world=TINY_WORLD, streams=2, max_new_tokens=48, rl=False,
                            supervised_weight=1.0, supervised_source="own", own_target="read", lr=1e-2, steps=1,
                            out_dir=str(tmp_path / "read"))
    before = RestrictedPolicy.load(warm)
    curriculum = Curriculum(config, before.frames_per_clip)
    world, clips = curriculum.world(curriculum.states[0])
    processors, limit = inference_decoding(before, memorizer_parameters(), config.max_new_tokens)
    own = before.output_text(sample_group(before, curriculum.request(curriculum.states[0]), 1, 0.0, limit,
                                          processors())[0])
    request, target = own_reading_target(world, clips, 0, [], parse_output(own).thinking,
                                         frames_per_clip=before.frames_per_clip)
    assert parse_output(target).thinking == parse_output(own).thinking
    start = before.answer_start(target)
    ids = before.tokenizer.encode(target[len("<think>\n"):], add_special_tokens=False)
    answer = before.tokenizer.decode(ids[start:])
    assert answer.startswith('{"description"')
    after = RestrictedPolicy.load(train_phase_one(config))
    with torch.no_grad():
        assert after.loss(after.encode(request, target), start) < before.loss(before.encode(request, target), start)
    with pytest.raises(ValueError, match="own_target"):
        PhaseOneConfig(own_target="guess")


@pytest.mark.timeout(600)
def test_deployed_validation_decodes_through_the_memorizers_format_enforcer(warm):
    """`validation_decoding: deployed` memorizes the held-out worlds as the robot does: even a barely trained
    policy's memories then parse, which free decoding of the same policy does not give."""
    from taskmem_nodes.train.gspo import held_out_decoding
    from taskmem_nodes.train.policy_model import RestrictedPolicy
    from taskmem_nodes.train.rewards import RewardConfig
    from taskmem_nodes.train.validation import VALIDATION_SEEDS, validate

    policy = RestrictedPolicy.load(warm)

    def count_tokens(text):
        return len(policy.tokenizer(text)["input_ids"])

    figures = {}
    for decoding in ("deployed", "free"):
        config = PhaseOneConfig(world=TINY_WORLD, max_new_tokens=24, validation_decoding=decoding, select_by="rich")
        processors, limit = held_out_decoding(policy, config)
        held_out = Curriculum(config, policy.frames_per_clip, [StreamState(s) for s in VALIDATION_SEEDS])
        figures[decoding] = validate(policy, held_out, 1, RewardConfig(), count_tokens, limit, processors)
    assert figures["deployed"]["parsed"] == 1.0 > figures["free"]["parsed"]
    with pytest.raises(ValueError, match="select_by"):
        PhaseOneConfig(select_by="loss")


@pytest.mark.timeout(600)
def test_greedy_carry_is_what_the_deployed_policy_writes(tmp_path):
    """With `carry: greedy` the stream goes on with the memory greedy decoding writes (the shipped model's,
    which parses), not with a sampled rollout; with `baseline: greedy` that memory's reward is the baseline."""
    from taskmem_nodes.models.packed import ensure_default_model
    from taskmem_nodes.train.gspo import description_of
    from taskmem_nodes.train.policy_model import RestrictedPolicy
    from taskmem_nodes.train.rollouts import sample_group

    config = PhaseOneConfig(init_checkpoint=str(ensure_default_model()), streams=1, group_size=2, steps=1,
                            temperature=1.5, max_new_tokens=200, carry="greedy", baseline="greedy",
                            out_dir=str(tmp_path / "rl"))
    policy = RestrictedPolicy.load(config.init_checkpoint)
    policy.model.float()
    curriculum = Curriculum(config, policy.frames_per_clip)
    ids = sample_group(policy, curriculum.request(curriculum.states[0]), 1, 0.0, config.max_new_tokens)[0]
    greedy = description_of(policy.output_text(ids))
    train_phase_one(config)
    state = torch.load(tmp_path / "rl" / "last" / "trainer_state.pt", weights_only=False)
    assert greedy.startswith("in the "), greedy
    assert state["streams"][0]["memories"] == [greedy]
    assert -3 <= state["log"][0]["greedy_reward"] <= 3  # the self-critical baseline was scored


@pytest.mark.timeout(600)
def test_choice_groups_follow_the_deployed_greedy_output_and_differ_only_at_its_choices(tmp_path):
    """With `sample: choices` every rollout keeps the deployed greedy thinking and first leaves the greedy output
    where a statement ends (go on or close) or a new one starts; the stream goes on with that greedy memory."""
    from taskmem_nodes.memorizer import memorizer_parameters
    from taskmem_nodes.models.packed import ensure_default_model
    from taskmem_nodes.train.gspo import description_of
    from taskmem_nodes.train.policy_model import RestrictedPolicy, inference_decoding
    from taskmem_nodes.train.rollouts import choice_group, thinking_ids

    config = PhaseOneConfig(init_checkpoint=str(ensure_default_model()), streams=1, group_size=3, steps=1,
                            temperature=1.5, max_new_tokens=200, sample="choices", carry="greedy",
                            out_dir=str(tmp_path / "rl"))
    policy = RestrictedPolicy.load(config.init_checkpoint)
    policy.model.float()
    curriculum = Curriculum(config, policy.frames_per_clip)
    request = curriculum.request(curriculum.states[0])
    decoding = inference_decoding(policy, memorizer_parameters(), config.max_new_tokens)
    torch.manual_seed(0)
    greedy, rollouts = choice_group(policy, request, 8, config.temperature, decoding)
    thinking = thinking_ids(policy, greedy)
    full_stop, closing = (policy.tokenizer.encode(s, add_special_tokens=False)[0] for s in ('.', '."'))
    assert len(rollouts) == 8 and all(r[: len(thinking)].tolist() == thinking for r in rollouts)
    departures = 0
    for rollout in rollouts:
        differs = [i for i in range(min(len(rollout), len(greedy))) if rollout[i] != greedy[i]]
        if differs:
            at = differs[0]
            departures += 1
            assert at > len(thinking) and (greedy[at - 1] == full_stop or greedy[at] in (full_stop, closing))
    assert departures  # at 1.5 some rollouts choose otherwise
    train_phase_one(config)
    state = torch.load(tmp_path / "rl" / "last" / "trainer_state.pt", weights_only=False)
    assert state["streams"][0]["memories"] == [description_of(policy.output_text(greedy))]
    with pytest.raises(ValueError, match="sample"):
        PhaseOneConfig(sample="thinking")


def test_phase_one_rejects_an_unknown_carry_or_baseline():
    with pytest.raises(ValueError, match="carry"):
        PhaseOneConfig(carry="best")
    with pytest.raises(ValueError, match="baseline"):
        PhaseOneConfig(baseline="mean")
    with pytest.raises(ValueError, match="scale"):
        PhaseOneConfig(scale="max")
    with pytest.raises(ValueError, match="push"):
        PhaseOneConfig(push="down")


def test_unscaled_advantages_keep_the_size_of_the_reward_difference():
    from taskmem_nodes.train.gspo import scaled_advantages

    # rollouts differing by 0.02 of thinking penalty, and a group with a right and a wrong memory
    small, large = torch.tensor([0.50, 0.48]), torch.tensor([0.8, -0.3])
    by_std = [scaled_advantages(v, v - v.mean(), "std") for v in (small, large)]
    raw = [scaled_advantages(v, v - v.mean(), "none") for v in (small, large)]
    assert by_std[0] == pytest.approx(by_std[1], rel=1e-4)  # GRPO: both groups push equally hard
    assert raw[0] == pytest.approx([0.01, -0.01], abs=1e-6) and raw[1] == pytest.approx([0.55, -0.55], abs=1e-6)
    assert scaled_advantages(torch.tensor([0.3, 0.3]), torch.zeros(2), "none") is None


def test_pushing_up_only_keeps_the_better_or_correct_rollouts_advantages_and_silences_the_rest():
    from taskmem_nodes.train.gspo import pushed, scaled_advantages

    values = torch.tensor([1.0, 0.2, -0.6])
    both = scaled_advantages(values, values - values.mean(), "std")
    assert pushed(both, "both", [False] * 3) == both
    assert pushed(both, "up", [False] * 3) == [both[0], 0.0, 0.0] and both[0] > 0 > both[2]
    assert pushed(both, "correct", [True, False, True]) == [both[0], 0.0, 0.0]
    assert pushed(both, "correct", [False, True, True]) == [0.0, 0.0, 0.0]  # the best one held a false statement
    assert pushed(None, "up", []) is None


def test_gspo_loss_pushes_up_the_better_rollout(warm):
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    policy = RestrictedPolicy.load(warm)
    policy.model.float()
    curriculum = Curriculum(PhaseOneConfig(world=TINY_WORLD), policy.frames_per_clip)
    request = curriculum.request(curriculum.states[0])
    good, bad = (torch.tensor(policy.tokenizer.encode(t, add_special_tokens=False)) for t in
                 ("a\n</think>\n\n{\"description\": \"in the kitchen.\"}<|im_end|>",
                  "a\n</think>\n\n{\"description\": \"in the hall.\"}<|im_end|>"))

    def logprob(ids):
        with torch.no_grad():
            return policy.sequence_logprob(policy.encode_ids(request, ids)).item()

    before = logprob(good) - logprob(bad)
    optimizer = torch.optim.SGD(policy.model.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        gspo_loss(policy, request, [good, bad], [1.0, -1.0], epsilon=0.2).backward()
        optimizer.step()
    assert logprob(good) - logprob(bad) > before


def test_length_baseline_leaves_what_length_does_not_explain():
    from taskmem_nodes.train.gspo import length_residuals

    rewards = torch.tensor([1.0, 2.0, 3.0, 2.5])
    # reward rising with length alone teaches nothing; the 4th rollout is 0.5 worse than its length predicts
    residuals = length_residuals(rewards, [1, 2, 3, 3])
    assert residuals.sum().abs() < 1e-6 and residuals[3] < 0 < residuals[2]
    assert torch.allclose(length_residuals(torch.tensor([1.0, 2.0, 3.0]), [1, 2, 3]), torch.zeros(3), atol=1e-6)
    assert torch.allclose(length_residuals(rewards, [2, 2, 2, 2]), rewards - rewards.mean())
    with pytest.raises(ValueError, match="baseline"):
        PhaseOneConfig(baseline="median")


def test_the_false_statement_term_makes_the_policy_unsure_of_its_wrong_statements_only():
    """`false_statement_weight`: unlikelihood on the token where each false or repeated statement of the deployed
    memory went wrong (a miscounted group's count digit); a memory that is all true costs nothing, and a step on
    the term lowers the wrong digit's probability."""
    import re

    from taskmem_nodes.models.packed import ensure_default_model
    from taskmem_nodes.train.examples import stream_clips, streamed_request, target_output
    from taskmem_nodes.train.fact_judge import JudgedClip, departure, statements
    from taskmem_nodes.train.gspo import _false_statement_loss
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    policy = RestrictedPolicy.load(ensure_default_model())
    world = World(WorldConfig(seed=557_020, duration_s=20.0))
    truth = world.describe_new(0)
    group = next(s for s in re.split(r"(?<=\.) ", truth) if s[:1].isdigit())
    miscounted = str(int(group[0]) % 3 + 1) + group[1:]
    request = streamed_request(stream_clips(world, 1.0), 0, [""], policy.frames_per_clip)[0]
    judge = JudgedClip.of(world, 0, ())
    thinking = f"The {world.clips[0].room}, new."
    honest, wrong = target_output(truth, thinking), target_output(f"{truth} {miscounted}", thinking)
    assert all(departure(s, judge, set()) is None for s in statements(truth))
    assert departure(statements(miscounted)[0], judge, set()) == 0  # the count digit is where it goes wrong
    assert departure(statements(group)[0], judge, {statements(group)[0]}) == 0  # said twice
    assert float(_false_statement_loss(policy, request, honest, judge)) == 0.0
    loss = _false_statement_loss(policy, request, wrong, judge)
    assert loss.item() > 0.0

    def false_prob() -> float:  # the probability of the false statement's last count digit given what precedes
        sequence = policy.encode(request, wrong)
        with torch.no_grad():
            return float(policy.token_logprobs(sequence).exp()[-len(policy.tokenizer.encode(
                miscounted[1:] + '"}<|im_end|>', add_special_tokens=False)) - 1])

    before = false_prob()
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    loss.backward()
    optimizer.step()
    policy.write_back()
    assert false_prob() < before
    with pytest.raises(ValueError, match="false_statement_weight"):
        PhaseOneConfig(false_statement_weight=1.0)  # it needs the read target's deployed memories
