"""SIGKILL the store node while memories stream in, restart it: nothing it acknowledged is lost, the
file is intact, and re-delivery (transient-local) fills in what it had not written yet."""

import re
import signal
import threading
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosutil import spin_until, subgraph, wait_for
from taskmem_interfaces.msg import Memory as MemoryMsg

from taskmem_nodes.nodes.conversions import memory_to_msg, to_time
from taskmem_nodes.nodes.qos import MEMORY_QOS
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.runner import GraphRunner
from taskmem_nodes.store import MemoryStore

COUNT = 100  # the memories topic keeps the last 100 for late joiners


def test_sigkill_during_ingest_loses_nothing(tmp_path, domain_id, ros_context):
    db = tmp_path / "memory.db"
    runner = GraphRunner(subgraph("store"), domain_id=domain_id, log_dir=tmp_path,
                         overrides={"store": {"database_path": str(db)}})
    node = Node("crash_test_memorizer", context=ros_context)
    publisher = node.create_publisher(MemoryMsg, "memories", MEMORY_QOS)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    ids = [f"mem-{i:03d}" for i in range(COUNT)]
    with runner:
        spin_until(executor, lambda: publisher.get_subscription_count(), 30, "the store to subscribe")

        def publish_all():
            for i, memory_id in enumerate(ids):
                record = MemoryRecord(memory_id, f"clip-{i}", 10.0 * i, 10.0 * i + 10, f"memory number {i} " * 20)
                publisher.publish(memory_to_msg(record, to_time(time.time())))
                time.sleep(0.02)

        sender = threading.Thread(target=publish_all)
        sender.start()
        wait_for(lambda: runner.log("store").count("stored memory") >= 10, 30, "the first memories to be stored",
                 interval=0.01)
        runner.processes["store"].send_signal(signal.SIGKILL)
        runner.processes["store"].wait()
        acknowledged = set(re.findall(r"stored memory (mem-\d+)", runner.log("store")))
        assert 10 <= len(acknowledged) < COUNT, "the kill must land in the middle of the ingest"
        sender.join()

        store = MemoryStore(db)  # opening recovers the WAL exactly as the node will
        assert store.integrity_check() == "ok"
        present = {m.memory_id for m in store.memories()}
        assert acknowledged <= present, f"acknowledged but lost: {sorted(acknowledged - present)}"
        store.close()

        runner.start_node("store")
        spin_until(executor, lambda: "store" in runner.processes and publisher.get_subscription_count(), 30,
                   "the restarted store")
        wait_for(lambda: MemoryStore(db, readonly=True).counts()["memories"] == COUNT, 60,
                 f"all {COUNT} memories after the restart")
    store = MemoryStore(db, readonly=True)
    assert [m.memory_id for m in store.memories()] == ids
    assert store.integrity_check() == "ok"
    executor.shutdown()
    node.destroy_node()


WRITER = """
import sys
import numpy as np
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.store import MemoryStore
store = MemoryStore(sys.argv[1])
batch, batches = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
for b in range(batches):
    ids = [f"b{b:04d}-{i:03d}" for i in range(batch)]
    store.add_memories([MemoryRecord(m, m, b * 10.0, b * 10.0 + 10, f"batch {b} memory {i} " * 8)
                        for i, m in enumerate(ids)])
    print("ack", b, flush=True)  # acknowledged only after the batch's transaction committed
    pending = store.pending_embeddings(batch)
    store.store_embeddings([r for r, _ in pending], rng.standard_normal((len(pending), 384)), "random")
"""


def _start_writer(db, batch, batches):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(batch), str(batches)],
                            stdout=subprocess.PIPE, text=True)


def test_sigkill_during_batch_ingest_keeps_every_acknowledged_batch_whole(tmp_path):
    db = tmp_path / "memory.db"
    writer = _start_writer(db, 50, 10_000)
    acknowledged = []
    for line in writer.stdout:
        acknowledged.append(int(line.split()[1]))
        if len(acknowledged) == 40:
            break
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    store = MemoryStore(db)
    assert store.integrity_check() == "ok"
    ids = {m.memory_id for m in store.memories()}
    assert {f"b{b:04d}-{i:03d}" for b in acknowledged for i in range(50)} <= ids
    assert len(ids) % 50 == 0, "a batch is written whole or not at all"
    vectors = store.counts()["memory_vectors"]
    assert vectors % 50 == 0 and vectors <= len(ids)
    store.close()


def test_readers_while_the_writer_writes(tmp_path):
    db = tmp_path / "memory.db"
    MemoryStore(db).close()
    writer = _start_writer(db, 20, 150)
    errors, seen = [], []

    def read():
        store = MemoryStore(db, readonly=True)
        last = 0
        try:
            while writer.poll() is None:
                count = store.counts()["memories"]
                assert count >= last, "a reader saw memories disappear"
                last = count
                hits = store.recall("batch memory", k=5, mode="text")
                assert all(m.text.startswith("batch") for m, _ in hits)
                assert len(store.memories(limit=3)) >= min(3, count)
            seen.append(last)
        except Exception as err:  # collected for the assertion below
            errors.append(err)
        finally:
            store.close()

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(120)
    assert writer.wait(60) == 0
    assert errors == [] and len(seen) == 3 and max(seen) > 0
    store = MemoryStore(db, readonly=True)
    assert store.counts()["memories"] == 3000 and store.integrity_check() == "ok"
    store.close()
