"""The streaming protocol: clip order, memory visible only after a clip ends, the fixed answerer, modes."""

import numpy as np

from taskmem_nodes.answerer import LexicalAnswerer
from taskmem_nodes.bench.harness import BenchConfig, run_stream
from taskmem_nodes.bench.memorizers import NoMemory, OracleMemorizer
from taskmem_nodes.bench.types import BenchStream, BenchTask

FACTS = ["kitchen. a red mug is on the table.", "hall. person 2 carries the red mug.",
         "office. person 2 puts the red mug on the desk.", "office. 3 yellow boxes are on the shelf."]


def frames():
    for i in range(40 * 2):  # 40 s at 2 fps
        yield i / 2, np.full((8, 8, 3), i, np.uint8)


def task(task_id, arrival, question, options, answer):
    return BenchTask(task_id, "s", "location", question, tuple(options), answer,
                     options.index(answer) if answer in options else -1, arrival)


STREAM = BenchStream("s", frames, (
    task("early", 25.0, "Where did person 2 put the red mug?", ["on the desk", "on the sofa"], "on the desk"),
    task("late", 40.0, "Where did person 2 put the red mug?", ["on the desk", "on the sofa"], "on the desk"),
    task("count", 40.0, "How many yellow boxes are on the shelf?", ["2", "3", "4"], "3"),
), duration=40.0)


def test_memory_at_question_time_holds_only_finished_clips(tmp_path):
    seen = []
    oracle = OracleMemorizer(lambda context: seen.append(context.index) or FACTS[context.index])
    run = run_stream(STREAM, oracle, LexicalAnswerer(), BenchConfig(sample_fps=2.0), workdir=tmp_path)
    assert seen == [0, 1, 2, 3] and run.clips == 4 and len(run.memories) == 4
    outcomes = {o.task.task_id: o for o in run.outcomes}
    # at 25 s only clips 0 and 1 have ended: the desk is not in memory yet
    assert outcomes["early"].option_index != 0
    assert outcomes["late"].answered and outcomes["late"].option_index == 0
    assert outcomes["count"].answered and outcomes["count"].answer == "3"
    assert set(outcomes["late"].memory_ids) <= {m.memory_id for m in run.memories}


def test_retrieval_mode_and_no_memory_baseline(tmp_path):
    oracle = OracleMemorizer(lambda context: FACTS[context.index])
    run = run_stream(STREAM, oracle, LexicalAnswerer(), BenchConfig(recall="retrieval", recall_k=1), workdir=tmp_path)
    assert {o.task.task_id: o.option_index for o in run.outcomes}["count"] == 1
    empty = run_stream(STREAM, NoMemory(), LexicalAnswerer(), BenchConfig(), workdir=tmp_path)
    assert empty.memories == [] and not any(o.answered for o in empty.outcomes)
