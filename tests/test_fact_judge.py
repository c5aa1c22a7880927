"""Ground-truth judging of memory entries: fidelity, redundancy, richness."""

from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.fact_judge import judge_entry, statement_values, statement_verdicts, statements


def test_statements_are_normalized_sentences():
    assert statements("In the  Kitchen. 2 red mugs on the kitchen table.") == ["in the kitchen",
                                                                               "2 red mugs on the kitchen table"]
    assert statements("") == []


def test_ground_truth_entries_are_correct_and_mistakes_are_caught():
    world = World(WorldConfig(seed=3, duration_s=300.0))

    def preceding_of(i):
        return [world.describe_new(j) for j in range(max(0, i - 4), i)]

    def still_true_and_said(i):  # facts already in memory that the clip shows again, unchanged
        said = {s for m in preceding_of(i) for s in statements(m) if not s.startswith("in the ")}
        return sorted(said & set(statements(world.describe(i))) - set(statements(world.describe_new(i))))

    index = next(i for i, c in enumerate(world.clips) if i >= 2 and c.events and still_true_and_said(i))
    preceding = preceding_of(index)
    truth = world.describe_new(index)
    verdict = judge_entry(world, index, truth, preceding)
    assert verdict.correct and verdict.fidelity == 1.0 and verdict.rich == len(statements(truth)) - 1
    wrong = truth + " a purple zebra appears on the kitchen table."
    bad = judge_entry(world, index, wrong, preceding)
    assert not bad.correct and bad.true == verdict.true and bad.fidelity < 1.0
    repeated = judge_entry(world, index, f"{truth} {still_true_and_said(index)[0]}.", preceding)
    assert repeated.redundant == 1 and repeated.true == verdict.true + 1  # true, but said before
    assert not repeated.correct and repeated.rich == verdict.rich
    assert judge_entry(world, index, "", preceding).fidelity == 0.0
    new_facts = [1] * (len(statements(truth)) - 1)  # the room is worth 0, each new true fact 1
    assert statement_values(world, index, truth, preceding) == [0, *new_facts]
    assert statement_values(world, index, wrong, preceding) == [0, *new_facts, -1]
    assert statement_values(world, index, f"{truth} {still_true_and_said(index)[0]}.", preceding)[-1] == -1
    last = statements(truth)[-1]
    assert statement_values(world, index, f"{truth} {last}.", preceding) == [0, *new_facts, -1]  # said twice
    said_before = still_true_and_said(index)[0]
    false_memory = f"{preceding[-1]} a purple zebra appears on the kitchen table."
    copied = f"{truth} {said_before}. a purple zebra appears on the kitchen table. {last}."
    assert statement_verdicts(world, index, copied, [*preceding[:-1], false_memory]) == [
        "room", *["new"] * len(new_facts), "repeated", "copied", "repeated"]
    assert statement_verdicts(world, index, wrong, preceding)[-1] == "false"  # in no memory shown


def test_an_entry_that_adds_nothing_new_is_filler_unless_nothing_happened():
    world = World(WorldConfig(seed=3, duration_s=300.0))
    busy = next(i for i, c in enumerate(world.clips) if i >= 1 and c.events)
    room_only = f"in the {world.clips[busy].room}."
    verdict = judge_entry(world, busy, room_only, [world.describe_new(busy - 1)])
    assert verdict.fidelity == 1.0 and verdict.rich == 0 and verdict.news > 0
    assert verdict.filler and not verdict.correct
    quiet = next((i for i in range(1, len(world.clips))
                  if world.describe_new(i) == f"in the {world.clips[i].room}."), None)
    if quiet is not None:  # a clip with nothing new: the room alone is the right memory
        calm = judge_entry(world, quiet, world.describe_new(quiet), [world.describe_new(quiet - 1)])
        assert calm.news == 0 and not calm.filler and calm.correct
