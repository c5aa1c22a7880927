"""Benchmark figures: the paper's metrics, their spread over seeds, reports, and `taskmem bench` end to end."""

import json

import pytest
from typer.testing import CliRunner

from taskmem_nodes.answerer import LexicalAnswerer
from taskmem_nodes.bench.harness import BenchConfig, TaskOutcome
from taskmem_nodes.bench.judges import NormalizedMatchJudge
from taskmem_nodes.bench.metrics import OVERALL, Spread, across_seeds, sign_flip_p, tally
from taskmem_nodes.bench.runner import DatasetSpec, run_benchmark
from taskmem_nodes.bench.types import BenchTask
from taskmem_nodes.cli import app
from taskmem_nodes.sim.tasks import TaskConfig, parse_mix
from taskmem_nodes.sim.world import WorldConfig


def outcome(task_type, options, answer_index, answered, chosen, answer="", text=""):
    task = BenchTask("t", "s", task_type, "q?", tuple(options), answer, answer_index, 0.0)
    return TaskOutcome(task, answered, text, chosen, ())


def test_accuracy_is_coverage_times_precision_and_abstaining_is_right_for_not_seen():
    outcomes = [
        outcome("count", ["1", "2"], 1, True, 1, "2"),     # right
        outcome("count", ["1", "2"], 1, True, 0, "2"),     # wrong
        outcome("count", ["1", "2"], 1, False, -1, "2"),   # abstained
        outcome("not_seen", ["a", "b"], -1, False, -1),    # right to abstain
        outcome("not_seen", ["a", "b"], -1, True, 0),      # answered something never seen: wrong
        outcome("location", [], -1, True, -1, "kitchen table", "2 red mugs on the kitchen table."),  # judged right
    ]
    result = tally(outcomes, NormalizedMatchJudge())
    count, unseen, overall = result["count"], result["not_seen"], result[OVERALL]
    assert (count.tasks, count.answered, count.correct) == (3, 2, 1)
    assert count.coverage == pytest.approx(2 / 3) and count.precision == 0.5 and count.accuracy == pytest.approx(1 / 3)
    assert (unseen.tasks, unseen.answered, unseen.correct) == (2, 2, 1)
    assert result["location"].accuracy == 1.0
    for t in result.values():
        assert t.accuracy == pytest.approx(t.coverage * t.precision)
    assert (overall.tasks, overall.answered, overall.correct) == (6, 5, 3)


def test_spread_across_seeds():
    spread = Spread.of([0.5, 0.7, 0.6])
    assert spread.mean == pytest.approx(0.6) and spread.std == pytest.approx(0.1) and spread.low == 0.5
    assert Spread.of([0.4]).as_dict()["std"] is None  # one seed has no spread
    seeds = [tally([outcome("count", ["1"], 0, True, 0, "1")], NormalizedMatchJudge()),
             tally([outcome("count", ["1"], 0, False, -1, "1")], NormalizedMatchJudge())]
    assert across_seeds(seeds)["count"]["accuracy"].mean == 0.5


SMALL = DatasetSpec("synthetic", WorldConfig(duration_s=120.0), TaskConfig(per_minute=10), streams=2)


def test_a_budgeted_oracle_that_spends_its_budget_on_the_asked_types_answers_more_of_them(tmp_path):
    skewed = parse_mix("location=4,count=4,activity=1,attribute=1,temporal_order=1,not_seen=1")
    spec = DatasetSpec("synthetic", WorldConfig(duration_s=300.0), TaskConfig(per_minute=20, mix=skewed), streams=4)
    report = run_benchmark(spec, [0], ["oracle", "oracle-budget", "oracle-budget-focused"], LexicalAnswerer(),
                           NormalizedMatchJudge(), BenchConfig(), workdir=tmp_path).to_dict()["systems"]

    def accuracy(system, task_type):
        return report[system]["summary"][task_type]["accuracy"]["mean"]

    for system in ("oracle-budget", "oracle-budget-focused"):  # the room and at most two facts, all true
        memory = report[system]["memory"]
        assert memory["fidelity"] == 1.0 and memory["tokens_per_clip"] < report["oracle"]["memory"]["tokens_per_clip"]
        assert accuracy(system, OVERALL) < accuracy("oracle", OVERALL)
    # an object fact answers the two most-asked types (location, count): the focused choice keeps objects first, so
    # it answers more of those and of all tasks, and fewer of the rarely asked types that need people or order
    for task_type in ("location", "count", OVERALL):
        assert accuracy("oracle-budget-focused", task_type) > accuracy("oracle-budget", task_type)
    for task_type in ("activity", "temporal_order"):
        assert accuracy("oracle-budget-focused", task_type) < accuracy("oracle-budget", task_type)


def test_benchmark_is_reproducible_and_orders_the_baselines(tmp_path):
    def run():
        return run_benchmark(SMALL, [0, 1], ["oracle", "no-memory"], LexicalAnswerer(), NormalizedMatchJudge(),
                             BenchConfig(), workdir=tmp_path, reference="oracle").to_dict()

    first, second = run(), run()
    for report in (first, second):  # wall time is the one thing allowed to differ
        for system in report["systems"].values():
            system["memory"].pop("seconds_per_clip_median")
    assert first == second
    oracle = first["systems"]["oracle"]["summary"][OVERALL]
    empty = first["systems"]["no-memory"]["summary"][OVERALL]
    assert oracle["tasks"] == empty["tasks"] == sum(sum(c.values()) for c in first["task_counts"].values())
    assert oracle["accuracy"]["mean"] > 0.85 > empty["accuracy"]["mean"]
    assert oracle["accuracy"]["seeds"] == 2 and oracle["accuracy"]["std"] is not None
    assert first["systems"]["oracle"]["memory"]["entries_per_clip"] == 1.0
    assert first["systems"]["no-memory"]["memory"]["entries"] == 0
    quality = first["systems"]["oracle"]["memory"]
    assert quality["fidelity"] == 1.0 and quality["redundancy"] == 0.0 and quality["correct_entries"] == 1.0
    assert quality["richness"] > 1.0
    paired = first["differences"]["no-memory"]
    assert paired[OVERALL]["mean"] < -0.5 and paired["not_seen"]["mean"] == 0.0 and paired["count"]["std"] is not None
    assert paired[OVERALL]["p"] == 0.5  # two seeds, both worse: as small as two seeds can make it
    with pytest.raises(ValueError, match="ground truth"):
        run_benchmark(DatasetSpec("egotempo", annotations=tmp_path, videos=tmp_path), [0], ["oracle"],
                      LexicalAnswerer(), NormalizedMatchJudge(), BenchConfig())


def test_sign_flip_p_is_exact_for_few_seeds_and_sampled_for_many():
    assert sign_flip_p([0.02, 0.05, 0.01, 0.03]) == 2 / 16  # all four the same way: the least 4 seeds allow
    assert sign_flip_p([0.04, -0.04]) == 1.0
    assert sign_flip_p([0.10, 0.08, -0.01, 0.09, 0.12, 0.07]) == 4 / 64  # only flipping the -0.01 keeps |sum|
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0 and sign_flip_p([]) == 1.0
    many = [0.05] * 20 + [-0.01] * 4
    assert sign_flip_p(many) < 0.001  # 24 seeds: 65,536 seeded random flips
    assert sign_flip_p([0.05, -0.05] * 12) == 1.0


def test_bench_command_writes_json_markdown_and_png(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(app, ["bench", "--seed", "3", "--task-mix", "location=3,count=1", "--minutes", "1",
                                      "--streams", "1", "--systems", "oracle,no-memory", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["seeds"] == [3] and set(report["task_counts"]["3"]) <= {"location", "count"}
    assert report["settings"]["tasks"]["mix"] == parse_mix("location=3,count=1")
    assert "| oracle | **overall** |" in (out / "report.md").read_text()
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = CliRunner().invoke(app, ["bench", "--task-mix", "places=1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "unknown task type" in bad.output


@pytest.mark.timeout(900)
def test_model_systems_run_on_the_default_checkpoint(tmp_path, tiny_checkpoint):
    """policy and captioner through the real Qwen3-VL code path (the tiny checkpoint: figures are not meaningful)."""
    spec = DatasetSpec("synthetic", WorldConfig(duration_s=30.0), TaskConfig(per_minute=20, min_delay_s=5), streams=1)
    from taskmem_nodes.bench.runner import memorizer_settings

    settings = memorizer_settings(str(tiny_checkpoint))
    with pytest.raises(ValueError, match="unknown system 'policy:other'"):
        run_benchmark(spec, [0], ["policy:other"], LexicalAnswerer(), NormalizedMatchJudge(), BenchConfig(),
                      model_settings=settings, extra_models={"second": settings})
    report = run_benchmark(spec, [0], ["policy", "captioner", "policy:second"], LexicalAnswerer(),
                           NormalizedMatchJudge(), BenchConfig(), model_settings=settings,
                           extra_models={"second": settings | {"max_description_tokens": 8}}, workdir=tmp_path)
    assert report.to_dict()["settings"]["model:second"]["max_description_tokens"] == 8
    for name in ("policy", "captioner", "policy:second"):
        memory = report.systems[name].memory()
        assert memory["clips"] == 3 and memory["seconds_per_clip_median"] > 0
        assert report.systems[name].per_seed[0][OVERALL].tasks == sum(report.task_counts[0].values()) > 0
    assert report.to_dict()["settings"]["model"]["model_path"] == str(tiny_checkpoint)


def test_paired_differences_pool_the_focused_types_and_the_others():
    from taskmem_nodes.bench.metrics import Tally
    from taskmem_nodes.bench.report import BenchReport, SystemReport

    def seed(**correct):  # 10 tasks of each type, all answered
        tallies = {t: Tally(10, 10, c) for t, c in correct.items()}
        return tallies | {OVERALL: Tally(10 * len(correct), 10 * len(correct), sum(correct.values()))}

    base = SystemReport("policy", {0: seed(location=5, count=2, activity=5), 1: seed(location=4, count=4, activity=6)})
    new = SystemReport("p2", {0: seed(location=7, count=3, activity=5), 1: seed(location=5, count=6, activity=5)})
    report = BenchReport("synthetic", [0, 1], {}, {}, {"policy": base, "p2": new}, reference="policy",
                         focus=["location", "count"])
    paired = report.differences()["p2"]
    assert paired["focused"]["mean"] == pytest.approx(0.15)  # 7 -> 10 and 8 -> 11 of 20 tasks
    assert paired["others"]["mean"] == pytest.approx(-0.05) and paired["focused"]["p"] == 0.5
    assert "| p2 | +15.0 ± 0.0 | 0.500 | -5.0 ± 7.1 | 1.000 |" in report.to_markdown()
    with pytest.raises(ValueError, match="not asked"):
        BenchReport("synthetic", [0, 1], {}, {}, {"policy": base, "p2": new}, reference="policy",
                    focus=["attribute"]).differences()
