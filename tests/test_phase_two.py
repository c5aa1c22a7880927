"""Phase Two end to end on a tiny model: a simulated deployment is recorded (memories, task log, clip archive),
preferences are judged against the logged tasks, a steering vector is tuned by DPO and gated."""

import dataclasses
import json

import pytest
import torch
from phase_two_util import tiny_deployment
from typer.testing import CliRunner

from taskmem_nodes.adapters import AdapterRegistry
from taskmem_nodes.cli import app
from taskmem_nodes.models.steering import AdapterInfo, SteeringAdapter
from taskmem_nodes.sim.world import World, WorldConfig
from taskmem_nodes.train.deployment import Deployment
from taskmem_nodes.train.phase_two import (
    PAIRS_FILE,
    PhaseTwoConfig,
    gate_reasons,
    load_sampled,
    run_phase_two,
    start_adapter,
)
from taskmem_nodes.train.task_judge import AnsweringTaskJudge, ClipRef, GroundTruthTaskJudge, make_task_judge


def test_ground_truth_judge_prefers_facts_that_answer_the_task_type():
    world = World(WorldConfig(seed=4, duration_s=300.0))
    index, clip = next((i, c) for i, c in enumerate(world.clips)
                       if any(f.key[0] == "object" for f in c.facts) and any(f.key[0] == "person" for f in c.facts))
    objects = next(f.text for f in clip.facts if f.key[0] == "object")
    person = next(f.text for f in clip.facts if f.key[0] == "person")
    judge, ref = GroundTruthTaskJudge({"s": world}), ClipRef("s", index)
    where = ["Where was the red mug last seen?"]
    assert judge.prefer(ref, "count", where, objects, person) == "first"
    assert judge.prefer(ref, "activity", where, objects, person) == "second"
    assert judge.prefer(ref, "count", where, objects + " 3 purple zebras on the moon.", objects) == "second"
    said_before = ClipRef("s", index, preceding=(objects,))
    assert judge.prefer(said_before, "count", where, objects, "") == "tie"  # repeating memory adds nothing


def test_answering_judge_prefers_the_memory_that_answers_the_clips_own_questions():
    world = World(WorldConfig(seed=4, duration_s=300.0))
    index, clip = next((i, c) for i, c in enumerate(world.clips)
                       if any(f.key[0] == "object" and f.text.startswith("1 ") for f in c.facts))
    group = next(f.text for f in clip.facts if f.key[0] == "object" and f.text.startswith("1 "))
    miscounted = "3" + group[1:]  # the right place, the wrong count
    judge = make_task_judge("ground-truth-answers", {"s": world})
    assert isinstance(judge, AnsweringTaskJudge)
    ref, asked = ClipRef("s", index), ["Where was the red mug last seen?"]
    assert judge.probes(ref, "location") and judge.probes(ref, "count")
    assert judge.prefer(ref, "count", asked, group, "") == "first"
    assert judge.prefer(ref, "location", asked, miscounted, "") == "first"  # half right still says where
    assert judge.prefer(ref, "count", asked, miscounted, "") == "second"  # and misleads a count
    assert judge.prefer(ClipRef("s", index, preceding=(group,)), "count", asked, group, "") == "tie"
    assert judge.prefer(ref, "temporal_order", asked, group, "") == "tie"  # one clip holds no order question


def test_phase_two_compares_correctness_by_fidelity_or_by_the_entry_verdict():
    assert PhaseTwoConfig(correctness="entry").correctness == "entry"
    with pytest.raises(ValueError, match="correctness"):
        PhaseTwoConfig(correctness="most")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("phase-two")
    warm, folder, counts = tiny_deployment(root, {"location": 1.0, "count": 1.0})
    return folder, warm, counts


@pytest.mark.timeout(900)
def test_phase_two_pipeline_releases_or_rejects_with_its_reasons(deployment):
    folder, warm, counts = deployment
    root = folder.parent
    assert counts["clips"] == 6 and counts["tasks"] > 0
    loaded = Deployment.load(folder)
    assert len(loaded.tasks) == counts["tasks"] and set(loaded.worlds()) == set(loaded.streams)
    assert {t.task_type for t in loaded.tasks} <= {"location", "count"}
    config = PhaseTwoConfig(out_dir=str(root / "out"), policy=str(warm), rollouts=3, max_new_tokens=48, min_tasks=1,
                            validation_every=3, max_length_gap=1000, dpo={"steps": 2, "lr": 0.05})
    report = run_phase_two(loaded, config)
    stats = report["pairs"]
    assert stats["clips"] == 4 and stats["pairs"] <= stats["clips"]
    outcomes = ("pairs", "no_edge", "cyclic", "length_or_correctness", "greedy_unbeaten", "greedy_unparsed")
    assert sum(stats[k] for k in outcomes) == stats["clips"]  # every clip's outcome is counted once
    assert stats["judged"] % 2 == 0 and stats["agreeing"] + stats["disagreeing"] <= stats["judged"] // 2
    adapter = SteeringAdapter.load(report["adapter"])
    assert adapter.info.layer == report["layer"] and adapter.info.scale == 1.5
    assert adapter.info.validation["released"] == report["released"]
    assert set(adapter.info.task_types) <= {"location", "count"}
    assert (("adapters" if report["released"] else "rejected") in report["adapter"])
    gate = report["gate"]
    assert gate["clips"] == 2 and gate["wins"] + gate["losses"] + gate["ties"] == 2
    assert gate["accuracy"]["tasks"] > 0  # the logged tasks of the held-out clips, from re-streamed memories
    assert set(gate["accuracy"]["candidate_by_type"]) <= {"location", "count"}
    assert "candidate_focused" in gate["accuracy"] and gate["accuracy"]["focused_tasks"] > 0
    assert report["released"] or gate["reason"]  # a rejection says why
    assert len(report["dpo"]) == 2 and report["dpo"][-1]["vector_norm"] > 0
    assert json.loads((root / "out" / "report.json").read_text())["version"] == report["version"]
    sampled = load_sampled(root / "out" / PAIRS_FILE)  # every training clip's candidates, for the headroom table
    assert len(sampled) == stats["clips"] and all(len(c.candidates) <= 3 for c in sampled)
    texts = {(c.stream_id, c.position): {k.text for k in c.candidates} for c in sampled}
    rows = json.loads((root / "out" / PAIRS_FILE).read_text())["pairs"]
    assert all(r["pair"]["chosen"]["text"] in texts[(r["stream_id"], r["position"])] for r in rows)
    # the judged pairs are kept: another DPO setting reuses them instead of sampling and judging again
    again = run_phase_two(loaded, dataclasses.replace(config, dpo={"steps": 1, "lr": 0.1}, scale_choices=[1.5, 3]))
    assert again["pairs"]["reused"] and not report["pairs"]["reused"]
    selection = again["gate"]["scale_selection"]  # chosen on the training clips' tasks, the held-out ones kept apart
    assert set(selection["accuracy"]) == {"1.5", "3"} and selection["tasks"] > 0
    assert selection["accuracy"][f"{selection['chosen']:g}"] == max(selection["accuracy"].values())
    assert SteeringAdapter.load(again["adapter"]).info.scale == selection["chosen"]
    assert {k: v for k, v in again["pairs"].items() if k != "reused"} == {
        k: v for k, v in stats.items() if k != "reused"}
    assert again["version"] != report["version"] and len(again["dpo"]) == 1
    changed = run_phase_two(loaded, dataclasses.replace(config, rollouts=2, dpo={"steps": 1}))
    assert not changed["pairs"]["reused"]  # other judging settings: judged afresh


def test_a_round_builds_on_the_adapter_in_use_when_it_steers_the_same_layer():
    current = SteeringAdapter(torch.ones(8), AdapterInfo("0001-count", "m", layer=1, scale=4.0, steer="memory"))
    building = PhaseTwoConfig(build_on_current=True)
    assert start_adapter(current, building, 1, "memory", "m") is current
    assert start_adapter(current, building, 1, "memory", "retrained") is None  # another model: from zero
    assert start_adapter(current, building, 2, "memory", "m") is None  # another layer
    assert start_adapter(current, building, 1, "all", "m") is None  # other positions
    assert start_adapter(current, PhaseTwoConfig(), 1, "memory", "m") is None  # not asked to
    assert start_adapter(None, building, 1, "memory", "m") is None  # nothing in use yet


def test_record_deployment_refuses_a_bad_adapter_before_loading_the_model(tmp_path):
    bad = tmp_path / "robot.steer.safetensors"
    bad.write_bytes(b"not safetensors")
    result = CliRunner().invoke(app, ["train", "record-deployment", "--out", str(tmp_path / "deployment"),
                                      "--adapter", str(bad)])
    assert result.exit_code == 2 and "not a TaskMem steering adapter" in result.output
    assert not (tmp_path / "deployment").exists()  # nothing half-recorded


@pytest.mark.timeout(900)
def test_a_round_on_top_of_the_current_adapter_samples_with_it_and_adds_its_step(deployment):
    folder, warm, _ = deployment
    loaded, root = Deployment.load(folder), folder.parent
    config = PhaseTwoConfig(out_dir=str(root / "iterated"), policy=str(warm), rollouts=3, max_new_tokens=48,
                            min_tasks=1, validation_every=3, max_length_gap=1000, dpo={"steps": 1, "lr": 0.05},
                            scale=2.0, build_on_current=True)
    first = run_phase_two(loaded, config)  # nothing in use yet: from zero
    assert first["builds_on"] == ""
    unsteered = {(c.stream_id, c.position): [k.text for k in c.candidates]
                 for c in load_sampled(root / "iterated" / PAIRS_FILE)}
    registry = AdapterRegistry(root / "iterated" / "adapters")
    trained = SteeringAdapter.load(first["adapter"])
    in_use = SteeringAdapter(torch.linspace(-30, 30, len(trained.vector)), AdapterInfo(
        "0100-count-location", trained.info.base_model_version, layer=first["layer"], scale=3.0))
    in_use.save(registry.path(in_use.version))
    registry.use(in_use.version)
    second = run_phase_two(loaded, config)
    assert second["builds_on"] == in_use.version and not second["pairs"]["reused"]  # judged afresh
    steered = {(c.stream_id, c.position): [k.text for k in c.candidates]
               for c in load_sampled(root / "iterated" / PAIRS_FILE)}
    assert steered.keys() == unsteered.keys() and steered != unsteered  # sampled with the adapter attached
    adapter = SteeringAdapter.load(second["adapter"])
    assert adapter.info.builds_on == in_use.version and adapter.info.scale == 2.0
    step = adapter.vector - in_use.vector * (3.0 / 2.0)  # the current shift kept whole at the new scale
    assert step.norm().item() == pytest.approx(second["dpo"][-1]["vector_norm"], rel=1e-4)
    assert second["gate"]["against"] == in_use.version


def test_gate_weighs_memory_only_accuracy_where_the_answers_are_known():
    config = PhaseTwoConfig(min_focused_gain=0.01)
    pairwise = {"clips": 28, "wins": 2, "losses": 0, "ties": 26, "win_rate": 1.0}
    accuracy = {"tasks": 128, "candidate": 0.49, "current": 0.47, "focused_tasks": 67,
                "candidate_focused": 0.53, "current_focused": 0.48}
    assert gate_reasons(pairwise | {"accuracy": accuracy}, config, "base") == []
    # a robot's log has no answers: the pairwise comparisons are all the evidence, and 2 are too few
    assert gate_reasons(pairwise, config, "base") == [
        "2 of 28 held-out comparisons decided, fewer than 5: too little evidence"]
    tied = pairwise | {"wins": 0, "ties": 28, "win_rate": 0.0}  # it must still win something
    assert [r.split(":")[0] for r in gate_reasons(tied | {"accuracy": accuracy}, config, "base")] == [
        "0 of 28 held-out comparisons decided, fewer than 1", "win rate 0.00 against base is below 0.55"]
    flat = accuracy | {"candidate_focused": 0.485}
    assert gate_reasons(pairwise | {"accuracy": flat}, config, "base") == [
        "memory-only accuracy 0.485 on its task types' 67 held-out tasks is below base's 0.480 + 0.010"]
    worse = accuracy | {"candidate": 0.46}
    assert gate_reasons(pairwise | {"accuracy": worse}, config, "base") == [
        "memory-only accuracy 0.460 on 128 held-out tasks is below base's 0.470"]
    # the focus may cost the other task types at most what the recipe allows
    others = accuracy | {"others_tasks": 61, "candidate_others": 0.39, "current_others": 0.41}
    assert gate_reasons(pairwise | {"accuracy": others}, config, "base") == []  # any loss, by default
    bounded = dataclasses.replace(config, min_others_gain=-0.02)
    assert gate_reasons(pairwise | {"accuracy": others}, bounded, "base") == []  # two points: on the bound
    assert gate_reasons(pairwise | {"accuracy": others | {"candidate_others": 0.385}}, bounded, "base") == [
        "memory-only accuracy 0.385 on the other types' 61 held-out tasks is below base's 0.410 - 0.020"]


def test_gate_accuracy_answers_the_logged_tasks_from_either_adapters_memories(deployment):
    from taskmem_nodes.train.phase_two import held_out_accuracy

    folder, _, _ = deployment
    loaded = Deployment.load(folder)
    labelled = loaded.labelled_tasks()  # regenerated from the archive's world and task settings
    assert set(labelled) == set(loaded.streams)
    assert {t.task_id for tasks in labelled.values() for t in tasks} == {t.task_id for t in loaded.tasks}
    world = loaded.worlds()
    clips = [(sid, position) for sid, archived in loaded.streams.items() for position in range(len(archived))]
    truth = {a.clip.clip_id: world[sid].describe_new(a.index) for sid, archived in loaded.streams.items()
             for a in archived}
    figures = held_out_accuracy(loaded, clips, {"candidate": truth, "current": dict.fromkeys(truth, "")}, labelled)
    assert figures["tasks"] > 0
    assert figures["candidate"] > figures["current"]  # ground-truth memories answer; no memories answer nothing
    split = held_out_accuracy(loaded, clips, {"candidate": truth}, labelled, focus=("location",))
    assert split["focused_tasks"] + split["others_tasks"] == split["tasks"]  # the focus and the rest, pooled
    assert split["candidate"] == pytest.approx((split["candidate_focused"] * split["focused_tasks"]
                                                + split["candidate_others"] * split["others_tasks"]) / split["tasks"])
    # a deployment whose archive has no task settings (a real robot) has no labelled tasks: no accuracy figure
    unlabelled = dataclasses.replace(loaded, streams={sid: [dataclasses.replace(a, source={"world": a.source["world"]})
                                                            for a in archived]
                                                      for sid, archived in loaded.streams.items()})
    assert unlabelled.labelled_tasks() == {}
    assert held_out_accuracy(unlabelled, clips, {"candidate": truth, "current": truth},
                             unlabelled.labelled_tasks()) is None


def test_gate_restreams_each_clip_from_the_adapters_own_preceding_memories(deployment):
    import torch
    from transformers import AutoConfig

    from taskmem_nodes.memorizer import load_backend
    from taskmem_nodes.models.steering import AdapterInfo
    from taskmem_nodes.train.phase_two import restream_memories

    folder, warm, _ = deployment
    loaded = Deployment.load(folder)
    backend = load_backend("transformers", model_path=str(warm), device="cpu", max_thinking_tokens=16,
                           max_description_tokens=16, enforce_format=True)
    backend.load()
    # what the deployment wrote is what the base policy writes again: the gate reuses it instead
    assert loaded.written_only_by(backend.model_version, "") and not loaded.written_only_by(backend.model_version, "x")
    assert restream_memories(backend, loaded) == loaded.memories
    hidden = AutoConfig.from_pretrained(warm).get_text_config().hidden_size
    steer = SteeringAdapter(torch.randn(hidden, generator=torch.Generator().manual_seed(0)) * 40,
                            AdapterInfo(version="0001-test", base_model_version=backend.model_version, layer=0,
                                        scale=1.0, task_types=["count"]))
    backend.set_adapter(steer)
    prompts = []
    generate = backend.generate
    backend.generate = lambda request: prompts.append(request.messages[-1]["content"][-1]["text"]) or generate(request)
    written = restream_memories(backend, loaded)
    archived = [a for _, clips in sorted(loaded.streams.items()) for a in clips]
    assert len(prompts) == len(archived) and set(written) <= {a.clip.clip_id for a in archived}
    deployed = {a.clip.clip_id: loaded.memories.get(a.clip.clip_id) for a in archived}
    assert written != deployed  # the adapter changed the memories
    for before, clip, prompt in zip(archived, archived[1:], prompts[1:], strict=False):
        if before.stream_id == clip.stream_id and before.clip.clip_id in written:
            assert written[before.clip.clip_id] in prompt, clip.clip.clip_id  # this run's memory, not the deployment's


def test_headroom_counts_what_the_best_candidates_would_answer(deployment):
    from taskmem_nodes.train.fact_judge import judge_entry
    from taskmem_nodes.train.headroom import candidate_headroom
    from taskmem_nodes.train.phase_two import SampledClip
    from taskmem_nodes.train.preferences import Candidate

    folder, _, _ = deployment
    loaded = Deployment.load(folder)
    worlds = loaded.worlds()
    sampled = []
    for sid, archived in loaded.streams.items():
        for position, clip in enumerate(archived):
            ref = ClipRef(sid, clip.index, loaded.preceding_texts(sid, position))
            written = loaded.memories.get(clip.clip.clip_id, "")
            truth = worlds[sid].describe_new(clip.index)
            fidelity = judge_entry(worlds[sid], clip.index, written, ref.preceding).fidelity
            candidates = (Candidate(written, (), 0, fidelity), Candidate(truth, (), 0, 1.0))
            sampled.append(SampledClip(sid, position, ref, "count", ("How many red mugs?",), candidates))
    figures = candidate_headroom(loaded, sampled, ["location", "count"])
    assert figures["tasks"] > 0
    # the true memory is both the most correct and the most useful candidate: it answers what the tiny
    # policy's memories do not
    assert figures["most correct"] == figures["most useful"] > figures["deployment"]


class LongerIsBetter:
    """A task judge that prefers the longer memory (so that sampled candidates beat the greedy one)."""

    name = "longer"

    def prefer(self, clip, task_type, questions, first, second):
        return "first" if len(first) > len(second) else "second" if len(second) > len(first) else "tie"


def test_a_greedy_loser_is_the_frozen_policys_greedy_memory(deployment):
    import random

    from taskmem_nodes.train.gspo import description_of
    from taskmem_nodes.train.phase_two import TaskSampler, collect_pairs, split_clips
    from taskmem_nodes.train.policy_model import RestrictedPolicy, inference_decoding
    from taskmem_nodes.train.preferences import PairStats
    from taskmem_nodes.train.rollouts import sample_group

    folder, warm, _ = deployment
    loaded = Deployment.load(folder)
    config = PhaseTwoConfig(policy=str(warm), rollouts=4, min_tasks=1, validation_every=3, max_length_gap=1000,
                            rejected="greedy")
    policy = RestrictedPolicy.load(warm)
    decoding = inference_decoding(policy, {"enforce_format": True, "max_thinking_tokens": 16,
                                           "max_description_tokens": 16}, 48)
    train, _ = split_clips(loaded, config.validation_every)
    stats = PairStats()
    pairs, _ = collect_pairs(policy, loaded, train, TaskSampler(loaded.tasks, config, random.Random(0)),
                             LongerIsBetter(), config, stats, loaded.worlds(), decoding)
    assert stats.clips == len(train) == 4 and pairs
    for stream_id, position, pair in pairs:
        request = loaded.request(stream_id, position, policy.frames_per_clip)
        greedy = sample_group(policy, request, 1, 0.0, decoding[1], decoding[0]())[0]
        assert pair.rejected.output_ids == tuple(greedy.tolist())
        assert pair.rejected.text == description_of(policy.output_text(greedy)) and len(pair.chosen.text) > len(
            pair.rejected.text)
    with pytest.raises(ValueError, match="rejected"):
        PhaseTwoConfig(rejected="worst")


def test_memory_sampling_keeps_the_greedy_thinking_and_samples_only_the_memory(deployment):
    import random

    from taskmem_nodes.train.phase_two import TaskSampler, collect_pairs, split_clips
    from taskmem_nodes.train.policy_model import RestrictedPolicy, inference_decoding
    from taskmem_nodes.train.preferences import PairStats
    from taskmem_nodes.train.rollouts import sample_group, thinking_ids

    folder, warm, _ = deployment
    loaded = Deployment.load(folder)
    config = PhaseTwoConfig(policy=str(warm), rollouts=4, min_tasks=1, validation_every=3, max_length_gap=1000,
                            sample="memory", temperature=1.5)
    policy = RestrictedPolicy.load(warm)
    decoding = inference_decoding(policy, {"enforce_format": True, "max_thinking_tokens": 16,
                                           "max_description_tokens": 16}, 48)
    train, _ = split_clips(loaded, config.validation_every)
    _, sampled = collect_pairs(policy, loaded, train, TaskSampler(loaded.tasks, config, random.Random(0)),
                               LongerIsBetter(), config, PairStats(), loaded.worlds(), decoding)
    varied = 0
    for clip in sampled:
        request = loaded.request(clip.stream_id, clip.position, policy.frames_per_clip)
        greedy = thinking_ids(policy, sample_group(policy, request, 1, 0.0, decoding[1], decoding[0]())[0])
        assert clip.candidates and all(list(c.output_ids[: len(greedy)]) == greedy for c in clip.candidates)
        varied += len({c.text for c in clip.candidates}) > 1
    assert varied  # what follows the thinking is sampled
    with pytest.raises(ValueError, match="sample"):
        PhaseTwoConfig(sample="thinking")


def test_sampled_choices_are_the_next_statement_and_going_on_or_closing_and_nothing_else():
    import torch

    from taskmem_nodes.train.rollouts import SampledChoices

    full_stop, closing, prompt = 1, 2, [[7, 7, 7]] * 3
    scores = torch.tensor([[0.0, 3.0, 2.0, 1.0, 0.5],   # the greedy token ends a statement
                           [0.0, 1.0, 0.5, 3.0, 2.0],   # the statement goes on
                           [0.0, 1.0, 0.5, 3.0, 2.0]])  # a statement has just ended
    choices = SampledChoices(full_stop, closing, temperature=0.5, skip=1)
    assert torch.equal(choices(torch.tensor(prompt), scores).isfinite(), scores == scores.max(1, keepdim=True).values)
    past_skip = torch.tensor([[*row, 5, 5] for row in prompt])
    past_skip[2, -1] = full_stop
    out = choices(past_skip, scores)
    assert out[0].isfinite().tolist() == [False, True, True, False, False]  # go on or close, sampled
    assert torch.allclose(out[0, [1, 2]], scores[0, [1, 2]] / 0.5)
    assert out[1].isfinite().tolist() == [False, False, False, True, False]  # greedy
    assert torch.allclose(out[2], scores[2] / 0.5)  # which statement comes next: any, sampled
