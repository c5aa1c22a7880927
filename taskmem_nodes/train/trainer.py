"""What the trainer node decides and runs, without ROS: when the robot is idle, when a task type is due for
retraining, and the Phase Two job itself (a low-priority child process, so training never stalls the graph
and a crash in training never takes the node down).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RetrainSchedule:
    """A task type is due when its task count reaches the next threshold above the count it was last trained
    at: `thresholds` (the reference: 10, 30, 50), then every `then_every` more."""

    thresholds: tuple[int, ...] = (10, 30, 50)
    then_every: int = 20

    def next_threshold(self, trained_at: int) -> int:
        for threshold in self.thresholds:
            if threshold > trained_at:
                return threshold
        last = self.thresholds[-1] if self.thresholds else 0
        steps = (trained_at - last) // self.then_every + 1
        return last + steps * self.then_every

    def due(self, counts: dict[str, int], trained_at: dict[str, int]) -> list[str]:
        return sorted(t for t, n in counts.items() if n >= self.next_threshold(trained_at.get(t, 0)))


@dataclass
class IdleDetector:
    """Idle when the idle/docked signal says so, or when no clip arrived for `idle_after` seconds."""

    idle_after: float
    started: float
    last_clip: float | None = None
    signal: bool | None = None  # the latest `idle` message; None = never received

    def clip_seen(self, now: float) -> None:
        self.last_clip = now

    def idle(self, now: float) -> bool:
        if self.signal is not None:
            return self.signal
        return now - (self.last_clip if self.last_clip is not None else self.started) >= self.idle_after


@dataclass
class JobProgress:
    stage: str = "starting"
    done: int = 0
    total: int = 0


@dataclass
class PhaseTwoJob:
    """`taskmem train phase-two --json-progress` in a child process at a lower CPU priority."""

    store: Path
    clips: Path
    out_dir: Path
    recipe: Path
    task_types: Sequence[str] = ()
    niceness: int = 10
    progress: JobProgress = field(default_factory=JobProgress)
    report: dict | None = None
    error: str = ""
    cancelled: bool = False
    _reader: threading.Thread | None = field(default=None, init=False, repr=False)

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "taskmem_nodes.cli", "train", "phase-two", "--store", str(self.store),
                   "--clips", str(self.clips), "--config", str(self.recipe), "--out", str(self.out_dir),
                   "--json-progress"]
        for task_type in self.task_types:
            command += ["--task-type", task_type]
        return command

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.out_dir / "trainer-job.log", "ab")  # noqa: SIM115 (the child writes it until it exits)
        niceness = self.niceness
        self._process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=log, text=True,
            preexec_fn=(lambda: os.nice(niceness)) if niceness else None,
        )
        log.close()
        self._reader = threading.Thread(target=self._read, name="phase-two-job", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours (a library printing to stdout)
            if not isinstance(message, dict):
                continue
            if "stage" in message:
                self.progress = JobProgress(str(message["stage"]), int(message["done"]), int(message["total"]))
            elif "report" in message:
                self.report = message["report"]
            elif "error" in message:
                self.error = str(message["error"])
        code = self._process.wait()
        if self.report is None and not self.error:
            self.error = "cancelled" if self.cancelled else f"phase two exited with code {code}; see trainer-job.log"

    @property
    def running(self) -> bool:
        """Started and not yet ended."""
        return self._reader is not None and self._reader.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """True when the job (started) has ended."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def cancel(self) -> None:
        self.cancelled = True
        if self._process.poll() is None:
            self._process.terminate()
