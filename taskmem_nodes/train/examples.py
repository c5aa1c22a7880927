"""Phase One training data from the simulated world: for every clip, the policy's input (the 50-s window and
the memories of up to four preceding clips) and what it should write (the clip's new content).

The input is built by `taskmem_nodes.policy.build_request`, the same function the memorizer node and the
benchmark use, so training sees exactly the prompts of inference.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from taskmem_nodes.clips import Clip, ClipCutter
from taskmem_nodes.policy import (
    PRECEDING_MEMORIES,
    WINDOW_CLIPS,
    PolicyRequest,
    PrecedingMemory,
    build_request,
    pick_frames,
    select_window,
)
from taskmem_nodes.sim.dataset import world_frames
from taskmem_nodes.sim.world import World


def target_output(description: str, thinking: str) -> str:
    """The policy's output format: `<think>...</think>` then the JSON object with the description."""
    return f"<think>\n{thinking}\n</think>\n\n" + json.dumps({"description": description})


def thinking_for(world: World, index: int) -> str:
    """A short plan the warm start teaches: where the camera is (a count of new facts here taught the model
    to say "0" and write the room only)."""
    return f"The {world.clips[index].room}."


@dataclass(frozen=True)
class ClipExample:
    """One memorization step of a simulated stream."""

    world: World
    index: int  # clip index in the stream
    request: PolicyRequest
    description: str  # the ground-truth new content: the warm-start target
    target: str  # the whole output text for supervised training
    frame_span: tuple[float, float] = (0.0, 0.0)  # stream times of the clip's first and last frame shown


def stream_clips(world: World, sample_fps: float) -> list[Clip]:
    """The stream's 10-s clips, sampled to `sample_fps` frames per second."""
    cutter = ClipCutter(clip_seconds=world.config.clip_seconds, sample_fps=sample_fps, stream_id="sim")
    clips: list[Clip] = []
    for offset, frame in world_frames(world):
        if cutter.wants(offset):
            clips += cutter.add(offset, frame)
    return clips + list(cutter.flush())


def stream_examples(world: World, *, sample_fps: float = 1.0, frames_per_clip: int = 0,
                    preceding: list[str] | None = None) -> Iterator[ClipExample]:
    """Examples for every clip of `world`, in stream order. The preceding memories shown are `preceding[i]`
    for clip i when given (the policy's own outputs: the on-policy curriculum), else the ground truth."""
    clips = stream_clips(world, sample_fps)
    for index, clip in enumerate(clips):
        window = select_window(clips[: index + 1], clip, WINDOW_CLIPS)
        earlier = range(max(0, index - PRECEDING_MEMORIES), index)
        texts = [preceding[i] if preceding is not None else world.describe_new(i) for i in earlier]
        memories = [PrecedingMemory(clips[i].start, clips[i].end, text) for i, text in zip(earlier, texts) if text]
        description = world.describe_new(index)
        shown = pick_frames(clip.frames, frames_per_clip)
        yield ClipExample(world, index, build_request(window, memories, frames_per_clip), description,
                          target_output(description, thinking_for(world, index)), (shown[0].stamp, shown[-1].stamp))
