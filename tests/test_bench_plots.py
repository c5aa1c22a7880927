"""The benchmark's PNG: one panel per metric, a bar per system and task type."""

from pathlib import Path

import cv2
import pytest

from taskmem_nodes.bench.plots import frontier_points, plot_frontier, plot_metrics


def test_plot_is_a_png_with_content(tmp_path):
    results = {
        "oracle": {"location": {"accuracy": 0.9, "coverage": 1.0, "precision": 0.9, "accuracy_std": 0.02},
                   "overall": {"accuracy": 0.8, "coverage": 0.95, "precision": 0.84}},
        "no-memory": {"location": {"accuracy": 0.0, "coverage": 0.0, "precision": 0.0},
                      "overall": {"accuracy": 0.1, "coverage": 0.1, "precision": 1.0}},
    }
    path = plot_metrics(results, tmp_path / "plots" / "bench.png", title="synthetic, seed 0")
    image = cv2.imread(str(path))
    assert image is not None and image.shape[1] > image.shape[0] > 200
    assert image.std() > 10  # bars, axes and labels, not a blank canvas
    with pytest.raises(ValueError):
        plot_metrics({}, tmp_path / "empty.png")


def test_frontier_plot_from_the_recorded_results(tmp_path):
    points = frontier_points(Path(__file__).resolve().parent.parent / "docs/results/phase_one_seeds_4_11.csv")
    warm_start = [p for p in points if p["stage"] == "warm start"]
    assert [p["floor"] for p in warm_start] == [0.0, 0.5, 0.65]  # the default without and with floors
    assert all(0.0 <= p["fidelity"] <= 1.0 for p in points)
    image = cv2.imread(str(plot_frontier(points, tmp_path / "frontier.png")))
    assert image is not None and image.std() > 10
    with pytest.raises(ValueError):
        plot_frontier([], tmp_path / "empty.png")


def test_frontier_csv_with_a_percentage_as_fidelity_is_refused(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("memorizer,stage,floor,accuracy,fidelity\nx,warm start,0,55.1,70\n")
    with pytest.raises(ValueError, match="fidelity a fraction"):
        frontier_points(bad)
