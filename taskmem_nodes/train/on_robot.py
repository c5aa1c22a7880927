"""`taskmem train on-robot`: Phase Two as the robot runs it, on a recorded deployment.

The trainer node, a memorizer node and a store node run as real processes over loopback DDS; the trainer reads
a copy of the deployment's store (its task log) and clip archive. Nobody triggers it: once no clip has arrived for
`idle_after_seconds` and a task type has reached one of the schedule's `thresholds`, the trainer runs Phase
Two in its low-priority child process; the gate releases or rejects; a released adapter is announced and the
memorizer swaps it in. One archived clip is then sent to the memorizer to show the next memory tagged with
the adapter's version. Returns the trainer's Phase Two report with what was observed on the graph.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

TRAINER = "taskmem/trainer"
MEMORIZER = "taskmem/memorizer"


def _wait(condition: Callable[[], object], timeout: float, what: str, on_poll: Callable[[], None] | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if on_poll is not None:
            on_poll()
        time.sleep(0.5)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def run_on_robot(deployment: Path, recipe: Path, workdir: Path, thresholds: list[int] | None = None, *,
                 idle_after_seconds: float = 10.0, timeout: float = 7200.0, domain_id: int | None = None,
                 memorizer: dict | None = None, on_stage: Callable[[str], None] | None = None) -> dict:
    """Bring up trainer (its schedule's `thresholds`, or the configured ones), memorizer (with `memorizer`
    parameter overrides) and store on a copy of `deployment`; wait for the trainer to adapt by itself; return
    its report plus `graph`: the trainer's verdict, the memorizer's adapter, the swap pause and the tag of the
    memory written after the swap."""
    from taskmem_interfaces.msg import Clip as ClipMsg

    from taskmem_nodes.client import TaskMemClient
    from taskmem_nodes.graph import Graph, load_graph
    from taskmem_nodes.nodes.conversions import clip_to_msg
    from taskmem_nodes.nodes.qos import CLIP_QOS
    from taskmem_nodes.runner import GraphRunner
    from taskmem_nodes.store import MemoryStore
    from taskmem_nodes.train.deployment import Deployment

    data = Deployment.load(deployment)  # fails early on a folder that is not a deployment
    robot = workdir / "robot"  # the robot's own files: the trainer archives the clip sent below
    if not robot.exists():
        shutil.copytree(deployment, robot)
    live_db = workdir / "live.db"
    graph = load_graph()
    runner = GraphRunner(
        Graph(nodes=tuple(n for n in graph.nodes if n.name in ("trainer", "memorizer", "store")),
              parameters_file=graph.parameters_file),
        log_dir=workdir / "logs",
        overrides={
            "trainer": {"store_path": str(robot / "store.db"), "clip_archive_dir": str(robot / "clips"),
                        "data_dir": str(workdir / "phase_two"), "recipe": str(recipe), "auto_train": True,
                        "idle_after_seconds": idle_after_seconds, "check_period_seconds": 2.0,
                        "then_every": 1_000_000} | ({"thresholds": list(thresholds)} if thresholds else {}),
            "store": {"database_path": str(live_db)},
        } | ({"memorizer": memorizer} if memorizer else {}), domain_id=domain_id)
    started = time.monotonic()
    with runner, TaskMemClient(domain_id=runner.domain_id) as client:
        def trainer() -> dict[str, str]:
            return client.diagnostics.get(TRAINER, {})

        def poll() -> None:
            crashed = runner.exited()
            if crashed:
                raise RuntimeError(f"node processes exited: {crashed}; logs in {runner.log_dir}")
            if on_stage is not None:
                on_stage(trainer().get("stage", "idle" if trainer().get("idle") == "True" else "waiting"))

        if not client.wait_until_active("memorizer", timeout=600):
            raise RuntimeError(f"the memorizer did not become active; logs in {runner.log_dir}")
        _wait(lambda: int(trainer().get("runs", 0)) >= 1, timeout, "the trainer to start Phase Two", poll)
        _wait(lambda: trainer().get("training") == "False", timeout, "Phase Two to finish", poll)
        status = dict(trainer())
        report = json.loads((workdir / "phase_two" / "report.json").read_text())
        observed = {"trainer_result": status.get("last_result", ""), "seconds_to_verdict": time.monotonic() - started}
        if report["released"]:
            swapped = _wait(lambda: client.diagnostics.get(MEMORIZER, {}).get("adapter_version") == report["version"]
                            and dict(client.diagnostics[MEMORIZER]), 120, "the memorizer to swap the adapter in", poll)
            observed["memorizer_adapter"] = swapped["adapter_version"]
            observed["swap_pause_ms"] = float(swapped["last_swap_ms"])
            publisher = client.node.create_publisher(ClipMsg, "clips", CLIP_QOS)
            _wait(lambda: publisher.get_subscription_count() >= 1, 30, "the memorizer to subscribe to clips")
            archived = next(iter(data.streams.values()))[0].clip  # sent again as a clip of a new stream
            clip = dataclasses.replace(archived, clip_id=f"after-swap-{int(archived.start * 1e9)}")
            publisher.publish(clip_to_msg(clip, "on-robot"))

            def tagged() -> str | None:
                if not live_db.exists():
                    return None
                store = MemoryStore(live_db, readonly=True)
                try:
                    memories = store.memories()
                finally:
                    store.close()
                return memories[0].adapter_version if memories else None

            observed["memory_tagged"] = _wait(tagged, 120, "a memory written with the adapter", poll)
    return report | {"graph": observed}
