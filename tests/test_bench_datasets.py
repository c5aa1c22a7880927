"""Loaders of Video-MME, EgoLifeQA and EgoTempo, on small files in their published formats written here."""

import json
import math

import cv2
import numpy as np
import pytest

from taskmem_nodes.answerer import LexicalAnswerer
from taskmem_nodes.bench.datasets import egolife, egotempo, videomme
from taskmem_nodes.bench.datasets.common import DatasetError
from taskmem_nodes.bench.harness import BenchConfig, run_stream
from taskmem_nodes.bench.memorizers import OracleMemorizer


def write_video(path, seconds, fps=5, shade=0):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (32, 24))
    assert writer.isOpened()
    for i in range(int(seconds * fps)):
        writer.write(np.full((24, 32, 3), (shade + i * 3) % 256, np.uint8))
    writer.release()
    return path


def offsets(stream):
    return [t for t, _ in stream.open_frames()]


VIDEOMME_ROWS = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
     "task_type": "Counting Problem", "question": "How many red balls are shown?",
     "options": ["A. One.", "B. Two.", "C. Three.", "D. Four."], "answer": "C"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-2",
     "task_type": "Temporal Reasoning", "question": "What happens first?",
     "options": ["A. A door opens.", "B. A dog barks.", "C. It rains.", "D. Nothing."], "answer": "A"},
]


def test_videomme_both_layouts(tmp_path):
    write_video(tmp_path / "fFjv93ACGo8.mp4", 4)
    rows = tmp_path / "videomme.jsonl"
    rows.write_text("\n".join(json.dumps(r) for r in VIDEOMME_ROWS))
    nested = tmp_path / "videomme.json"
    video = {k: v for k, v in VIDEOMME_ROWS[0].items() if k in ("video_id", "duration", "domain", "videoID")}
    video["questions"] = [{k: v for k, v in r.items() if k in ("question_id", "task_type", "question", "options",
                                                                "answer")} for r in VIDEOMME_ROWS]
    nested.write_text(json.dumps([video]))
    for annotations in (rows, nested):
        (stream,) = videomme.load(annotations, tmp_path)
        assert stream.stream_id == "fFjv93ACGo8" and stream.duration == pytest.approx(4.0)
        first, second = stream.tasks
        assert first.task_type == "counting_problem" and second.task_type == "temporal_reasoning"
        assert first.options == ("One.", "Two.", "Three.", "Four.") and first.answer_index == 2
        assert first.answer == "Three." and first.task_id == "001-1"
        assert first.arrival == math.inf  # asked after the whole video
        times = offsets(stream)
        assert len(times) == 20 and times == sorted(times) and times[-1] == pytest.approx(3.8)


def test_videomme_question_sees_the_last_partial_clip(tmp_path):
    write_video(tmp_path / "fFjv93ACGo8.mp4", 14)  # clips [0, 10) and [10, 14), the second one partial
    annotations = tmp_path / "videomme.json"
    annotations.write_text(json.dumps([{**VIDEOMME_ROWS[0], "question": "How many yellow boxes are on the shelf?",
                                        "options": ["A. 2", "B. 3"], "answer": "B"}]))
    (stream,) = videomme.load(annotations, tmp_path)
    facts = {0: "kitchen. a red mug.", 1: "office. 3 yellow boxes are on the shelf."}
    run = run_stream(stream, OracleMemorizer(lambda context: facts[context.index]), LexicalAnswerer(),
                     BenchConfig(sample_fps=2.0), workdir=tmp_path)
    (outcome,) = run.outcomes
    assert run.clips == 2 and outcome.answered and outcome.option_index == 1


def test_videomme_bad_input(tmp_path):
    write_video(tmp_path / "fFjv93ACGo8.mp4", 1)
    cases = [({"answer": "E"}, "not one of the 4 option letters"), ({"options": ["A. x"]}, "at least two"),
             ({"question": ""}, "'question' must be a non-empty"), ({"videoID": "missing"}, "no video missing")]
    for change, message in cases:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps([{**VIDEOMME_ROWS[0], **change}]))
        with pytest.raises(DatasetError, match=message):
            videomme.load(path, tmp_path)
    row = dict(VIDEOMME_ROWS[0])
    del row["task_type"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([row]))
    with pytest.raises(DatasetError, match=r"bad.json record 0: missing field 'task_type'"):
        videomme.load(path, tmp_path)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        videomme.load(path, tmp_path)


def egolife_record(i, query, target, answer="B", **extra):
    return {"ID": str(i), "query_time": {"date": "DAY1", "time": query}, "type": "EventRecall",
            "question": f"What did I do? ({i})", "choice_a": "Cooked", "choice_b": "Read", "choice_c": "Slept",
            "choice_d": "Ran", "answer": answer, "target_time": {"date": "DAY1", "time": target}, **extra}


def test_egolife_streams_follow_the_wall_clock(tmp_path):
    day = tmp_path / "videos" / "DAY1"
    day.mkdir(parents=True)
    write_video(day / "DAY1_A1_JAKE_11000000.mp4", 3, shade=0)
    write_video(day / "DAY1_A1_JAKE_11003000.mp4", 3, shade=100)  # 30 s later
    annotations = tmp_path / "EgoLifeQA_A1_JAKE.json"
    records = [egolife_record(1, "11004550", "11003010"), egolife_record(2, "11000200", "11000100", "A"),
               {**egolife_record(3, "09000000", "09000000"), "query_time": {"date": "DAY2", "time": "09000000"}}]
    annotations.write_text(json.dumps(records))
    result = egolife.load_with_skips(annotations, tmp_path / "videos")
    assert result.skipped == 1  # DAY2 has no videos
    (stream,) = result.streams
    assert stream.stream_id == "DAY1_A1_JAKE" and stream.duration == pytest.approx(60.0)
    early, late = stream.tasks  # in arrival order
    assert early.task_id == "2" and early.arrival == pytest.approx(2.0) and early.answer == "Cooked"
    assert late.arrival == pytest.approx(45.5) and late.evidence == ((pytest.approx(30.1), pytest.approx(60.1)),)
    assert late.task_type == "event_recall" and late.options == ("Cooked", "Read", "Slept", "Ran")
    times = offsets(stream)
    assert len(times) == 30 and times == sorted(times)
    assert times[14] == pytest.approx(2.8) and times[15] == pytest.approx(30.0)  # the second clip starts at 30 s
    assert egolife.load(annotations, tmp_path / "videos", limit=0) == []
    other_day = {**egolife_record(4, "11004550", "11003010"), "type": "HabitInsight",
                 "target_time": [{"date": "DAY0", "time": "11003010"}, {"date": "DAY1", "time": "11000000"}]}
    annotations.write_text(json.dumps([other_day]))
    (task,) = egolife.load(annotations, tmp_path / "videos")[0].tasks
    assert task.task_type == "habit_insight" and task.evidence == ((0.0, 30.0),)  # DAY0 is not in this stream


def test_egolife_bad_input(tmp_path):
    (tmp_path / "DAY1").mkdir()
    write_video(tmp_path / "DAY1" / "DAY1_A1_JAKE_11000000.mp4", 1)
    path = tmp_path / "qa.json"
    for record, message in ((egolife_record(1, "1100", "11000000"), "HHMMSSff"),
                            (egolife_record(1, "11000000", "11000000", answer="Z"), "option letters"),
                            ({k: v for k, v in egolife_record(1, "11000000", "11000000").items() if k != "choice_c"},
                             "missing field 'choice_c'")):
        path.write_text(json.dumps([record]))
        with pytest.raises(DatasetError, match=message):
            egolife.load(path, tmp_path)
    write_video(tmp_path / "DAY1" / "DAY1_A2_ALICE_11000000.mp4", 1)
    path.write_text(json.dumps([egolife_record(1, "11000000", "11000000")]))
    with pytest.raises(DatasetError, match="needs an 'identity'"):
        egolife.load(path, tmp_path)
    path.write_text(json.dumps([egolife_record(1, "11000000", "11000000", identity="A2_ALICE")]))
    assert egolife.load(path, tmp_path)[0].stream_id == "DAY1_A2_ALICE"


def test_egotempo_clip_files_and_trimmed_whole_videos(tmp_path):
    write_video(tmp_path / "0a1b-c2d3_4.0_8.0.mp4", 4)
    write_video(tmp_path / "ff_ee-99.mp4", 10)  # a uid with '_' in it; its clip file is absent
    annotations = tmp_path / "egotempo_openQA.json"
    annotations.write_text(json.dumps([
        {"question_id": "q1", "clip_id": "0a1b-c2d3_4.0_8.0", "question_type": "Action-specific object counting",
         "question": "How many cups did I pick up?", "answer": "3"},
        {"question_id": "q2", "clip_id": "ff_ee-99_2_6", "question_type": "Future action prediction",
         "question": "What do I do next?", "answer": "open the fridge"},
    ]))
    whole, trimmed = egotempo.load(annotations, tmp_path)
    assert whole.tasks[0].task_type == "action_specific_object_counting" and whole.tasks[0].options == ()
    assert whole.tasks[0].answer == "3" and whole.tasks[0].answer_index == -1
    assert whole.tasks[0].arrival == trimmed.tasks[0].arrival == math.inf  # asked at the clip's end
    assert whole.duration == pytest.approx(4.0) and trimmed.duration == pytest.approx(4.0)
    assert len(offsets(whole)) == 20
    times = offsets(trimmed)
    assert len(times) == 20 and times[0] == 0.0 and times[-1] == pytest.approx(3.8)  # [2 s, 6 s) rebased to 0
    for clip_id, message in (("nounderscore", "is not '<video_uid>_<start>_<end>'"), ("x_5_2", "start < end"),
                             ("missing_1_2", "no video")):
        annotations.write_text(json.dumps([{"question_id": "q", "clip_id": clip_id, "question_type": "t",
                                            "question": "q?", "answer": "a"}]))
        with pytest.raises(DatasetError, match=message):
            egotempo.load(annotations, tmp_path)


def test_bench_command_on_a_published_dataset(tmp_path):
    from typer.testing import CliRunner

    from taskmem_nodes.cli import app

    write_video(tmp_path / "abc_0_12.mp4", 12)
    annotations = tmp_path / "egotempo_openQA.json"
    annotations.write_text(json.dumps([{"question_id": "q1", "clip_id": "abc_0_12", "question_type": "Locating object",
                                        "question": "Where is the cup?", "answer": "on the table"}]))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", "--dataset", "egotempo", "--annotations", str(annotations),
                                      "--videos", str(tmp_path), "--systems", "no-memory", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["seeds"] == [0] and report["task_counts"]["0"] == {"locating_object": 1}
    summary = report["systems"]["no-memory"]["summary"]["locating_object"]
    assert summary["tasks"] == 1 and summary["coverage"]["mean"] == 0.0
    oracle = CliRunner().invoke(app, ["bench", "--dataset", "egotempo", "--annotations", str(annotations),
                                      "--videos", str(tmp_path), "--systems", "oracle", "--out", str(out)])
    assert oracle.exit_code == 2 and "ground truth" in oracle.output
