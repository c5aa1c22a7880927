"""`taskmem demo`: the whole node graph on the bundled stream, printing memories as they are written and
the answers to questions asked from memory only.

The bundled stream is the simulated house (`sim/worlds/demo.yaml`, rendered by the replay camera): the
questions are the world's own tasks with their true answers, so the table shows what the memory got right.
A video file (e.g. the pedestrian clip `vtest.avi`) is replayed the same way with a few generic questions.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from taskmem_nodes.client import AskOutcome, AskStatus, TaskMemClient
from taskmem_nodes.graph import storage_overrides
from taskmem_nodes.records import MemoryRecord, format_clock
from taskmem_nodes.runner import GraphRunner
from taskmem_nodes.store import MemoryStore
from taskmem_nodes.video_source import open_source

DEMO_QUESTIONS: list[tuple[str, list[str]]] = [
    ("What kind of place does the camera show?", ["a street with pedestrians", "a kitchen", "a forest", "an office"]),
    ("How many people walked through the scene?", []),
    ("What were the people doing?", []),
]


DEMO_TASKS = 8
"""Questions asked after a simulated stream: the world's last tasks (their answers hold at the stream's end)."""


@dataclass(frozen=True)
class DemoQuestion:
    question: str
    options: list[str]
    truth: str | None = None  # the right answer ("" = abstain) when the stream is simulated
    task_type: str = ""


def demo_questions(source: Path) -> list[DemoQuestion]:
    """The simulated world's last tasks with their answers, or generic questions for a video."""
    if source.suffix not in (".yaml", ".yml"):
        return [DemoQuestion(q, options) for q, options in DEMO_QUESTIONS]
    from taskmem_nodes.sim.dataset import load_sim_config, make_stream

    world_config, task_config = load_sim_config(source)
    stream = make_stream(world_config, task_config, "demo").stream
    asked = [t for t in stream.tasks if t.arrival <= stream.duration][-DEMO_TASKS:]
    return [DemoQuestion(t.question, list(t.options), "" if t.should_abstain else t.answer, t.task_type)
            for t in asked]


@dataclass
class DemoReport:
    """What the demo produced and measured."""

    database: Path
    clips_expected: int
    memories: list[MemoryRecord] = field(default_factory=list)
    rejected: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds from clip end (wall) to memory written
    answers: list[tuple[DemoQuestion, AskOutcome]] = field(default_factory=list)
    wall_seconds: float = 0.0


def _count_clips(video: Path, clip_seconds: float) -> int:
    info, frames = open_source(video)
    if info.fps and info.frames:
        duration = info.frames / info.fps
    else:
        duration = max((offset for offset, _ in frames), default=0.0)
    return max(1, math.ceil(duration / clip_seconds))


def _wait_until_memorized(runner: GraphRunner, client: TaskMemClient, progress: tqdm, timeout: float) -> None:
    """Wait until the replay has ended and every clip the camera cut was memorized, rejected or dropped
    (read from the nodes' /diagnostics), and the store holds every memory and rejected output."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crashed = {name: code for name, code in runner.exited().items() if name != "replay_camera" or code != 0}
        if crashed:
            name = next(iter(crashed))
            raise RuntimeError(f"node {name} exited ({crashed[name]}); its log:\n{runner.log(name)[-3000:]}")
        camera = client.diagnostics.get("taskmem/camera", {})
        memorizer = client.diagnostics.get("taskmem/memorizer", {})
        store = client.diagnostics.get("taskmem/store", {})
        written = int(memorizer.get("memories", 0)) + int(memorizer.get("rejected", 0))
        handled = written + int(memorizer.get("dropped", 0)) + int(memorizer.get("bad_clips", 0))
        progress.update(max(0, handled - progress.n))
        if (
            "replay_camera" in runner.exited()
            and camera.get("pending_frames") == "0"
            and handled >= int(camera.get("clips", 1)) > 0
            and int(store.get("db_memories", -1)) + int(store.get("db_rejected", 0)) >= written
        ):
            return
        time.sleep(0.5)
    raise TimeoutError(f"the stream was not memorized within {timeout:.0f} s; logs in {runner.log_dir}")


def run_demo(video: Path, *, rate: float = 4.0, database: Path | None = None, timeout: float = 600.0,
             console: Console | None = None, overrides: dict[str, dict] | None = None) -> DemoReport:
    """Run the graph on `video`, wait until every clip has a memory (or a rejected attempt), ask questions."""
    console = console or Console()
    workdir = Path(tempfile.mkdtemp(prefix="taskmem-demo-"))
    database = database or workdir / "memory.db"
    report = DemoReport(database=database, clips_expected=_count_clips(video, 10.0))
    params = {
        "replay_camera": {"source": str(video), "rate": rate, "exit_when_done": True, "wait_for_subscribers": 1,
                          "max_image_side": 384},
        **storage_overrides(database),
        # faster than real time the clips come quicker than the memorizer writes: let it queue the whole stream
        "memorizer": {"queue_size": max(2, report.clips_expected)},
    }
    for node, values in (overrides or {}).items():
        params.setdefault(node, {}).update(values)

    started = time.monotonic()
    runner = GraphRunner(overrides=params, log_dir=workdir / "logs")
    console.print(f"[bold]TaskMem demo[/]: {video.name} at {rate}x, {report.clips_expected} clips of 10 s; "
                  f"ROS_DOMAIN_ID={runner.domain_id}, logs in {runner.log_dir}")

    def on_memory(memory: MemoryRecord) -> None:
        progress.write(f"  {format_clock(memory.start)}-{format_clock(memory.end)}  {memory.text}")

    with (
        runner,
        tqdm(total=report.clips_expected, desc="clips memorized", unit="clip") as progress,
        TaskMemClient(domain_id=runner.domain_id, on_memory=on_memory) as client,
    ):
        # the replay starts once the memorizer has loaded its model, so no clip passes unseen
        if not client.wait_until_active("memorizer", timeout=timeout):
            raise TimeoutError(f"the memorizer did not become active; its log:\n{runner.log('memorizer')[-3000:]}")
        runner.start_node("replay_camera")
        _wait_until_memorized(runner, client, progress, timeout)
        for question in demo_questions(video):
            report.answers.append((question, client.ask(question.question, question.options,
                                                        task_type=question.task_type)))
    store = MemoryStore(database, readonly=True)
    report.memories = store.memories()
    report.rejected = store.counts()["rejected"]
    report.latencies = _latencies(store, rate)
    store.close()
    report.wall_seconds = time.monotonic() - started
    _print_report(report, console)
    return report


def _latencies(store: MemoryStore, rate: float) -> list[float]:
    """Seconds from the wall time a clip ended (its last frame was played) to its memory being written.

    The replay stamps frames `origin + offset` from the wall clock at its start and plays them at `rate`,
    so stream time t was played at wall time `origin + (t - origin) / rate`.
    """
    origin = store.db.execute("SELECT min(start_time) FROM clips").fetchone()[0]
    return [m.created_at - (origin + (m.end - origin) / rate) for m in store.memories()]


def is_right(question: DemoQuestion, outcome: AskOutcome) -> bool | None:
    """Whether the answer matches the simulated truth (abstaining is right when nothing can be known)."""
    if question.truth is None:
        return None
    if not question.truth:
        return outcome.status is AskStatus.ABSTAINED
    return outcome.status is AskStatus.ANSWERED and outcome.answer.strip().lower() == question.truth.lower()


def _print_report(report: DemoReport, console: Console) -> None:
    simulated = any(q.truth is not None for q, _ in report.answers)
    table = Table(title="Questions answered from memory only")
    for column in ("question", "status", "answer", *(("truth", "right") if simulated else ()), "memories used"):
        table.add_column(column)
    for question, outcome in report.answers:
        check = () if not simulated else (question.truth or "(abstain)", "yes" if is_right(question, outcome)
                                          else "no")
        table.add_row(question.question, outcome.status.value, outcome.answer, *check, str(len(outcome.memory_ids)))
    console.print(table)
    if simulated:
        right = sum(bool(is_right(q, o)) for q, o in report.answers)
        console.print(f"{right} of {len(report.answers)} questions answered right from memory alone")
    console.print(
        f"{len(report.memories)} memories, {report.rejected} rejected outputs in {report.wall_seconds:.0f} s. "
        f"Clip end -> memory written: {_percentiles(report.latencies)}; "
        f"generation per memory: {_percentiles([m.generation_seconds for m in report.memories])}. "
        f"Database: {report.database}"
    )


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered):.2f} s, p95 {p95:.2f} s"
