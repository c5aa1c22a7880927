"""Benchmark figures as PNG: Accuracy, Coverage and Precision per task type, systems side by side; memory-only
accuracy against fidelity for memorizers measured on the same seeds."""

from __future__ import annotations

import csv
from itertools import cycle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np

METRICS = ("accuracy", "coverage", "precision")


def _save(figure: plt.Figure, path: str | Path) -> Path:
    """Write `figure` as a PNG (creating its folder) and free it."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_metrics(results: dict[str, dict[str, dict[str, float]]], path: str | Path, title: str = "") -> Path:
    """`results[system][task_type][metric]` in [0, 1] (optionally `metric + "_std"` for error bars) -> a PNG
    with one panel per metric and one bar group per task type."""
    systems = list(results)
    if not systems:
        raise ValueError("nothing to plot")
    types = sorted({t for per_type in results.values() for t in per_type}, key=lambda t: (t == "overall", t))
    figure, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 4), sharey=True)
    width = 0.8 / len(systems)
    positions = np.arange(len(types))
    for axis, metric in zip(axes, METRICS):
        for k, system in enumerate(systems):
            values = [100 * results[system].get(t, {}).get(metric, np.nan) for t in types]
            errors = [100 * results[system].get(t, {}).get(f"{metric}_std", 0.0) for t in types]
            axis.bar(positions + (k - (len(systems) - 1) / 2) * width, values, width, yerr=errors, label=system,
                     capsize=2)
        axis.set_title(metric.capitalize())
        axis.set_xticks(positions, types, rotation=30, ha="right")
        axis.set_ylim(0, 100)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("%")
    axes[-1].legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def frontier_points(path: str | Path) -> list[dict]:
    """Rows of a results CSV (`memorizer,stage,floor,accuracy,fidelity`; lines starting with # are comments)."""
    with Path(path).open() as rows:
        reader = csv.DictReader(line for line in rows if not line.startswith("#"))
        points = [{**row, "floor": float(row["floor"]), "accuracy": float(row["accuracy"]),
                   "fidelity": float(row["fidelity"])} for row in reader]
    for point in points:
        if not (0.0 <= point["fidelity"] <= 1.0 and 0.0 <= point["accuracy"] <= 100.0):
            raise ValueError(f"{path}: accuracy must be a percentage and fidelity a fraction: {point}")
    return points


def plot_frontier(points: list[dict], path: str | Path, title: str = "") -> Path:
    """Memory-only accuracy against fidelity, one marker per measured memorizer setting. `points`: dicts with
    `memorizer`, `stage` (e.g. "warm start", "phase one"), `floor`, `accuracy` (%) and `fidelity` in [0, 1];
    the settings of one memorizer (its confidence floors) are joined by a line, in order of fidelity; the first
    memorizer listed is the reference, drawn heavier."""
    if not points:
        raise ValueError("nothing to plot")
    figure, axis = plt.subplots(figsize=(7.5, 5))
    markers = dict(zip(dict.fromkeys(p["stage"] for p in points), cycle("sodD^v")))
    for k, memorizer in enumerate(dict.fromkeys(p["memorizer"] for p in points)):
        series = sorted((p for p in points if p["memorizer"] == memorizer), key=lambda p: p["fidelity"])
        axis.plot([p["fidelity"] for p in series], [p["accuracy"] for p in series], marker=markers[series[0]["stage"]],
                  label=f"{memorizer} ({series[0]['stage']})", linewidth=1 if k else 2.5)
        for p in series:
            if p["floor"]:
                axis.annotate(f"floor {p['floor']:g}", (p["fidelity"], p["accuracy"]), fontsize="x-small",
                              xytext=(4, 2), textcoords="offset points")
    axis.set_xlabel("fidelity (true / stated statements)")
    axis.set_ylabel("memory-only accuracy (%)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="x-small", loc="lower left")
    if title:
        axis.set_title(title, fontsize="small")
    return _save(figure, path)
