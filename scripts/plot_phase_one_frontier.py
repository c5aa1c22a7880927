"""Plot the Phase One models' accuracy against fidelity (docs/results/phase_one_seeds_4_11.csv, figures measured
on the streaming benchmark) into docs/figures/phase_one_frontier.png.

    python scripts/plot_phase_one_frontier.py [CSV] [PNG]
"""

import sys
from pathlib import Path

from taskmem_nodes.bench.plots import frontier_points, plot_frontier

ROOT = Path(__file__).resolve().parent.parent

if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs/results/phase_one_seeds_4_11.csv"
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs/figures/phase_one_frontier.png"
    title = "Benchmark seeds 4-11 (1,596 tasks): Phase One models and the warm start under confidence floors"
    written = plot_frontier(frontier_points(source), target, title)
    print(f"wrote {written}")
