"""The benchmark's PNG: one panel per metric, a bar per system and task type."""

import cv2
import pytest

from taskmem_nodes.bench.plots import plot_metrics


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
