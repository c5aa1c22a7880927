"""Phase Two pair selection: both orders must agree, cycles drop a clip, the longest chain's ends are paired
within the length gap, and a less correct memory is never preferred."""

from taskmem_nodes.train.preferences import (
    Candidate,
    PairStats,
    judge_edges,
    longest_chains,
    pairs_for_clip,
    select_pair,
)
from taskmem_nodes.train.task_judge import ClipRef

CLIP = ClipRef("s", 0)


def cand(text: str, tokens: int = 10, correctness: float = 1.0) -> Candidate:
    return Candidate(text, (1, 2), tokens, correctness)


class ScoreJudge:
    """Prefers the higher score; `biased` always says "first" (a position-biased judge)."""

    name = "scores"

    def __init__(self, scores: dict[str, int], biased: bool = False):
        self.scores, self.biased = scores, biased

    def prefer(self, clip, task_type, questions, first, second):
        if self.biased:
            return "first"
        a, b = self.scores[first], self.scores[second]
        return "first" if a > b else "second" if b > a else "tie"


def test_chain_ends_are_paired_and_position_bias_is_filtered():
    candidates = [cand("a"), cand("b"), cand("c"), cand("d")]
    stats = PairStats()
    edges = judge_edges(ScoreJudge({"a": 3, "b": 2, "c": 1, "d": 1}), CLIP, "location", [], candidates, stats)
    assert edges == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)} and stats.judged == 12
    pair = select_pair(CLIP, "location", candidates, edges, stats)
    assert (pair.chosen.text, pair.rejected.text, pair.chain) == ("a", "c", 2)
    biased = PairStats()
    assert judge_edges(ScoreJudge({}, biased=True), CLIP, "location", [], candidates, biased) == set()
    assert biased.disagreeing == 6


def test_cycles_length_gaps_and_less_correct_winners_give_no_pair():
    stats = PairStats()
    three = [cand("a"), cand("b"), cand("c")]
    assert longest_chains(3, {(0, 1), (1, 2), (2, 0)}) is None
    assert select_pair(CLIP, "count", three, {(0, 1), (1, 2), (2, 0)}, stats) is None and stats.cyclic == 1
    long_winner = [cand("a", tokens=40), cand("b", tokens=10)]
    assert select_pair(CLIP, "count", long_winner, {(0, 1)}, stats) is None
    wrong_winner = [cand("a", correctness=0.5), cand("b", correctness=1.0)]
    assert select_pair(CLIP, "count", wrong_winner, {(0, 1)}, stats) is None
    assert stats.length_or_correctness == 2
    # the longest chain's end is too long, so the next chain's end is taken
    mixed = [cand("a", tokens=10), cand("b", tokens=12), cand("c", tokens=45)]
    pair = select_pair(CLIP, "count", mixed, {(0, 1), (1, 2)}, stats)
    assert (pair.chosen.text, pair.rejected.text) == ("a", "b")


def test_a_greedy_loser_pairs_the_winner_against_the_policys_own_memory():
    judge = ScoreJudge({"a": 3, "b": 2, "c": 0, "g": 1, "h": 5})
    sampled = [cand("a"), cand("b"), cand("c")]
    stats = PairStats()
    pair = pairs_for_clip(judge, CLIP, "count", [], sampled, stats, greedy=cand("g"))
    assert (pair.chosen.text, pair.rejected.text) == ("a", "g")  # not "c", the end of the longest chain
    assert pairs_for_clip(judge, CLIP, "count", [], sampled, stats).rejected.text == "c"
    # the greedy memory among the samples is one node; when it is the best there is nothing to learn
    assert pairs_for_clip(judge, CLIP, "count", [], [cand("h"), *sampled], stats, greedy=cand(" h ")) is None
    assert stats.greedy_unbeaten == 1 and stats.clips == 3
