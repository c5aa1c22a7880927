"""What a benchmark run reports: per system, per seed and per task type; written as JSON, Markdown and PNG."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from taskmem_nodes.bench.metrics import (
    METRICS,
    OVERALL,
    Spread,
    Tally,
    across_seeds,
    focus_groups,
    pooled,
    sign_flip_p,
)
from taskmem_nodes.bench.plots import plot_metrics


@dataclass
class SystemReport:
    """One memorizer's results: task tallies per seed, and what its memory cost."""

    name: str
    per_seed: dict[int, dict[str, Tally]] = field(default_factory=dict)
    clips: int = 0
    entries: int = 0
    entry_tokens: list[int] = field(default_factory=list)
    seconds_per_clip: list[float] = field(default_factory=list)
    verdicts: list = field(default_factory=list)  # EntryVerdicts of every entry, when ground truth is known

    def summary(self) -> dict:
        spreads = across_seeds(list(self.per_seed.values()))
        tasks = {t: sum(s[t].tasks for s in self.per_seed.values() if t in s) for t in spreads}
        return {t: {"tasks": tasks[t], **{m: spreads[t][m].as_dict() for m in METRICS}} for t in spreads}

    def memory(self) -> dict[str, float]:
        tokens = sum(self.entry_tokens)
        return {
            "clips": self.clips, "entries": self.entries,
            "entries_per_clip": self.entries / self.clips if self.clips else 0.0,
            "tokens_per_entry_median": statistics.median(self.entry_tokens) if self.entry_tokens else 0.0,
            "tokens_per_clip": tokens / self.clips if self.clips else 0.0,
            "seconds_per_clip_median": statistics.median(self.seconds_per_clip) if self.seconds_per_clip else 0.0,
            **self.quality(),
        }

    def quality(self) -> dict[str, float]:
        """Against ground truth (synthetic world): fidelity = true / stated statements, richness = new true
        facts per entry, redundancy = repeated / stated statements, correct = entries all true and new."""
        if not self.verdicts:
            return {}
        stated = sum(v.statements for v in self.verdicts) or 1
        return {
            "fidelity": sum(v.true for v in self.verdicts) / stated,
            "richness": sum(v.rich for v in self.verdicts) / len(self.verdicts),
            "redundancy": sum(v.redundant for v in self.verdicts) / stated,
            "correct_entries": sum(v.correct for v in self.verdicts) / len(self.verdicts),
        }


@dataclass
class BenchReport:
    """A whole run: the dataset, its settings, the tasks asked per seed, and every system's results."""

    dataset: str
    seeds: list[int]
    settings: dict
    task_counts: dict[int, dict[str, int]]
    systems: dict[str, SystemReport]
    reference: str = ""
    """When set, every other system is also reported as paired accuracy differences against this one."""
    focus: list[str] = field(default_factory=list)
    """Task types a memorizer was adapted for: the differences are also pooled over them and over the others."""

    def differences(self) -> dict[str, dict[str, dict]]:
        """`result[system][task_type]`: accuracy minus the reference's on the same seeds (the same worlds and
        questions), as a Spread over seeds with the sign-flip test's p-value. Pairing removes the world-to-world
        spread both systems share."""
        if not self.reference:
            return {}
        if self.reference not in self.systems:
            raise ValueError(f"reference {self.reference!r} is not among the systems {list(self.systems)}")
        base = self.systems[self.reference].per_seed
        result = {}
        for name, system in self.systems.items():
            if name == self.reference:
                continue
            types = list(next(iter(base.values()))) if base else []
            result[name] = {}
            for t in types:
                paired = [system.per_seed[s][t].accuracy - base[s][t].accuracy
                          for s in base if t in base[s] and t in system.per_seed[s]]
                result[name][t] = {**Spread.of(paired).as_dict(), "p": sign_flip_p(paired)}
            for group, members in self._focus_groups(types).items():
                paired = [pooled(system.per_seed[s], members).accuracy - pooled(base[s], members).accuracy
                          for s in base]
                result[name][group] = {**Spread.of(paired).as_dict(), "p": sign_flip_p(paired)}
        return result

    def _focus_groups(self, types: list[str]) -> dict[str, list[str]]:
        """"focused" (the `focus` types) and "others" (every other type), when a focus is set."""
        if not self.focus:
            return {}
        unknown = set(self.focus) - set(types)
        if unknown:
            raise ValueError(f"focus types {sorted(unknown)} were not asked; the task types are {types}")
        return focus_groups(types, self.focus)

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset, "seeds": self.seeds, "settings": self.settings,
            "task_counts": {str(s): c for s, c in self.task_counts.items()},
            "systems": {name: {
                "summary": system.summary(), "memory": system.memory(),
                "per_seed": {str(seed): {t: c.as_dict() for t, c in tallies.items()}
                             for seed, tallies in system.per_seed.items()},
            } for name, system in self.systems.items()},
            "reference": self.reference, "focus": self.focus,
            "differences": self.differences(),
        }

    def to_markdown(self) -> str:
        seeds = ", ".join(map(str, self.seeds))
        lines = [f"Dataset `{self.dataset}`, seeds {seeds}: mean ± std across seeds (%), tasks summed over seeds.",
                 "", "| system | task type | tasks | Accuracy | Coverage | Precision |",
                 "|---|---|---:|---:|---:|---:|"]
        for name, system in self.systems.items():
            for task_type, row in system.summary().items():
                label = f"**{task_type}**" if task_type == OVERALL else task_type
                cells = " | ".join(_percent(row[m]) for m in METRICS)
                lines.append(f"| {name} | {label} | {row['tasks']} | {cells} |")
        lines += ["", "| system | entries / clip | tokens / entry (median) | tokens / clip | s / clip (median) "
                      "| fidelity | richness | redundancy |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for name, system in self.systems.items():
            m = system.memory()
            quality = " | ".join(f"{m[k]:.2f}" if k in m else "-" for k in ("fidelity", "richness", "redundancy"))
            lines.append(f"| {name} | {m['entries_per_clip']:.2f} | {m['tokens_per_entry_median']:.0f} | "
                         f"{m['tokens_per_clip']:.1f} | {m['seconds_per_clip_median']:.3f} | {quality} |")
        if self.reference:
            lines += ["", f"Accuracy minus `{self.reference}` on the same seeds (points; mean ± std over seeds; p: "
                          "two-sided sign-flip test of the overall difference):", "",
                      "| system | " + " | ".join(self._types()) + " | p |",
                      "|---|" + "---:|" * (len(self._types()) + 1)]
            differences = self.differences()  # sign-flip tests: exact over 2^seeds flips, computed once
            for name, by_type in differences.items():
                cells = [_signed(by_type[t]) if t in by_type else "-" for t in self._types()]
                p_value = f"{by_type[OVERALL]['p']:.3f}" if OVERALL in by_type else "-"
                lines.append(f"| {name} | " + " | ".join(cells) + f" | {p_value} |")
            if self.focus:
                lines += ["", f"Pooled per seed: the focused types ({', '.join(self.focus)}) and the others "
                              "(points; mean ± std over seeds, sign-flip p):", "",
                          "| system | focused | p | others | p |", "|---|---:|---:|---:|---:|"]
                for name, by_type in differences.items():
                    lines.append(f"| {name} | {_signed(by_type['focused'])} | {by_type['focused']['p']:.3f} | "
                                 f"{_signed(by_type['others'])} | {by_type['others']['p']:.3f} |")
        return "\n".join(lines) + "\n"

    def _types(self) -> list[str]:
        return list(next(iter(self.systems.values())).summary()) if self.systems else []

    def write(self, out: Path) -> dict[str, Path]:
        """`report.json`, `report.md` and `report.png` in `out`."""
        out.mkdir(parents=True, exist_ok=True)
        paths = {"json": out / "report.json", "markdown": out / "report.md", "plot": out / "report.png"}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=1))
        paths["markdown"].write_text(self.to_markdown())
        figures = {name: {t: {**{m: row[m]["mean"] for m in METRICS},
                              **{f"{m}_std": row[m]["std"] or 0.0 for m in METRICS}}
                          for t, row in system.summary().items()}
                   for name, system in self.systems.items()}
        plot_metrics(figures, paths["plot"], title=f"{self.dataset}, seeds {', '.join(map(str, self.seeds))}")
        return paths


def _signed(spread: dict) -> str:
    if spread["std"] is None:
        return f"{100 * spread['mean']:+.1f}"
    return f"{100 * spread['mean']:+.1f} ± {100 * spread['std']:.1f}"


def _percent(spread: dict) -> str:
    if spread["std"] is None:
        return f"{100 * spread['mean']:.1f}"
    return f"{100 * spread['mean']:.1f} ± {100 * spread['std']:.1f}"
