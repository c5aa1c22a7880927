"""Phase Two's preference pairs, as the method selects them.

For each clip: the frozen policy's candidate memories are judged pairwise in both orders (a verdict counts
only when both orders agree: the position-bias check); agreeing verdicts form a win -> lose graph; a clip whose
graph has a cycle is dropped; otherwise an undefeated winner is paired with the loser at the end of the
longest preference chain, provided the two lengths differ by fewer than `max_length_gap` tokens (so length is
not what is learned) and the winner is not less correct than the loser. With a `greedy` candidate (the frozen
policy's own greedy memory, judged with the others) the loser is always that memory: the pair then says how
what the policy writes now could be more useful, rather than which of its worst samples to avoid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations

from taskmem_nodes.train.task_judge import ClipRef, TaskJudge


@dataclass(frozen=True)
class Candidate:
    """One memory the frozen policy wrote for a clip."""

    text: str  # the description
    output_ids: tuple[int, ...]  # the generated tokens (thinking + JSON + end of turn), for DPO
    tokens: int  # length of the description in tokens
    correctness: float  # fraction of its statements that are true, or 1/0 for a correct entry (PhaseTwoConfig)


@dataclass(frozen=True)
class PreferencePair:
    clip: ClipRef
    task_type: str
    chosen: Candidate
    rejected: Candidate
    chain: int  # length of the preference chain from chosen to rejected


@dataclass
class PairStats:
    """Why clips did or did not give a pair."""

    clips: int = 0
    judged: int = 0  # judge calls
    agreeing: int = 0  # pairs whose two orders agreed on a winner
    disagreeing: int = 0  # pairs whose two orders disagreed (position bias)
    cyclic: int = 0
    no_edge: int = 0
    length_or_correctness: int = 0  # every chain's ends too far apart in length, or the winner less correct
    greedy_unbeaten: int = 0  # with a greedy loser: no undefeated winner's chain reaches the greedy memory
    greedy_unparsed: int = 0  # with a greedy loser: the greedy memory did not parse, nothing to pair against
    pairs: int = 0


def judge_edges(judge: TaskJudge, clip: ClipRef, task_type: str, questions: Sequence[str],
                candidates: Sequence[Candidate], stats: PairStats) -> set[tuple[int, int]]:
    """Win -> lose edges among distinct candidates, from verdicts that agree in both orders."""
    edges = set()
    for i, j in combinations(range(len(candidates)), 2):
        forward = judge.prefer(clip, task_type, questions, candidates[i].text, candidates[j].text)
        backward = judge.prefer(clip, task_type, questions, candidates[j].text, candidates[i].text)
        stats.judged += 2
        winner_forward = {"first": i, "second": j}.get(forward)
        winner_backward = {"first": j, "second": i}.get(backward)
        if winner_forward is not None and winner_forward == winner_backward:
            edges.add((winner_forward, j if winner_forward == i else i))
            stats.agreeing += 1
        elif forward != "tie" or backward != "tie":
            stats.disagreeing += 1
    return edges


def longest_chains(nodes: int, edges: set[tuple[int, int]]) -> dict[tuple[int, int], int] | None:
    """Length of the longest path between every connected (start, end) pair; None when the graph has a cycle."""
    successors = {n: [b for a, b in edges if a == n] for n in range(nodes)}
    indegree = {n: sum(1 for _, b in edges if b == n) for n in range(nodes)}
    order, ready = [], [n for n in range(nodes) if indegree[n] == 0]
    while ready:
        node = ready.pop()
        order.append(node)
        for nxt in successors[node]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    if len(order) < nodes:
        return None
    chains: dict[tuple[int, int], int] = {}
    for start in range(nodes):
        depth = {start: 0}
        for node in order:  # longest paths from `start` in topological order
            if node in depth:
                for nxt in successors[node]:
                    depth[nxt] = max(depth.get(nxt, 0), depth[node] + 1)
        chains.update({(start, end): d for end, d in depth.items() if d > 0})
    return chains


def select_pair(clip: ClipRef, task_type: str, candidates: Sequence[Candidate], edges: set[tuple[int, int]],
                stats: PairStats, max_length_gap: int = 20, against: int | None = None) -> PreferencePair | None:
    """The method's pair for one clip, or None (and the reason counted in `stats`); with `against`, only
    chains ending at that candidate count."""
    if not edges:
        stats.no_edge += 1
        return None
    chains = longest_chains(len(candidates), edges)
    if chains is None:
        stats.cyclic += 1
        return None
    beaten = {b for _, b in edges}
    undefeated = {a for a, _ in edges} - beaten
    options = sorted(((length, start, end) for (start, end), length in chains.items()
                      if start in undefeated and against in (None, end)), key=lambda o: (-o[0], o[1], o[2]))
    if not options:
        stats.greedy_unbeaten += 1
        return None
    for length, start, end in options:
        chosen, rejected = candidates[start], candidates[end]
        if abs(chosen.tokens - rejected.tokens) < max_length_gap and chosen.correctness >= rejected.correctness:
            stats.pairs += 1
            return PreferencePair(clip, task_type, chosen, rejected, length)
    stats.length_or_correctness += 1
    return None


def _spaced(text: str) -> str:
    """A description with its whitespace normalised: what makes two candidates the same memory."""
    return " ".join(text.split())


def distinct(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates with distinct descriptions (the first of each kept)."""
    seen: dict[str, Candidate] = {}
    for candidate in candidates:
        seen.setdefault(_spaced(candidate.text), candidate)
    return list(seen.values())


def pairs_for_clip(judge: TaskJudge, clip: ClipRef, task_type: str, questions: Sequence[str],
                   candidates: Sequence[Candidate], stats: PairStats, max_length_gap: int = 20,
                   on_judged: Callable[[], None] | None = None, greedy: Candidate | None = None,
                   ) -> PreferencePair | None:
    """Judge one clip's candidates and select its pair (with `greedy`, against that memory)."""
    stats.clips += 1
    unique = distinct([*candidates, greedy] if greedy else candidates)
    against = None
    if greedy is not None:
        against = [_spaced(c.text) for c in unique].index(_spaced(greedy.text))
    edges = judge_edges(judge, clip, task_type, questions, unique, stats)
    if on_judged is not None:
        on_judged()
    return select_pair(clip, task_type, unique, edges, stats, max_length_gap, against)
