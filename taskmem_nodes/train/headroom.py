"""What Phase Two's candidates could add, and from what: a diagnostic on a simulated deployment.

Every training clip's memory is replaced by one of the candidates the frozen policy sampled for it (kept in the
run's `pairs.json`), the deployment's other memories stay, and the logged tasks whose evidence lies in those
clips are answered by the benchmark's fixed lexical answerer. Choosing the candidate the task judge rates most
useful for the given task types shows what task relevance could buy; choosing the most correct one shows what
correctness alone could. Phase Two can only learn what the first adds over the second.

Run:  taskmem train phase-two-headroom --deployment runs/deployment --run runs/phase-two \
          --task-type location --task-type count
"""

from __future__ import annotations

from collections.abc import Sequence

from taskmem_nodes.train.deployment import Deployment
from taskmem_nodes.train.phase_two import SampledClip, held_out_accuracy
from taskmem_nodes.train.task_judge import GroundTruthTaskJudge

CHOICES = ("deployment", "most useful", "most correct")


def candidate_headroom(deployment: Deployment, sampled: Sequence[SampledClip], task_types: Sequence[str]) -> dict:
    """Memory-only accuracy (overall and per task type) with the deployment's memories and with each clip's most
    useful (for `task_types`, ties to the more correct) or most correct candidate; None when no task's answer is
    known (a real robot's log)."""
    worlds = deployment.worlds()
    judge = GroundTruthTaskJudge(worlds)
    chosen: dict[str, dict[str, str]] = {name: {} for name in CHOICES[1:]}
    for clip in sampled:
        if not clip.candidates:
            continue
        clip_id = deployment.streams[clip.stream_id][clip.position].clip.clip_id
        usefulness = {c.text: sum(judge.usefulness(clip.clip, t, clip.questions, c.text) for t in task_types)
                      for c in clip.candidates}
        chosen["most useful"][clip_id] = max(clip.candidates, key=lambda c: (usefulness[c.text], c.correctness)).text
        chosen["most correct"][clip_id] = max(clip.candidates, key=lambda c: c.correctness).text
    written = {"deployment": deployment.memories, **{name: {**deployment.memories, **memories}
                                                     for name, memories in chosen.items()}}
    clips = [(clip.stream_id, clip.position) for clip in sampled]
    return held_out_accuracy(deployment, clips, written, deployment.labelled_tasks(worlds))
