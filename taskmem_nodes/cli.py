"""`taskmem`: one command-line entry point that works without a robot."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from taskmem_nodes.paths import bundled_stream, default_model_dir
from taskmem_nodes.records import format_clock

app = typer.Typer(help="TaskMem: a ROS 2 memory stack that learns what to remember.", no_args_is_help=True)
memories_app = typer.Typer(help="Inspect the memory store.", no_args_is_help=True)
model_app = typer.Typer(help="Memorizer checkpoints.", no_args_is_help=True)
app.add_typer(memories_app, name="memories")
app.add_typer(model_app, name="model")
console = Console()

DEFAULT_DB = Path("~/.ros/taskmem/memory.db")


@app.command()
def demo(
    video: Annotated[Path | None, typer.Option(help="Stream to replay (default: the bundled vtest.avi)")] = None,
    rate: Annotated[float, typer.Option(help="Replay speed (1 = real time)")] = 4.0,
    db: Annotated[Path | None, typer.Option(help="Database file (default: a fresh one in a temp dir)")] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 600.0,
) -> None:
    """Run the whole node graph on a recorded stream; print memories and answers."""
    from taskmem_nodes.demo import run_demo

    video = video or bundled_stream()
    if not video.exists():
        raise typer.BadParameter(f"{video} does not exist; run scripts/setup.sh to fetch the bundled stream")
    _ensure_default_model(quiet=True)
    run_demo(video, rate=rate, database=db, timeout=timeout, console=console)


@app.command()
def run(
    replay: Annotated[Path | None, typer.Option(help="Play this video/folder/bag as the camera")] = None,
    rate: Annotated[float, typer.Option(help="Replay speed")] = 1.0,
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    model: Annotated[str, typer.Option(help="Qwen3-VL checkpoint directory ('' = default)")] = "",
    domain_id: Annotated[int | None, typer.Option(help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or random)")] = None,
) -> None:
    """Bring the graph up without ROS 2 launch (same graph and parameter files as the launch file)."""
    from taskmem_nodes.runner import GraphRunner

    overrides = {"store": {"database_path": str(db.expanduser())}}
    if model:
        overrides["memorizer"] = {"model_path": model}
    if replay:
        overrides["replay_camera"] = {"source": str(replay), "rate": rate}
    from taskmem_nodes.client import TaskMemClient

    runner = GraphRunner(domain_id=domain_id, overrides=overrides)
    with runner:
        console.print(f"graph up on ROS_DOMAIN_ID={runner.domain_id} (logs: {runner.log_dir}); Ctrl-C stops it")
        if replay:
            with TaskMemClient(domain_id=runner.domain_id) as client:
                client.wait_until_active("memorizer")
            runner.start_node("replay_camera")
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while not runner.exited():
                time.sleep(0.5)
            console.print(f"[red]node exited[/]: {runner.exited()}")
        except KeyboardInterrupt:
            console.print("stopping")


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


@app.command()
def ask(
    question: str,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="An answer option (repeat)")] = None,
    task_type: Annotated[str, typer.Option(help="Task type label, e.g. location")] = "",
    domain_id: Annotated[int | None, typer.Option(help="ROS_DOMAIN_ID of the running graph")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 30.0,
) -> None:
    """Ask the running graph a question; it answers from memory only, or abstains."""
    from taskmem_nodes.client import AskStatus, TaskMemClient

    with TaskMemClient(domain_id=domain_id) as client:
        outcome = client.ask(question, option or [], task_type=task_type, timeout=timeout)
    console.print(f"[bold]{outcome.status.value}[/]: {outcome.answer}")
    console.print(f"memories: {', '.join(outcome.memory_ids) or 'none'}; {outcome.explanation}")
    if outcome.status not in (AskStatus.ANSWERED, AskStatus.ABSTAINED):
        raise typer.Exit(1)


@memories_app.command("list")
def memories_list(
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    limit: Annotated[int, typer.Option(help="Most rows to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List stored memories in time order."""
    from taskmem_nodes.store import MemoryStore, StoreError

    try:
        store = MemoryStore(db, readonly=True)
    except StoreError as err:
        raise typer.BadParameter(str(err)) from None
    rows = store.memories(limit=limit)
    if as_json:
        for m in rows:
            print(json.dumps({"memory_id": m.memory_id, "clip_id": m.clip_id, "start": m.start, "end": m.end,
                              "text": m.text, "model_version": m.model_version,
                              "adapter_version": m.adapter_version}))
        return
    table = Table(title=f"{len(rows)} of {store.counts()['memories']} memories in {db}")
    for column in ("time", "memory", "model", "adapter"):
        table.add_column(column)
    for m in rows:
        table.add_row(f"{format_clock(m.start)}-{format_clock(m.end)}", m.text, m.model_version,
                      m.adapter_version or "-")
    console.print(table)


def _ensure_default_model(quiet: bool) -> Path:
    from taskmem_nodes.models.tiny import build_tiny_checkpoint

    target = default_model_dir()
    if not quiet or not (target / "config.json").exists():
        console.print(f"default memorizer checkpoint: {target}")
    return build_tiny_checkpoint(target)


@model_app.command("ensure-default")
def model_ensure_default(quiet: Annotated[bool, typer.Option(help="Print only when building")] = False) -> None:
    """Build the default memorizer checkpoint if it is missing."""
    _ensure_default_model(quiet)


@model_app.command("build-tiny")
def model_build_tiny(
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write")],
    seed: Annotated[int, typer.Option(help="Weight initialisation seed")] = 0,
) -> None:
    """Build a tiny random Qwen3-VL checkpoint (real classes, processor and Qwen tokenizer) for tests."""
    from taskmem_nodes.models.tiny import build_tiny_checkpoint

    console.print(f"built {build_tiny_checkpoint(out, seed=seed)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
