"""DPO of a steering vector on the shipped policy: the span the log-probabilities count, and that DPO moves the
steered policy toward the chosen memory."""

import json

import pytest
import torch

from taskmem_nodes.models.packed import ensure_default_model
from taskmem_nodes.train.gspo import Curriculum, PhaseOneConfig
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.steering_dpo import DpoExample, DpoSettings, span_start, train_steering_vector

THINKING = "The kitchen, new. first: people: none. last: same.\n</think>\n\n"


@pytest.fixture(scope="module")
def policy_and_request():
    policy = RestrictedPolicy.load(ensure_default_model())
    policy.model.float()
    curriculum = Curriculum(PhaseOneConfig(), policy.frames_per_clip)
    return policy, curriculum.request(curriculum.states[0])


def rollout(policy, description: str, thinking: str = THINKING) -> tuple[int, ...]:
    text = thinking + json.dumps({"description": description}) + "<|im_end|>"
    return tuple(policy.tokenizer.encode(text, add_special_tokens=False))


def test_memory_span_starts_after_the_thinking(policy_and_request):
    policy, request = policy_and_request
    ids = rollout(policy, "in the kitchen.")
    start = span_start(policy, ids, "memory")
    assert span_start(policy, ids, "output") == 0
    assert policy.tokenizer.decode(ids[start - 1]) == "</think>"
    assert policy.tokenizer.decode(ids[start:]).startswith('\n\n{"description"')
    sequence = policy.encode_ids(request, torch.tensor(ids))
    with torch.no_grad():
        per_token = torch.log_softmax(policy.target_logits(sequence), -1).gather(1, sequence.labels[:, None])[:, 0]
        assert policy.sequence_logprob(sequence, start).item() == pytest.approx(per_token[start:].sum().item(),
                                                                                abs=1e-4)
        assert policy.sequence_logprob(sequence).item() == pytest.approx(per_token.sum().item(), abs=1e-4)
    with pytest.raises(ValueError, match="no memory span"):
        span_start(policy, rollout(policy, "in the kitchen.", thinking="The kitchen. ")[:-3], "memory")
    with pytest.raises(ValueError, match="span must be one of"):
        DpoSettings(span="thinking")


def test_memory_span_dpo_prefers_the_chosen_memory(policy_and_request):
    policy, request = policy_and_request
    chosen = rollout(policy, "in the kitchen. 2 red mugs on the kitchen table.")
    rejected = rollout(policy, "in the kitchen.")
    vector, log = train_steering_vector(policy, [DpoExample(request, chosen, rejected)], layer=2,
                                        settings=DpoSettings(steps=4, lr=5e-2, span="memory"))
    assert log[0]["loss"] == pytest.approx(0.693, abs=1e-3)  # the vector starts at zero: no preference yet
    assert log[-1]["loss"] < log[0]["loss"] and log[-1]["margin"] > 0 and vector.norm() > 0


def test_memory_steering_leaves_the_prompt_and_the_thinking_as_the_frozen_policy_computes_them(policy_and_request):
    from taskmem_nodes.models.steering import MemoryPositions, SteeringHook
    from taskmem_nodes.train.rollouts import sample_group

    policy, request = policy_and_request
    positions = MemoryPositions.for_tokenizer(policy.tokenizer)
    ids = rollout(policy, "in the kitchen. 2 red mugs on the kitchen table.")
    sequence = policy.encode_ids(request, torch.tensor(ids))
    prompt = sequence.inputs["input_ids"][0, : -len(ids)].tolist()
    assert positions.think_end in prompt  # the instructions mention </think>: only the assistant's counts
    vector = torch.randn(policy.model.config.get_text_config().hidden_size, generator=torch.Generator().manual_seed(0))
    start = span_start(policy, ids, "memory")
    with torch.no_grad():  # teacher-forced, as DPO computes it: logits row i predicts output token i
        plain = policy.target_logits(sequence)
        with SteeringHook(policy.model, 2, vector * 20, positions=positions):
            steered = policy.target_logits(sequence)
    assert torch.allclose(plain[:start], steered[:start], atol=1e-5)
    assert not torch.allclose(plain[start:], steered[start:], atol=1e-2)

    def greedy(**steering):  # generated with the KV cache, one token at a time
        if not steering:
            return sample_group(policy, request, 1, 0.0, 200)[0].tolist()
        with SteeringHook(policy.model, 2, vector * 20, **steering):
            return sample_group(policy, request, 1, 0.0, 200)[0].tolist()

    base, memory_only, after = greedy(), greedy(positions=positions), greedy()
    think_end = base.index(positions.think_end)
    assert memory_only[: think_end + 1] == base[: think_end + 1] and memory_only != base
    assert after == base  # detached again
    with pytest.raises(ValueError, match="steer must be one of"):
        DpoSettings(steer="thinking")
