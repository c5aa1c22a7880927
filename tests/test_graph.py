"""The whole graph as real processes over real DDS: a real video -> clips -> memories written by a tiny
Qwen3-VL through the real processor and generate() -> rows in SQLite -> Ask goals answered from memory."""

import itertools
import json
import subprocess
import sys

from rosutil import wait_for

from taskmem_nodes.client import AskStatus, TaskMemClient
from taskmem_nodes.graph import storage_overrides
from taskmem_nodes.runner import GraphRunner, ros_environment
from taskmem_nodes.store import MemoryStore

NODES = ("camera", "memorizer", "store", "task", "trainer", "replay_camera")
VTEST_CLIPS = 8  # 795 frames at 10 fps = 79.5 s -> seven full 10-s clips and a partial one


def stored(db):
    if not db.exists():
        return {}
    store = MemoryStore(db, readonly=True)
    try:
        return store.counts()
    except Exception:
        return {}
    finally:
        store.close()


def test_video_to_memories_to_answers(tmp_path, domain_id, tiny_checkpoint, vtest_video):
    db = tmp_path / "memory.db"
    runner = GraphRunner(domain_id=domain_id, log_dir=tmp_path / "logs", overrides={
        "memorizer": {"model_path": str(tiny_checkpoint), "queue_size": VTEST_CLIPS},  # no clip dropped
        **storage_overrides(db),
        "replay_camera": {"source": str(vtest_video), "rate": 8.0, "exit_when_done": True,
                          "max_image_side": 384},
    })
    received = []
    with runner, TaskMemClient(domain_id=domain_id, on_memory=received.append) as client:
        assert client.wait_until_active("memorizer", timeout=180), runner.log("memorizer")
        runner.start_node("replay_camera")
        wait_for(lambda: stored(db).get("memories", 0) + stored(db).get("rejected", 0) >= VTEST_CLIPS, 240,
                 f"{VTEST_CLIPS} memories; logs in {runner.log_dir}")
        open_answer = client.ask("What were the people in the street doing?")
        choice = client.ask("Where was the camera?", options=["a street", "a kitchen", "a forest"], task_type="place")
        assert runner.exited() == {"replay_camera": 0}, runner.exited()
        wait_for(lambda: len(received) >= VTEST_CLIPS, 10, "memories on the topic")
        cli = subprocess.run(
            [sys.executable, "-m", "taskmem_nodes.cli", "ask", "Who walked past?", "--domain-id", str(domain_id)],
            env=ros_environment(domain_id), capture_output=True, text=True, timeout=120,
        )
        assert cli.returncode == 0 and ("abstained" in cli.stdout or "answered" in cli.stdout), cli.stdout + cli.stderr
        wait_for(lambda: {f"taskmem/{n}" for n in NODES} <= set(client.diagnostics)
                 and client.diagnostics["taskmem/task"].get("asked") == "3", 10, "diagnostics of every node")
        diagnostics = dict(client.diagnostics)

    store = MemoryStore(db, readonly=True)
    memories = store.memories()
    assert len(memories) == VTEST_CLIPS and store.counts()["rejected"] == 0
    starts = [m.start for m in memories]
    assert all(abs(b - a - 10.0) < 1e-6 for a, b in itertools.pairwise(starts)), starts
    assert len({m.clip_id for m in memories}) == VTEST_CLIPS
    for memory in memories:
        assert memory.text and memory.model_version.startswith("tiny-qwen3-vl")
        assert memory.raw_output.startswith("<think>") and "</think>" in memory.raw_output
        assert json.loads(memory.raw_output.split("</think>")[1])["description"].strip()
        assert memory.adapter_version == ""
    assert {m.memory_id for m in received} == {m.memory_id for m in memories}

    for outcome in (open_answer, choice):
        assert outcome.status in (AskStatus.ANSWERED, AskStatus.ABSTAINED), outcome
        assert outcome.memory_ids and set(outcome.memory_ids) <= {m.memory_id for m in memories}
    tasks = {t.task_id: t for t in store.tasks()}
    assert len(tasks) == 3 and {open_answer.task_id, choice.task_id} <= set(tasks)
    logged = tasks[choice.task_id]
    assert logged.options == ("a street", "a kitchen", "a forest") and logged.task_type == "place"
    assert logged.memory_ids == choice.memory_ids and logged.answered == (choice.status is AskStatus.ANSWERED)
    assert store.integrity_check() == "ok"

    assert int(diagnostics["taskmem/store"]["db_size_bytes"]) > 0
    assert diagnostics["taskmem/store"]["db_memories"] == str(VTEST_CLIPS)
    assert diagnostics["taskmem/camera"]["clips"] == str(VTEST_CLIPS)
    assert diagnostics["taskmem/memorizer"]["memories"] == str(VTEST_CLIPS)
    assert diagnostics["taskmem/task"]["asked"] == "3"
    assert int(diagnostics["taskmem/replay_camera"]["published"]) > 0
    assert diagnostics["taskmem/trainer"]["clips_archived"] == str(VTEST_CLIPS)  # kept for Phase Two
    assert len(list((tmp_path / "clips").glob("*.npz"))) == VTEST_CLIPS

    listed = subprocess.run([sys.executable, "-m", "taskmem_nodes.cli", "memories", "list", "--db", str(db), "--json"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert [json.loads(line)["memory_id"] for line in listed.stdout.splitlines()] == [m.memory_id for m in memories]
