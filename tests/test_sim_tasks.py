"""Tasks of the simulated world: the mix, answers from the stream's past, and answerable from ground truth."""

from collections import Counter

import pytest

from taskmem_nodes.answerer import LexicalAnswerer
from taskmem_nodes.bench.harness import BenchConfig, run_stream
from taskmem_nodes.bench.memorizers import NoMemory, OracleMemorizer
from taskmem_nodes.sim.dataset import make_stream, synthetic_dataset
from taskmem_nodes.sim.tasks import TASK_TYPES, TaskConfig, parse_mix
from taskmem_nodes.sim.world import WorldConfig


def test_parse_mix():
    assert parse_mix("location=3, count=1") == {"location": 3.0, "count": 1.0}
    assert parse_mix("not_seen") == {"not_seen": 1.0}
    for bad, message in (("place=1", "unknown task type"), ("count=x", "must be a number"),
                         ("count=-1", "negative"), ("count=0", "positive"), ("", "positive")):
        with pytest.raises(ValueError, match=message):
            parse_mix(bad)


def test_tasks_are_well_formed_and_about_the_past():
    sim = make_stream(WorldConfig(seed=3), TaskConfig(), "s3")
    tasks = sim.stream.tasks
    assert len(tasks) == 200 and {t.task_type for t in tasks} == set(TASK_TYPES)
    assert [t.arrival for t in tasks] == sorted(t.arrival for t in tasks)
    for task in tasks:
        assert all(end <= task.arrival for _, end in task.evidence)
        if task.task_type == "not_seen":
            assert task.should_abstain and task.answer == "" and task.answer_index == -1 and not task.evidence
        else:
            assert task.answer and task.evidence and not task.should_abstain
        if task.options:
            assert len(task.options) == 4 and len(set(task.options)) == 4 and not task.alternatives
            assert task.answer_index == -1 or task.options[task.answer_index] == task.answer
        else:
            assert task.task_type != "temporal_order" and task.answer not in task.alternatives
    assert 0.1 < sum(not t.options for t in tasks) / len(tasks) < 0.3  # open_fraction 0.2
    assert make_stream(WorldConfig(seed=3), TaskConfig(), "s3").stream.tasks == tasks  # reproducible


def test_the_mix_is_followed():
    sims = synthetic_dataset(WorldConfig(), TaskConfig(mix=parse_mix("location=3,count=1")), seed=4, streams=2)
    counts = Counter(t.task_type for s in sims for t in s.stream.tasks)
    assert set(counts) == {"location", "count"}
    assert 2.3 < counts["location"] / counts["count"] < 3.9


def test_ground_truth_memory_answers_almost_everything_and_no_memory_only_abstains(tmp_path):
    outcomes, empty = [], []
    for sim in synthetic_dataset(WorldConfig(), TaskConfig(), seed=7, streams=2):
        oracle = OracleMemorizer(lambda context, world=sim.world: world.describe_new(context.index))
        outcomes += run_stream(sim.stream, oracle, LexicalAnswerer(), BenchConfig(), workdir=tmp_path).outcomes
        empty += run_stream(sim.stream, NoMemory(), LexicalAnswerer(), BenchConfig(), workdir=tmp_path).outcomes
    by_type = Counter()
    right = Counter()
    for outcome in outcomes:
        task = outcome.task
        by_type[task.task_type] += 1
        if task.should_abstain:
            right[task.task_type] += not outcome.answered
        elif task.options:
            right[task.task_type] += outcome.answered and outcome.option_index == task.answer_index
        else:
            right[task.task_type] += outcome.answered and task.answer in outcome.answer
    for task_type in TASK_TYPES:
        assert right[task_type] / by_type[task_type] >= 0.9, (task_type, right[task_type], by_type[task_type])
    assert not any(o.answered for o in empty)


def test_tasks_do_not_depend_on_the_hash_seed():
    """Same seed, same tasks, in any interpreter: nothing may iterate a set of strings into the draft order."""
    import os
    import subprocess
    import sys

    script = ("from taskmem_nodes.sim.dataset import make_stream\n"
              "from taskmem_nodes.sim.tasks import TaskConfig\nfrom taskmem_nodes.sim.world import WorldConfig\n"
              "s = make_stream(WorldConfig(seed=5, duration_s=300.0), TaskConfig(), 's').stream\n"
              "print([(t.question, t.answer, t.options) for t in s.tasks])")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2, 3)}
    assert len(outputs) == 1 and "How many" in outputs.pop()
