"""The store node as a real process over DDS: memories are stored at once and embedded in batches by its
worker; Recall serves hybrid, filtered, around-time and whole-memory queries, refuses bad ones with a clear
message and keeps running; adapters are recorded; the retention timer keeps the budget."""

import time

import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rosutil import spin_until, subgraph, wait_for
from taskmem_interfaces.msg import AdapterUpdate
from taskmem_interfaces.msg import Memory as MemoryMsg
from taskmem_interfaces.srv import Recall

from taskmem_nodes.nodes.conversions import memory_to_msg, msg_to_memory, to_time
from taskmem_nodes.nodes.qos import ADAPTER_QOS, MEMORY_QOS
from taskmem_nodes.records import MemoryRecord
from taskmem_nodes.runner import GraphRunner
from taskmem_nodes.store import MemoryStore

TEXTS = ["A man puts a cup on the kitchen table.", "Two cars are parked outside the house.",
         "A woman waters the plants in the garden.", "The hallway light is switched off.",
         "A child plays with a red ball in the hall.", "The kitchen is empty."]


def counts(db):
    if not db.exists():
        return {}
    store = MemoryStore(db, readonly=True)
    try:
        return store.counts()
    finally:
        store.close()


@pytest.fixture
def graph_client(ros_context):
    node = Node("store_node_test", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    yield node, executor
    executor.shutdown()
    node.destroy_node()


def call(executor, client, request):
    future = client.call_async(request)
    spin_until(executor, future.done, 30, "the recall answer")
    return future.result()


def publish(executor, node, records, topic="memories"):
    publisher = node.create_publisher(MemoryMsg, topic, MEMORY_QOS)
    spin_until(executor, lambda: publisher.get_subscription_count(), 30, "the store to subscribe")
    for record in records:
        publisher.publish(memory_to_msg(record, to_time(time.time())))
    return publisher


def test_store_node_recall_with_vectors_filters_and_bad_requests(tmp_path, domain_id, graph_client):
    node, executor = graph_client
    db = tmp_path / "memory.db"
    runner = GraphRunner(subgraph("store"), domain_id=domain_id, log_dir=tmp_path, overrides={
        "store": {"database_path": str(db), "embed_interval_seconds": 0.2}})
    records = [MemoryRecord(f"m{i}", f"c{i}", 100.0 + 10 * i, 110.0 + 10 * i, text, entity_ids=(f"person_{i % 2}",),
                            frame_id="map", pose=(float(i), 2.0, 0.0, 0.0, 0.0, 0.0, 1.0))
               for i, text in enumerate(TEXTS)]
    with runner:
        publish(executor, node, records)
        adapters = node.create_publisher(AdapterUpdate, "adapter", ADAPTER_QOS)
        adapters.publish(AdapterUpdate(version="loc-1", path="/adapters/loc-1.pt", base_model_version="tiny",
                                       task_types=["location"]))
        wait_for(lambda: counts(db).get("memory_vectors") == len(TEXTS), 90,
                 f"the worker to embed every memory; log: {runner.log('store')[-2000:]}")
        wait_for(lambda: counts(db).get("adapters") == 1, 10, "the adapter release to be recorded")
        recall = node.create_client(Recall, "recall")
        assert recall.wait_for_service(timeout_sec=10)

        hybrid = call(executor, recall, Recall.Request(query="someone placing a mug", k=2))
        assert hybrid.success and "text alone" not in hybrid.message, hybrid.message
        assert msg_to_memory(hybrid.memories[0]).memory_id == "m0"  # by meaning: no word of the query is in it
        first = msg_to_memory(hybrid.memories[0])
        assert first.pose == (0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0) and first.frame_id == "map"

        filtered = call(executor, recall, Recall.Request(query="kitchen", k=5, entity_ids=["person_1"],
                                                         start=to_time(115.0)))
        assert filtered.success
        assert {m.memory_id for m in filtered.memories} <= {"m1", "m3", "m5"} and filtered.memories

        around = call(executor, recall, Recall.Request(query="", k=2, around=to_time(142.0), around_seconds=20.0))
        assert [m.memory_id for m in around.memories] == ["m4", "m3"]

        whole = call(executor, recall, Recall.Request(mode="whole"))
        assert [m.memory_id for m in whole.memories] == [f"m{i}" for i in range(len(TEXTS))]

        bad_fts = call(executor, recall, Recall.Request(query='"unbalanced', fts_syntax=True, mode="text"))
        assert not bad_fts.success and "not valid FTS5 syntax" in bad_fts.message
        bad_mode = call(executor, recall, Recall.Request(query="cup", mode="telepathy"))
        assert not bad_mode.success and "mode" in bad_mode.message
        still = call(executor, recall, Recall.Request(query="red ball", k=1, mode="text"))
        assert still.success and still.memories[0].memory_id == "m4"  # the node kept running
        assert runner.exited() == {}


def test_store_node_retention_keeps_the_budget(tmp_path, domain_id, graph_client):
    node, executor = graph_client
    db = tmp_path / "memory.db"
    runner = GraphRunner(subgraph("store"), domain_id=domain_id, log_dir=tmp_path, overrides={"store": {
        "database_path": str(db), "embedder": "none", "retention_max_memories": 10,
        "retention_interval_seconds": 0.5, "retention_keep_recent_seconds": 50.0,
        "retention_summary_span_seconds": 60.0}})
    records = [MemoryRecord(f"m{i}", f"c{i}", 10.0 * i, 10.0 * i + 10, f"Person {i % 4} opens door {i}.")
               for i in range(40)]
    with runner:
        publish(executor, node, records)
        wait_for(lambda: counts(db).get("clips") == 40 and counts(db).get("active_memories") <= 10, 30,
                 f"all 40 stored within the budget of 10; log: {runner.log('store')[-1500:]}")
        assert counts(db)["provenance"] >= 30
        assert "retention:" in runner.log("store")
