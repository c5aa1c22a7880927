"""`taskmem`: one command-line entry point that works without a robot."""

from __future__ import annotations

import json
import signal
import time
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from taskmem_nodes.paths import default_model_dir, default_world, demo_world
from taskmem_nodes.records import format_clock

app = typer.Typer(help="TaskMem: a ROS 2 memory stack that learns what to remember.", no_args_is_help=True)
memories_app = typer.Typer(help="Inspect the memory store.", no_args_is_help=True)
model_app = typer.Typer(help="Memorizer checkpoints.", no_args_is_help=True)
sim_app = typer.Typer(help="The simulated world: streams with ground truth and tasks.", no_args_is_help=True)
train_app = typer.Typer(help="Training the memorization policy.", no_args_is_help=True)
adapters_app = typer.Typer(help="Phase Two adapters: released versions, the one in use, rollback.",
                           no_args_is_help=True)
app.add_typer(memories_app, name="memories")
app.add_typer(model_app, name="model")
app.add_typer(sim_app, name="sim")
app.add_typer(train_app, name="train")
app.add_typer(adapters_app, name="adapters")
console = Console()

DEFAULT_DB = Path("~/.ros/taskmem/memory.db")
DEFAULT_ADAPTERS = Path("~/.ros/taskmem/phase_two/adapters")


@app.command()
def demo(
    video: Annotated[Path | None, typer.Option(
        help="Stream to replay: a simulated-world file (default sim/worlds/demo.yaml) or a video/bag "
             "(e.g. .cache/data/vtest.avi)")] = None,
    rate: Annotated[float, typer.Option(help="Replay speed (1 = real time)")] = 4.0,
    db: Annotated[Path | None, typer.Option(help="Database file (default: a fresh one in a temp dir)")] = None,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 600.0,
) -> None:
    """Run the whole node graph on a recorded stream; print memories and answers."""
    from taskmem_nodes.demo import run_demo

    video = video or demo_world()
    if not video.exists():
        raise typer.BadParameter(f"{video} does not exist (videos come from scripts/setup.sh)")
    _ensure_default_model(quiet=True)
    run_demo(video, rate=rate, database=db, timeout=timeout, console=console)


@app.command()
def run(
    replay: Annotated[Path | None, typer.Option(help="Play this video/folder/bag as the camera")] = None,
    rate: Annotated[float, typer.Option(help="Replay speed")] = 1.0,
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    model: Annotated[str, typer.Option(help="Qwen3-VL checkpoint directory ('' = default)")] = "",
    model_config: Annotated[Path | None, typer.Option(
        help="Memorizer parameters layered over taskmem.yaml (config/models/*.yaml)")] = None,
    domain_id: Annotated[int | None, typer.Option(help="ROS_DOMAIN_ID (default: $ROS_DOMAIN_ID or random)")] = None,
) -> None:
    """Bring the graph up without ROS 2 launch (same graph and parameter files as the launch file)."""
    from taskmem_nodes.graph import storage_overrides
    from taskmem_nodes.memorizer import memorizer_parameters
    from taskmem_nodes.runner import GraphRunner

    overrides = storage_overrides(db)
    if model_config:
        try:
            overrides["memorizer"] = memorizer_parameters(model_config)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    if model:
        overrides.setdefault("memorizer", {})["model_path"] = model
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


@adapters_app.command("list")
def adapters_list(
    adapters: Annotated[Path, typer.Option(help="The trainer's adapters folder (<data_dir>/adapters)")] = (
        DEFAULT_ADAPTERS),
) -> None:
    """Released adapters, what each was trained for and how it passed the gate; * = in use."""
    from taskmem_nodes.adapters import AdapterRegistry

    registry = AdapterRegistry(adapters)
    current = registry.current_version
    table = Table("", "version", "task types", "layer", "scale", "win rate", "tasks from-to")
    for info in registry.released():
        window = "-".join(format_clock(t) for t in info.data_window) or "-"
        table.add_row("*" if info.version == current else "", info.version, ", ".join(info.task_types),
                      str(info.layer), f"{info.scale:g}", f"{info.validation.get('win_rate', 0.0):.2f}", window)
    console.print(table)
    console.print(f"in use: {current or 'none (base policy)'}")


@adapters_app.command("use")
def adapters_use(
    version: Annotated[str, typer.Argument(help="A released version; '' = the base policy")],
    adapters: Annotated[Path, typer.Option(help="The trainer's adapters folder (<data_dir>/adapters)")] = (
        DEFAULT_ADAPTERS),
    domain_id: Annotated[int | None, typer.Option(help="ROS_DOMAIN_ID of the running graph")] = None,
) -> None:
    """Roll back (or forward) to a released adapter: the running trainer announces it and the memorizer
    hot-swaps; with no graph running, the choice is recorded and announced when the trainer starts."""
    from taskmem_nodes.adapters import AdapterRegistry
    from taskmem_nodes.client import TaskMemClient
    from taskmem_nodes.models.steering import AdapterError

    with TaskMemClient(domain_id=domain_id) as client:
        answer = client.set_adapter(version)
    if answer is not None:
        success, message = answer
        console.print(message)
        if not success:
            raise typer.Exit(1)
        return
    try:
        AdapterRegistry(adapters).use(version, reason="taskmem adapters use")
    except AdapterError as err:
        raise typer.BadParameter(str(err)) from None
    console.print(f"no trainer answered; {version or 'the base policy'} is recorded in {adapters} and will be "
                  "announced when the trainer starts")


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


def _open_store(db: Path, *, readonly: bool = True):
    from taskmem_nodes.store import MemoryStore, StoreError

    try:
        return MemoryStore(db, readonly=readonly)
    except StoreError as err:
        raise typer.BadParameter(str(err)) from None


def _memory_json(m) -> str:
    return json.dumps({"memory_id": m.memory_id, "clip_id": m.clip_id, "start": m.start, "end": m.end,
                       "text": m.text, "kind": m.kind, "entity_ids": list(m.entity_ids),
                       "model_version": m.model_version, "adapter_version": m.adapter_version}, ensure_ascii=False)


def _memory_table(title: str, rows, scores=None) -> Table:
    table = Table(title=title)
    for column in ("time", "memory", "kind", "model", "adapter", *(("score",) if scores else ())):
        table.add_column(column)
    for i, m in enumerate(rows):
        table.add_row(f"{format_clock(m.start)}-{format_clock(m.end)}", m.text, m.kind, m.model_version,
                      m.adapter_version or "-", *((f"{scores[i]:.3f}",) if scores else ()))
    return table


@memories_app.command("list")
def memories_list(
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    limit: Annotated[int, typer.Option(help="Most rows to show")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List stored memories in time order."""
    store = _open_store(db)
    rows = store.memories(limit=limit)
    if as_json:
        for m in rows:
            print(_memory_json(m))
        return
    console.print(_memory_table(f"{len(rows)} of {store.counts()['active_memories']} memories in {db}", rows))


@memories_app.command("search")
def memories_search(
    query: Annotated[str, typer.Argument(help="Words to look for ('' = most recent, or nearest to --around)")],
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    k: Annotated[int, typer.Option(help="Memories to return")] = 8,
    mode: Annotated[str, typer.Option(help="hybrid | text | vector")] = "hybrid",
    start: Annotated[float | None, typer.Option(help="Only memories ending at or after this time (s)")] = None,
    end: Annotated[float | None, typer.Option(help="Only memories starting at or before this time (s)")] = None,
    around: Annotated[float | None, typer.Option(help="Also rank by closeness to this time (s)")] = None,
    around_seconds: Annotated[float, typer.Option(help="Window half-width for --around")] = 600.0,
    entity: Annotated[list[str] | None, typer.Option(help="Only memories mentioning this entity (repeat)")] = None,
    task_type: Annotated[str, typer.Option(help="Only memories written under an adapter for this task type")] = "",
    fts: Annotated[bool, typer.Option(help="The query is an FTS5 expression (e.g. 'red NEAR mug')")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Recall memories as the store node does: BM25 and MiniLM vectors fused, with filters."""
    from taskmem_nodes.store import RecallQuery, StoreError

    store = _open_store(db)
    embed = None
    if mode != "text" and store.counts()["memory_vectors"]:
        from taskmem_nodes.store.embedder import TextEmbedder

        embed = TextEmbedder().embed_query
    try:
        result = store.search(RecallQuery(
            text=query, k=k, start=start, end=end, around=around, around_seconds=around_seconds,
            entity_ids=tuple(entity or ()), task_type=task_type, mode=mode, syntax="fts" if fts else "words"),
            embed=embed)
    except StoreError as err:
        console.print(f"[red]{err}[/]")
        raise typer.Exit(1) from None
    if as_json:
        for m, score in result.hits:
            print(json.dumps({**json.loads(_memory_json(m)), "score": score}, ensure_ascii=False))
        return
    for note in result.notes:
        console.print(f"[dim]{note}[/]")
    console.print(_memory_table(f"{len(result.hits)} memories for {query!r}", [m for m, _ in result.hits],
                                [s for _, s in result.hits]))


@memories_app.command("export")
def memories_export(
    out: Annotated[Path, typer.Option(help="JSONL file to write ('-' = standard output)")],
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
) -> None:
    """Write every memory as one JSON object per line (import reads it back unchanged)."""
    import sys

    from tqdm import tqdm

    from taskmem_nodes.store.jsonl import export_memories

    store = _open_store(db)
    total = store.counts()["memories"]
    if str(out) == "-":
        export_memories(store, sys.stdout)
        return
    with open(out, "w", encoding="utf-8") as target, tqdm(total=total, unit="memory", desc="export") as bar:
        written = export_memories(store, target, bar.update)
    console.print(f"exported {written} memories to {out}")


@memories_app.command("import")
def memories_import(
    source: Annotated[Path, typer.Argument(help="JSONL file written by `taskmem memories export`")],
    db: Annotated[Path, typer.Option(help="Database file (created if missing)")] = DEFAULT_DB,
) -> None:
    """Import exported memories; ids already stored are skipped, bad lines reported (exit code 1)."""
    from tqdm import tqdm

    from taskmem_nodes.store.jsonl import import_memories

    if not source.is_file():
        raise typer.BadParameter(f"{source} is not a file")
    store = _open_store(db, readonly=False)
    with open(source, "rb") as lines, tqdm(total=source.stat().st_size, unit="B", unit_scale=True,
                                           desc="import") as bar:
        report = import_memories(store, _counted(lines, bar))
    store.close()
    console.print(f"imported {report.imported}, already stored {report.already_stored}, "
                  f"refused {len(report.refused)}")
    for number, reason in report.refused[:20]:
        console.print(f"[red]line {number}[/]: {reason}")
    if report.refused:
        raise typer.Exit(1)


def _counted(lines, bar):
    for line in lines:
        bar.update(len(line))
        yield line


@memories_app.command("embed")
def memories_embed(
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    reset: Annotated[bool, typer.Option(help="Forget every vector first (e.g. to change the embedding model)")
                     ] = False,
    batch: Annotated[int, typer.Option(help="Memories embedded per batch")] = 64,
) -> None:
    """Embed the memories that have no vector yet, as the store node's worker does (e.g. after an import).
    Writes the database: run it while the store node is stopped (one writer)."""
    from tqdm import tqdm

    from taskmem_nodes.store.embedder import TextEmbedder, embed_pending

    store = _open_store(db, readonly=False)
    if reset:
        store.reset_embeddings()
    embedder = TextEmbedder()
    with tqdm(total=store.counts()["pending_embeddings"], unit="memory", desc="embed") as bar:
        while stored := embed_pending(store, embedder.embed, embedder.name, batch):
            bar.update(stored)
    console.print(f"{store.counts()['memory_vectors']} memories embedded with {embedder.name}")
    store.close()


@memories_app.command("stats")
def memories_stats(
    db: Annotated[Path, typer.Option(help="Database file")] = DEFAULT_DB,
    as_json: Annotated[bool, typer.Option("--json", help="As one JSON object")] = False,
) -> None:
    """Counts, time span, embedding state, kinds and size of a memory database."""
    store = _open_store(db)
    counts = store.counts()
    span = store.db.execute("SELECT min(start_time), max(end_time) FROM memories WHERE replaced_by IS NULL").fetchone()
    kinds = dict(store.db.execute("SELECT kind, count(*) FROM memories WHERE replaced_by IS NULL GROUP BY kind"))
    stats = {**counts, "schema_version": store.schema_version(), "embedding_model": store.embedding_model(),
             "vector_lists": 0 if store.vectors.centroids is None else len(store.vectors.centroids),
             "kinds": kinds, "adapter_versions": [a["adapter_version"] for a in store.adapters()],
             "first_start": span[0], "last_end": span[1], "payload_bytes": store.payload_bytes(),
             "file_bytes": store.size_bytes()}
    if as_json:
        print(json.dumps(stats))
        return
    table = Table(title=f"memory store {db}")
    table.add_column("")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="synthetic | videomme | egolife | egotempo")] = "synthetic",
    seed: Annotated[list[int] | None, typer.Option("--seed", help="World seed (repeat; default 0 1)")] = None,
    task_mix: Annotated[str, typer.Option(help="Task type weights, e.g. location=3,count=1 ('' = world file's)")] = "",
    systems: Annotated[str, typer.Option(help="Comma-separated: oracle, oracle-half, oracle-budget, "
                                              "oracle-budget-focused, policy, captioner, no-memory, "
                                              "policy:<label> (a checkpoint given as --model <label>=<dir>)")] = (
        "oracle,captioner,no-memory"),
    world: Annotated[Path | None, typer.Option(help="World file (default sim/worlds/default.yaml)")] = None,
    streams: Annotated[int, typer.Option(help="Synthetic streams per seed")] = 16,
    minutes: Annotated[float | None, typer.Option(help="Synthetic stream length (default: the world's)")] = None,
    tasks_per_minute: Annotated[float | None, typer.Option(help="Synthetic questions per minute")] = None,
    annotations: Annotated[Path | None, typer.Option(help="Published dataset: annotation file")] = None,
    videos: Annotated[Path | None, typer.Option(help="Published dataset: folder of local videos")] = None,
    limit: Annotated[int | None, typer.Option(help="Published dataset: at most this many streams")] = None,
    recall: Annotated[str, typer.Option(help="whole (the paper's protocol) | retrieval (top-k from the store)")] = (
        "whole"),
    context_tokens: Annotated[int, typer.Option(help="Retrieval: answer context budget in tokens (0 = all recalled)")
                              ] = 0,
    max_memories: Annotated[int, typer.Option(help="Retention budget: active memories kept (0 = unbounded)")] = 0,
    keep_recent: Annotated[float, typer.Option(help="Retention: seconds of recent memory never consolidated")
                           ] = 60.0,
    summary_span: Annotated[float, typer.Option(help="Retention: seconds per first-level summary")] = 60.0,
    reference: Annotated[str, typer.Option(help="Also report paired accuracy differences against this system")] = "",
    focus: Annotated[list[str] | None, typer.Option(
        help="With --reference: also pool the differences over these task types and over the others (repeat)")
                     ] = None,
    judge: Annotated[str, typer.Option(help="Open answers: normalized | openai:<base_url>#<model>")] = "normalized",
    model: Annotated[list[str] | None, typer.Option(
        help="Qwen3-VL checkpoint for policy/captioner (default: the shipped model); repeat as <label>=<dir> "
             "for systems policy:<label>")] = None,
    model_config: Annotated[Path | None, typer.Option(
        help="Memorizer parameters of policy/captioner layered over taskmem.yaml (config/models/*.yaml)")] = None,
    adapter: Annotated[list[str] | None, typer.Option(
        help="<label>=<file>: system policy:<label> runs the default model (or --model <label>=<dir>) steered "
             "by this Phase Two adapter")] = None,
    adapter_scale: Annotated[list[str] | None, typer.Option(
        help="<label>=<scale>: apply the --adapter of policy:<label> at this scale instead of its own")] = None,
    min_confidence: Annotated[list[str] | None, typer.Option(
        help="Memorizer min_statement_confidence of policy (default: taskmem.yaml's); repeat as <label>=<value> "
             "for systems policy:<label>")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/bench-<time>)")] = None,
) -> None:
    """The streaming benchmark: memory written clip by clip, tasks answered at arrival from memory only."""
    from tqdm import tqdm

    from taskmem_nodes.answerer import LexicalAnswerer
    from taskmem_nodes.bench.harness import BenchConfig
    from taskmem_nodes.bench.judges import make_judge
    from taskmem_nodes.bench.runner import DatasetSpec, count_clips, memorizer_settings, run_benchmark
    from taskmem_nodes.sim.dataset import load_sim_config
    from taskmem_nodes.sim.tasks import parse_mix
    from taskmem_nodes.store.retention import RetentionConfig

    seeds = seed or [0, 1]
    names = [s.strip() for s in systems.split(",") if s.strip()]
    try:
        duration = None if minutes is None else minutes * 60
        world_config, task_config = load_sim_config(world or default_world(), duration_s=duration)
        if task_mix:
            task_config.mix = parse_mix(task_mix)
        if tasks_per_minute is not None:
            task_config.per_minute = tasks_per_minute
        spec = DatasetSpec(dataset, world_config, task_config, streams, annotations, videos, limit)
        open_judge = make_judge(judge)
        retention = RetentionConfig(max_memories=max_memories, keep_recent_seconds=keep_recent,
                                    summary_span_seconds=summary_span) if max_memories else None
        config = BenchConfig(recall=recall, context_tokens=context_tokens, retention=retention)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    if dataset != "synthetic":
        seeds = seeds[:1]  # a published dataset is one fixed set of streams
    main_model = next((m for m in model or [] if "=" not in m), "")
    labelled = dict(m.split("=", 1) for m in model or [] if "=" in m)
    extra_models = {k: memorizer_settings(v) for k, v in labelled.items()}
    main_settings = memorizer_settings(main_model, model_config)
    for item in adapter or []:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise typer.BadParameter(f"--adapter {item!r}: write <label>=<adapter file> (an existing file)")
        extra_models[label] = {**extra_models.get(label, main_settings), "adapter": path}
    for item in adapter_scale or []:
        label, sep, value = item.partition("=")
        try:
            if not sep or "adapter" not in extra_models.get(label, {}):
                raise ValueError
            extra_models[label]["adapter_scale"] = float(value)
        except ValueError:
            raise typer.BadParameter(f"--adapter-scale {item!r}: write <label>=<scale> for a label given "
                                     "--adapter") from None
    for item in min_confidence or []:
        label, sep, value = item.rpartition("=")
        try:
            if sep and label not in extra_models:
                raise ValueError
            (extra_models[label] if sep else main_settings)["min_statement_confidence"] = float(value)
        except ValueError:
            raise typer.BadParameter(f"--min-confidence {item!r}: write <value>, or <label>=<value> for a label "
                                     "given --model or --adapter") from None
    if ({"policy", "captioner"} & set(names) or extra_models) and not main_model:
        _ensure_default_model(quiet=True)
    tokenizer = _token_counter()
    out = out or Path("runs") / f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    with tqdm(total=count_clips(spec, seeds, names), unit="clip", desc="memorizing") as bar:
        try:
            report = run_benchmark(spec, seeds, names, LexicalAnswerer(), open_judge, config,
                                   model_settings=main_settings, extra_models=extra_models,
                                   count_tokens=tokenizer,
                                   on_clip=bar.update, reference=reference)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    report.focus = list(focus or [])
    try:
        paths = report.write(out)
    except ValueError as err:  # a focus type that was not asked
        raise typer.BadParameter(str(err)) from None
    console.print(report.to_markdown())
    console.print(f"wrote {', '.join(str(p) for p in paths.values())}")


@app.command("bench-store")
def bench_store(
    size: Annotated[list[int] | None, typer.Option("--size", help="Memories to measure at (repeat; default 10k 100k)")
                    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the database, the Milvus Lite file and results.jsonl "
                                           "(a later run resumes from what is there)")] = Path("runs/bench-store"),
    distinct: Annotated[int, typer.Option(help="Distinct sentences embedded for real with MiniLM")] = 4000,
    queries: Annotated[int, typer.Option(help="Queries timed per mode")] = 200,
    probes: Annotated[int, typer.Option(help="Inverted lists read per vector query (ours and Milvus IVF_FLAT)")] = 16,
    milvus: Annotated[bool, typer.Option(help="Also run Milvus Lite on the same memories and queries")] = True,
) -> None:
    """The store at scale against Milvus Lite: ingest, recall latency, recall@10 vs exact, size, RSS."""
    from tqdm import tqdm

    from taskmem_nodes.store.benchmark import default_threads, markdown_table, run_store_benchmark

    default_threads()
    from taskmem_nodes.store.embedder import TextEmbedder

    sizes = sorted(size or [10_000, 100_000])
    if sizes[0] <= 0:
        raise typer.BadParameter("sizes must be positive")
    embedder = TextEmbedder(threads=1)
    with tqdm(total=sizes[-1], unit="memory", desc="ingest") as bar:
        results = run_store_benchmark(
            out, sizes, embed=embedder.embed, embed_query=embedder.embed, distinct=distinct, queries=queries,
            probes=probes, milvus=milvus, on_progress=bar.update,
            report=lambda r: tqdm.write(f"{r.size:,}: " + ", ".join(f"{k}={v:.3g}" for k, v in r.figures.items())))
    print(markdown_table(results, probes))
    console.print(f"figures appended to {out / 'results.jsonl'}")


def _token_counter():
    """Memory tokens are counted with the real Qwen tokenizer (as the paper's per-entry budget is)."""
    from taskmem_nodes.models.qwen_tokenizer import build_qwen_tokenizer

    tokenizer = build_qwen_tokenizer()
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


@sim_app.command("export")
def sim_export(
    out: Annotated[Path, typer.Option(help="Folder to write stream.avi, stream.mcap, tasks.json, truth.json")],
    seed: Annotated[int, typer.Option(help="World seed")] = 0,
    world: Annotated[Path | None, typer.Option(help="World file (default sim/worlds/default.yaml)")] = None,
    task_mix: Annotated[str, typer.Option(help="Task type weights, e.g. location=3,count=1")] = "",
    video: Annotated[bool, typer.Option(help="Write the MJPG video")] = True,
    bag: Annotated[bool, typer.Option(help="Write the rosbag2 (.mcap)")] = True,
) -> None:
    """Write a simulated stream as a video, a rosbag2, and its tasks and per-clip ground truth as JSON."""
    from taskmem_nodes.sim.dataset import export_stream, load_sim_config, make_stream
    from taskmem_nodes.sim.tasks import parse_mix

    try:
        world_config, task_config = load_sim_config(world or default_world(), seed=seed)
        if task_mix:
            task_config.mix = parse_mix(task_mix)
        written = export_stream(make_stream(world_config, task_config, f"sim{seed}"), out, video=video, bag=bag)
    except (ValueError, FileExistsError) as err:
        raise typer.BadParameter(str(err)) from None
    for kind, path in written.items():
        console.print(f"{kind}: {path}")


@sim_app.command("preview")
def sim_preview(
    out: Annotated[Path, typer.Option(help="PNG to write")] = Path("sim-preview.png"),
    seed: Annotated[int, typer.Option(help="World seed")] = 0,
    clips: Annotated[int, typer.Option(help="Clips to show (first and last frame of each)")] = 6,
    world: Annotated[Path | None, typer.Option(help="World file (default sim/worlds/default.yaml)")] = None,
) -> None:
    """A contact sheet of the first clips' frames, with each clip's ground truth printed here."""
    from taskmem_nodes.sim.dataset import load_sim_config, preview_sheet

    world_config, _ = load_sim_config(world or default_world(), seed=seed)
    for line in preview_sheet(world_config, clips, out):
        console.print(line)
    console.print(f"wrote {out}")


@train_app.command("warm-start")
def train_warm_start(
    config: Annotated[Path, typer.Option(help="Recipe file (config/train/warm_start_tiny.yaml)")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: the recipe's out_dir)")] = None,
    steps: Annotated[int | None, typer.Option(help="Override the recipe's steps")] = None,
) -> None:
    """Phase One step 1: supervised warm start on the simulated world (resumes from <out>/last)."""
    from taskmem_nodes.train import warm_start

    final = _run_recipe(warm_start.WarmStartConfig, warm_start.train_warm_start, config, out, steps,
                        lambda step, loss: {"loss": f"{loss:.3f}"})
    console.print(f"final checkpoint: {final}; loss curve: {final.parent / 'loss.png'}")


@train_app.command("phase-one")
def train_phase_one(
    config: Annotated[Path, typer.Option(help="Recipe file (config/train/phase_one_tiny.yaml)")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default: the recipe's out_dir)")] = None,
    steps: Annotated[int | None, typer.Option(help="Override the recipe's steps")] = None,
    init: Annotated[Path | None, typer.Option(help="Override the recipe's init_checkpoint")] = None,
) -> None:
    """Phase One step 2: GSPO with the paper's rewards on the simulated world (resumes from <out>/last)."""
    from taskmem_nodes.train import gspo

    def report_validation(step: int, figures: dict) -> None:
        console.print(f"held-out at step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()),
                      soft_wrap=True)

    final = _run_recipe(gspo.PhaseOneConfig, partial(gspo.train_phase_one, on_validation=report_validation),
                        config, out, steps,
                        lambda step, s: {k: f"{s[k]:.2f}" for k in ("reward", "correct", "supervised_loss") if k in s},
                        init_checkpoint=str(init) if init else None)
    best = final.parent / "best"
    console.print(f"final checkpoint: {final}" + (f"; best held-out: {best}" if best.exists() else "")
                  + f"; reward curves: {final.parent / 'rewards.png'}")


def _numbering(value: str) -> str:
    """`--numbered`: '' or one of the warm start's numberings."""
    from taskmem_nodes.train.examples import NUMBERINGS, SCAN_NUMBERINGS

    if value not in SCAN_NUMBERINGS:
        raise typer.BadParameter(f"{', '.join(map(repr, NUMBERINGS))} or '' (none), not {value!r}")
    return value


@train_app.command("inspect")
def train_inspect(
    checkpoint: Annotated[Path, typer.Option(help="Policy checkpoint (e.g. runs/warm-start-tracker/final)")],
    clips: Annotated[int, typer.Option(help="Held-out simulated clips")] = 40,
    temperature: Annotated[float, typer.Option(help="0 = greedy; else sampled")] = 0.0,
    rollouts: Annotated[int, typer.Option(help="Samples per clip when sampling")] = 4,
    tracker: Annotated[bool, typer.Option(help="Prompts with the simulated tracker's ids")] = True,
    numbered: Annotated[str, typer.Option(help="The policy's scan numbers units: 'running' or 'size' "
                                                "(its recipe's numbered_units); '' none",
                                           callback=_numbering)] = "",
) -> None:
    """Which statements of the policy's memories are true, by kind (people, objects and the rest)."""
    from tqdm import tqdm

    from taskmem_nodes.train.inspect import statement_truth
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    policy = RestrictedPolicy.load(checkpoint)
    with tqdm(total=clips, unit="clip", desc="inspecting") as bar:
        counts = statement_truth(policy, clips, temperature=temperature, rollouts=rollouts, tracker=tracker,
                                 numbered=numbered, on_clip=bar.update)
    for kind in ("room", "person", "other"):
        console.print(f"{kind} statements true: {counts[kind + '_true']} of {counts[kind + '_said']}")
    console.print(f"person statements naming someone the clip shows: {counts['person_id_true']} of "
                  f"{counts['person_said']}")
    console.print(f"new facts stated: {counts['new_stated']} of {counts['new_facts']}; entries {counts['entries']}, "
                  f"unparsed {counts['unparsed']}")
    console.print(f"thinking word for word the target's: {counts['scan_right']} of {counts['entries']}; of these "
                  f"the memory states exactly the target's facts: {counts['written_right']}")
    console.print(f"the targets' object groups: count right {counts['count_right']}, count wrong "
                  f"{counts['count_wrong']}, not stated {counts['groups_missed']}")


@train_app.command("counting")
def train_counting(
    checkpoint: Annotated[Path, typer.Option(help="Policy checkpoint (e.g. runs/warm-start/final)")],
    clips_per_world: Annotated[int, typer.Option(help="Clips of each of the three held-out worlds (0 = all)")] = 0,
    numbered: Annotated[str, typer.Option(help="The policy's scan numbers units: 'running' or 'size' "
                                                "(its recipe's numbered_units); '' none",
                                           callback=_numbering)] = "",
) -> None:
    """Whether the policy writes what its scan read: each group's count (by the group's size) and each person's
    colour, teacher-forced on held-out clips (the target up to that word, then the policy's most likely token)."""
    from tqdm import tqdm

    from taskmem_nodes.train.counting import written_right
    from taskmem_nodes.train.policy_model import RestrictedPolicy

    policy = RestrictedPolicy.load(checkpoint)
    with tqdm(unit="clip", desc="teacher-forcing") as bar:
        tally = written_right(policy, clips_per_world=clips_per_world, numbered=numbered, on_clip=bar.update)
    table = Table("word of the memory", "written right", "of")
    for row, (right, total) in tally.items():
        table.add_row(row, str(right), str(total))
    console.print(table)


@train_app.command("calibration")
def train_calibration(
    model: Annotated[str, typer.Option(help="Memorizer checkpoint ('' = the default model)")] = "",
    clips_per_world: Annotated[int, typer.Option(help="Clips of each of the four held-out worlds")] = 15,
    floor: Annotated[list[float] | None, typer.Option("--floor", help="Confidence floor to tabulate (repeat)")] = None,
) -> None:
    """What the memorizer's statements are (new, repeated, false, copied; how the false groups and people are
    wrong) and whether its confidence tells the wrong ones from the true ones (what the confidence floor,
    `min_statement_confidence`, relies on): held-out streams, played the deployed way, judged by ground truth."""
    from tqdm import tqdm

    from taskmem_nodes.bench.runner import memorizer_settings
    from taskmem_nodes.memorizer import backend_settings, load_backend
    from taskmem_nodes.train.calibration import (
        CALIBRATION_SEEDS,
        DEFAULT_FLOORS,
        ERRORS,
        breakdown,
        kept_above,
        score_statements,
        separation,
    )

    if not model:
        _ensure_default_model(quiet=True)
    backend = load_backend("transformers", **backend_settings(memorizer_settings(model)))
    backend.load()
    with tqdm(total=clips_per_world * len(CALIBRATION_SEEDS), unit="clip", desc="memorizing") as bar:
        scored = score_statements(backend, clips_per_world=clips_per_world, on_clip=bar.update)
    clips = clips_per_world * len(CALIBRATION_SEEDS)
    statements = Table("", "said", "new", "repeated", "false", "copied",
                       title=f"statements after the room, {clips} clips: true (new or repeated) and false (copied "
                             "from a memory shown or not)", title_justify="left")
    names = {"person": "people", "group": "object groups", "other": "other"}
    rows = breakdown(scored)
    for kind, row in rows.items():
        statements.add_row(names[kind], *(str(row[key]) for key in ("said", "new", "repeated", "false", "copied")))
    console.print(statements)
    for kind, errors in ERRORS.items():
        console.print(f"false {names[kind]}: " + ", ".join(f"{rows[kind][key]} {name}" for key, name in errors.items()))
    for kinds, name in ((("person",), "people"), (("group", "other"), "objects and the rest")):
        auc = separation(scored, *kinds)
        console.print(f"{name}: confidence tells wrong from true statements with ROC AUC "
                      + ("n/a (one side empty)" if auc is None else f"{auc:.2f}"))
    table = Table("floor", "true kept", "wrong kept", "fidelity",
                  title=f"statements after the room, {clips} clips")
    for value in [0.0, *(floor or DEFAULT_FLOORS)]:
        kept = kept_above(scored, value)
        table.add_row(f"{value:.2f}" if value else "none", str(kept["true"]), str(kept["wrong"]),
                      f"{kept['fidelity']:.2f}")
    console.print(table)


@train_app.command("record-deployment")
def train_record_deployment(
    out: Annotated[Path, typer.Option(help="New folder for store.db and clips/")],
    seed: Annotated[list[int] | None, typer.Option("--seed", help="World seed (repeat; default 100)")] = None,
    streams: Annotated[int, typer.Option(help="Synthetic streams per seed")] = 2,
    minutes: Annotated[float | None, typer.Option(help="Stream length (default: the world's)")] = None,
    task_mix: Annotated[str, typer.Option(help="Task type weights, e.g. location=3,count=3,activity=1")] = "",
    world: Annotated[Path | None, typer.Option(help="World file (default sim/worlds/default.yaml)")] = None,
    model: Annotated[str, typer.Option(help="Memorizer checkpoint ('' = the default model)")] = "",
    adapter: Annotated[Path | None, typer.Option(
        help="Steering adapter the memorizer runs with (a robot after a Phase Two release)")] = None,
) -> None:
    """A simulated deployment for Phase Two: the memorizer streams synthetic worlds, tasks of the mix arrive,
    are answered from memory and logged; every clip is archived."""
    from tqdm import tqdm

    from taskmem_nodes.bench.runner import memorizer_settings
    from taskmem_nodes.memorizer import backend_settings, load_backend
    from taskmem_nodes.models.steering import AdapterError, SteeringAdapter
    from taskmem_nodes.sim.dataset import load_sim_config
    from taskmem_nodes.sim.tasks import parse_mix
    from taskmem_nodes.train.deployment import record_simulated_deployment

    seeds = seed or [100]
    try:
        world_config, task_config = load_sim_config(world or default_world(),
                                                    duration_s=None if minutes is None else minutes * 60)
        if task_mix:
            task_config.mix = parse_mix(task_mix)
        steering = None if adapter is None else SteeringAdapter.load(adapter)  # fails before the model loads
    except ValueError as err:  # AdapterError included
        raise typer.BadParameter(str(err)) from None
    if not model:
        _ensure_default_model(quiet=True)
    backend = load_backend("transformers", **backend_settings(memorizer_settings(model)))
    backend.load()
    if steering is not None:
        try:
            backend.set_adapter(steering)
        except AdapterError as err:
            raise typer.BadParameter(str(err)) from None
    total = streams * len(seeds) * round(world_config.duration_s / world_config.clip_seconds)
    with tqdm(total=total, unit="clip", desc="streaming") as bar:
        try:
            counts = record_simulated_deployment(out, backend, world_config, task_config, seeds=seeds,
                                                 streams=streams, on_clip=bar.update)
        except FileExistsError as err:
            raise typer.BadParameter(str(err)) from None
    console.print(f"{out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))


@train_app.command("phase-two-headroom")
def train_phase_two_headroom(
    deployment: Annotated[Path, typer.Option(help="The simulated deployment the run learned from")],
    run: Annotated[Path, typer.Option(help="The phase-two run's --out folder (its pairs.json)")],
    task_type: Annotated[list[str] | None, typer.Option(
        help="Rate usefulness for this task type (repeat; default: the types the clips were judged for)")] = None,
) -> None:
    """What the run's sampled candidates could add: memory-only accuracy on the training clips' tasks with the
    deployment's memories, the candidate most useful for the task types, and the most correct candidate."""
    from taskmem_nodes.train.deployment import Deployment
    from taskmem_nodes.train.headroom import CHOICES, candidate_headroom
    from taskmem_nodes.train.phase_two import PAIRS_FILE, load_sampled

    try:
        data = Deployment.load(deployment)
        sampled = load_sampled(run / PAIRS_FILE)
        figures = candidate_headroom(data, sampled, task_type or sorted({c.task_type for c in sampled}))
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    if figures is None:
        raise typer.BadParameter(f"{deployment}: no logged task has a known answer (not a simulated deployment)")
    types = sorted(figures[f"{CHOICES[0]}_by_type"])
    table = Table("memories", "overall", *types,
                  title=f"{figures['tasks']} tasks with evidence in {len(sampled)} training clips, accuracy %")
    for name in CHOICES:
        table.add_row(name, f"{100 * figures[name]:.1f}",
                      *(f"{100 * figures[f'{name}_by_type'][t]:.1f}" for t in types))
    console.print(table)


@train_app.command("phase-two")
def train_phase_two(
    deployment: Annotated[Path | None, typer.Option(help="Folder with store.db and clips/ (a recorded deployment)")
                          ] = None,
    store: Annotated[Path | None, typer.Option(help="A robot's store file (with --clips, instead of --deployment)")
                     ] = None,
    clips: Annotated[Path | None, typer.Option(help="The trainer node's clip archive")] = None,
    config: Annotated[Path, typer.Option(help="Recipe file")] = Path("config/train/phase_two_answers_tiny.yaml"),
    out: Annotated[Path | None, typer.Option(help="Output folder (default: the recipe's out_dir)")] = None,
    task_type: Annotated[list[str] | None, typer.Option(help="Train for this task type only (repeat)")] = None,
    json_progress: Annotated[bool, typer.Option(help="Progress and report as JSON lines (for the trainer node)")
                             ] = False,
) -> None:
    """Phase Two offline: preferences from the task log, DPO of a steering vector, the evaluation gate; an
    adapter that passes is released into <out>/adapters and made current."""
    from tqdm import tqdm

    from taskmem_nodes.train.deployment import Deployment
    from taskmem_nodes.train.phase_two import PhaseTwoConfig, run_phase_two

    overrides = {k: v for k, v in (("out_dir", str(out) if out else None), ("task_types", task_type)) if v}
    try:
        recipe = PhaseTwoConfig.from_yaml(config, **overrides)
        if (deployment is None) == (store is None or clips is None):
            raise ValueError("give either --deployment or both --store and --clips")
        data = Deployment.load(deployment) if deployment else Deployment.from_files(store, clips)
    except (OSError, ValueError, TypeError) as err:
        raise typer.BadParameter(str(err)) from None
    bars = []

    def progress(stage: str, total: int):
        if json_progress:
            done = [0]
            print(json.dumps({"stage": stage, "done": 0, "total": total}), flush=True)

            def tick():
                done[0] += 1
                print(json.dumps({"stage": stage, "done": done[0], "total": total}), flush=True)

            return tick
        if bars:
            bars[-1].close()
        bars.append(tqdm(total=total, desc=stage, unit="step" if "DPO" in stage else "clip"))
        return bars[-1].update

    if not recipe.policy:
        _ensure_default_model(quiet=True)
    try:
        report = run_phase_two(data, recipe, progress=progress)
    except ValueError as err:
        if json_progress:
            print(json.dumps({"error": str(err)}), flush=True)
            raise typer.Exit(1) from None
        raise typer.BadParameter(str(err)) from None
    finally:
        for bar in bars:
            bar.close()
    if json_progress:
        print(json.dumps({"report": report}), flush=True)
        return
    gate = report["gate"]
    verdict = "released and in use" if report["released"] else f"rejected ({gate['reason']})"
    console.print(f"adapter {report['version']} for {', '.join(report['task_types'])}: {verdict}")
    console.print(f"pairs {report['pairs']['pairs']} of {report['pairs']['clips']} clips; gate: {gate['wins']} wins, "
                  f"{gate['losses']} losses, {gate['ties']} ties; file {report['adapter']}")


@train_app.command("on-robot")
def train_on_robot(
    deployment: Annotated[Path, typer.Option(help="A recorded deployment (store.db and clips/), copied first")],
    config: Annotated[Path, typer.Option(help="The trainer's Phase Two recipe")] = Path(
        "config/train/phase_two_answers_tiny.yaml"),
    out: Annotated[Path, typer.Option(help="Working folder: the robot's files, adapters, reports, node logs")] = Path(
        "runs/on-robot"),
    threshold: Annotated[list[int] | None, typer.Option(
        help="The trainer's schedule: adapt for a task type once this many of its tasks are logged (repeat; "
             "default: config/taskmem.yaml's)")] = None,
    idle_after: Annotated[float, typer.Option(help="Seconds without a clip that count as idle")] = 10.0,
) -> None:
    """Phase Two as the robot runs it: trainer, memorizer and store nodes on a recorded deployment; the trainer
    adapts by itself when idle and due, the memorizer hot-swaps a released adapter. Prints the cost and the
    verdict."""
    from tqdm import tqdm

    from taskmem_nodes.train.on_robot import run_on_robot

    bar = tqdm(total=0, bar_format="{desc} [{elapsed}]")
    try:
        report = run_on_robot(deployment, config, out, threshold, idle_after_seconds=idle_after,
                              on_stage=lambda stage: (bar.set_description_str(f"trainer: {stage}"), bar.refresh()))
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err)) from None
    finally:
        bar.close()
    gate, graph, seconds = report["gate"], report["graph"], report["seconds"]
    console.print(f"trainer: {graph['trainer_result']} ({graph['seconds_to_verdict'] / 60:.1f} min after start-up)")
    console.print(f"task types {', '.join(report['task_types'])}; {report['pairs']['judged']} judgements, "
                  f"{report['pairs']['pairs']} pairs, {len(report['dpo'])} DPO steps; minutes: judging "
                  f"{seconds['judging'] / 60:.1f}, DPO {seconds['dpo'] / 60:.1f}, gate {seconds['gate'] / 60:.1f}")
    accuracy = gate.get("accuracy")
    if accuracy:
        console.print(f"gate: {gate['wins']} wins, {gate['losses']} losses, {gate['ties']} ties; held-out accuracy "
                      f"{accuracy['candidate']:.3f} vs {accuracy['current']:.3f} ({accuracy['tasks']} tasks)")
    if report["released"]:
        console.print(f"memorizer: adapter {graph['memorizer_adapter']} in use (swap held generation "
                      f"{graph['swap_pause_ms']:.2f} ms); next memory tagged {graph['memory_tagged']!r}")
    console.print(f"adapter file {report['adapter']}")


def _run_recipe(recipe_class, run, config: Path, out: Path | None, steps: int | None, postfix,
                **more: object) -> Path:
    """Load a training recipe with the command line's overrides and run it under a progress bar."""
    from tqdm import tqdm

    overrides = {k: v for k, v in (("out_dir", str(out) if out else None), ("steps", steps), *more.items())
                 if v is not None}
    try:
        recipe = recipe_class.from_yaml(config, **overrides)
    except (OSError, ValueError, TypeError) as err:
        raise typer.BadParameter(str(err)) from None
    with tqdm(total=getattr(recipe, "total_steps", recipe.steps), unit="step", desc=config.stem) as bar:
        def report(step, progress):
            bar.n = step
            bar.set_postfix(postfix(step, progress))
            bar.refresh()

        return run(recipe, on_step=report)


def _ensure_default_model(quiet: bool) -> Path:
    from taskmem_nodes.models.packed import ensure_default_model, is_unpacked_from
    from taskmem_nodes.paths import shipped_model_file

    target = default_model_dir()
    if not quiet or not is_unpacked_from(target, shipped_model_file()):
        console.print(f"default memorizer checkpoint: {target}")
    return ensure_default_model()


@model_app.command("ensure-default")
def model_ensure_default(quiet: Annotated[bool, typer.Option(help="Print only when expanding")] = False) -> None:
    """Expand the shipped memorizer checkpoint (models/taskmem-sim-tiny.safetensors) if missing or outdated."""
    _ensure_default_model(quiet)


@model_app.command("pack")
def model_pack(
    checkpoint: Annotated[Path, typer.Option(help="Trained policy checkpoint (e.g. runs/phase-one/final)")],
    out: Annotated[Path, typer.Option(help="Packed file to write")] = Path("models/taskmem-sim-tiny.safetensors"),
    world: Annotated[Path, typer.Option(help="World whose prompts fix the embedding rows kept")] = Path(),
) -> None:
    """Pack a trained policy into a few megabytes: its vocabulary's and prompts' embedding rows, int8 weights."""
    from taskmem_nodes.models.packed import pack
    from taskmem_nodes.sim.dataset import load_sim_config
    from taskmem_nodes.train.policy_model import RestrictedPolicy
    from taskmem_nodes.train.vocab import prompt_vocabulary

    policy = RestrictedPolicy.load(checkpoint)
    world_config, _ = load_sim_config(world if world != Path() else default_world())
    rows = set(policy.allowed.tolist()) | set(prompt_vocabulary(policy.processor, world_config,
                                                                  frames_per_clip=policy.frames_per_clip))
    figures = pack(checkpoint, out, rows)
    console.print(f"packed {checkpoint} -> {out}: {figures['bytes'] / 1e6:.1f} MB, {figures['embedding_rows']} "
                  f"embedding rows, {figures['quantized_matrices']} int8 matrices")


@model_app.command("unpack")
def model_unpack(
    packed: Annotated[Path, typer.Option(help="Packed checkpoint file (models/*.safetensors)")],
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write")],
) -> None:
    """Expand a packed policy into a standard checkpoint directory (a base for further training)."""
    from taskmem_nodes.models.packed import unpack

    try:
        console.print(f"unpacked {packed} -> {unpack(packed, out)}")
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--packed") from err


@model_app.command("build-tiny")
def model_build_tiny(
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write")],
    seed: Annotated[int | None, typer.Option(help="Weight initialisation seed (default 0, or the recipe's)")] = None,
    recipe: Annotated[Path | None, typer.Option(
        help="Warm-start recipe whose model sizes and seed to use, e.g. config/train/warm_start_tiny.yaml for "
             "the default model untrained")] = None,
) -> None:
    """Build a tiny random Qwen3-VL checkpoint (real classes, processor and Qwen tokenizer): for tests, or with
    --recipe the untrained baseline of a warm start."""
    if recipe is not None:
        from taskmem_nodes.train.warm_start import WarmStartConfig, untrained_checkpoint

        config = WarmStartConfig.from_yaml(recipe, **({} if seed is None else {"seed": seed}))
        if config.base_checkpoint:
            console.print(f"[red]{recipe} continues from {config.base_checkpoint}: it has no untrained model")
            raise typer.Exit(2)
        console.print(f"built {untrained_checkpoint(config, out)}")
        return
    from taskmem_nodes.models.tiny import build_tiny_checkpoint

    console.print(f"built {build_tiny_checkpoint(out, seed=seed or 0)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
