"""Phase One rewards: format, thinking length, quality (fidelity and non-redundancy), richness within a group."""

import pytest

from taskmem_nodes.train.examples import target_output
from taskmem_nodes.train.fact_judge import EntryVerdict
from taskmem_nodes.train.rewards import RewardConfig, score_group, thinking_penalty


def test_thinking_penalty():
    assert thinking_penalty(10, 32) == 0.0 and thinking_penalty(32, 32) == 0.0
    assert thinking_penalty(48, 32) == pytest.approx(-0.5) and thinking_penalty(64, 32) == -1.0
    assert thinking_penalty(500, 32) == -1.0


def test_group_rewards():
    verdicts = {  # description -> what ground truth says about it
        "rich": EntryVerdict(statements=4, true=4, redundant=0, rich=3),
        "short": EntryVerdict(statements=2, true=2, redundant=0, rich=1),
        "false": EntryVerdict(statements=3, true=2, redundant=0, rich=1),
        "repeats": EntryVerdict(statements=3, true=3, redundant=1, rich=1),
    }
    outputs = [target_output(d, "plan") for d in verdicts] + ["no think block", target_output("rich", "x " * 80)]
    scored = score_group(outputs, verdicts.__getitem__, lambda text: len(text.split()), RewardConfig())
    rewards = [s.reward for s in scored]
    assert rewards[0] == pytest.approx(0.5 + 0.3)  # correct and the richest correct: full richness bonus
    assert rewards[1] == pytest.approx(0.5)  # correct but the poorest correct: no bonus
    assert rewards[2] == rewards[3] == pytest.approx(-0.3)  # a false or a repeated statement
    assert rewards[4] == -2.0 and not scored[4].parsed  # does not parse
    assert rewards[5] == pytest.approx(0.5 + 0.3 - 1.0)  # rich and correct, but 80 thinking tokens
    assert rewards[0] > rewards[1] > rewards[2] > rewards[4]


def test_statement_level_credit_ranks_rich_entries_above_filler():
    verdicts = {
        "mostly true": EntryVerdict(statements=5, true=4, redundant=0, rich=3, news=4),
        "filler": EntryVerdict(statements=1, true=1, redundant=0, rich=0, news=4),
        "mostly false": EntryVerdict(statements=4, true=2, redundant=0, rich=1, news=4),
    }
    outputs = [target_output(d, "plan") for d in verdicts]
    paper = score_group(outputs, verdicts.__getitem__, lambda text: 1, RewardConfig())
    assert [s.reward for s in paper] == pytest.approx([-0.3, -0.3, -0.3])  # entry level: all alike
    credit = RewardConfig(true_fact=0.25, wrong_statement=-0.35)
    rewards = [s.reward for s in score_group(outputs, verdicts.__getitem__, lambda text: 1, credit)]
    assert rewards == pytest.approx([-0.3 + 0.75 - 0.35, -0.3, -0.3 + 0.25 - 0.7])
    assert rewards[0] > rewards[1] > rewards[2]
