"""Statement-level credit (GSPO-token): which tokens a statement's credit goes to, and that the update moves
each statement by its own credit."""

import json

import pytest
import torch

from taskmem_nodes.models.packed import ensure_default_model
from taskmem_nodes.train.gspo import Curriculum, PhaseOneConfig, gspo_loss, train_phase_one
from taskmem_nodes.train.policy_model import RestrictedPolicy
from taskmem_nodes.train.statement_credit import centred_credits, statement_token_credit, token_offsets

THINKING = "The kitchen, new. first: table: red mug, red mug. people: none. last: same.\n</think>\n\n"
MEMORY = "in the kitchen. 2 red mugs on the kitchen table. 1 blue ball on the kitchen counter."


@pytest.fixture(scope="module")
def policy():
    policy = RestrictedPolicy.load(ensure_default_model())
    policy.model.float()
    return policy


def ids_of(policy, description: str) -> torch.Tensor:
    text = THINKING + json.dumps({"description": description}) + "<|im_end|>"
    return torch.tensor(policy.tokenizer.encode(text, add_special_tokens=False))


def test_centred_credits_leave_the_room_at_zero():
    assert centred_credits([[0, 1, 1, -1], [1], None]) == [[0.0, 0.5, 0.5, -1.5], [0.5], []]
    assert centred_credits([[0, 1], [1, 1]]) == [[0.0, 0.0], [0.0, 0.0]]  # all alike: nothing to learn


def test_each_statement_credit_goes_to_its_own_tokens(policy):
    ids = ids_of(policy, MEMORY)
    text = policy.output_text(ids)
    offsets = token_offsets(policy.output_text, ids)
    credit = statement_token_credit(text, MEMORY, offsets, [0.0, 0.5, -1.5])
    assert len(credit) == len(ids)

    def statement(value):  # the `."` that ends the description belongs to its last statement
        return policy.tokenizer.decode(ids[credit == value]).strip().rstrip('"')

    assert statement(0.5) == "2 red mugs on the kitchen table."
    assert statement(-1.5) == "1 blue ball on the kitchen counter."
    think_end = ids.tolist().index(policy.tokenizer.convert_tokens_to_ids("</think>"))
    assert not credit[: think_end + 1].any()  # the thinking gets the sequence advantage alone
    assert not statement_token_credit("no json", MEMORY, offsets, [0.0, 0.5, -1.5]).any()  # not found verbatim
    assert not statement_token_credit(text, MEMORY, offsets, [1.0]).any()  # 3 sentences, 1 credit
    assert not statement_token_credit("no json", "", offsets, []).any()  # what an unparsed rollout is given


def test_token_advantages_move_each_statement_by_its_own_credit(policy):
    curriculum = Curriculum(PhaseOneConfig(), policy.frames_per_clip)
    request = curriculum.request(curriculum.states[0])
    ids = ids_of(policy, MEMORY)
    text = policy.output_text(ids)
    credit = statement_token_credit(text, MEMORY, token_offsets(policy.output_text, ids), [0.0, 1.0, -1.0])

    def logprobs():
        with torch.no_grad():
            tokens = policy.token_logprobs(policy.encode_ids(request, ids))
        return tokens[credit > 0].sum().item(), tokens[credit < 0].sum().item()

    (good, bad), state = logprobs(), {k: v.clone() for k, v in policy.model.state_dict().items()}
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.2)
    for _ in range(2):
        optimizer.zero_grad()
        gspo_loss(policy, request, [ids], [credit], epsilon=0.2).backward()
        optimizer.step()
    after_good, after_bad = logprobs()
    policy.model.load_state_dict(state)
    assert after_good > good and after_bad < bad


def test_phase_one_runs_with_statement_credit(tmp_path, policy):
    config = PhaseOneConfig(init_checkpoint=str(ensure_default_model()), streams=1, group_size=3, steps=1,
                            temperature=1.0, max_new_tokens=200, credit="statement", out_dir=str(tmp_path / "rl"))
    before = {k: v.clone() for k, v in policy.model.state_dict().items()}
    final = train_phase_one(config)
    trained = RestrictedPolicy.load(final).model.float().state_dict()
    assert any(not torch.allclose(before[k], trained[k]) for k in before)  # the seeded group taught something
    with pytest.raises(ValueError, match="credit"):
        PhaseOneConfig(credit="token")
