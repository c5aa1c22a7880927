"""Benchmark figures as PNG: Accuracy, Coverage and Precision per task type, systems side by side."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np

METRICS = ("accuracy", "coverage", "precision")


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
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
