"""The memorization policy's I/O, as the TaskMem method defines it.

Input: the newest 10-s clip inside a 50-s window of video, plus the policy's own memories for up to 4
preceding clips. Output: `<think>...</think>` then a JSON object `{"description": "..."}`.
One implementation, shared by the memorizer node, the benchmark and training.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from taskmem_nodes.clips import Clip

WINDOW_CLIPS = 5
"""Clips in the policy's window: the current one and 4 before it (50 s of 10-s clips)."""
PRECEDING_MEMORIES = 4
"""Own memories shown to the policy: those of up to 4 preceding clips."""
MAX_DESCRIPTION_CHARS = 2000
"""Longest description stored (the token budget keeps real outputs far below this)."""
MAX_RAW_OUTPUT_CHARS = 20000
"""Longest raw output kept for audit; the rest is cut off."""

SYSTEM_PROMPT = (
    "You are the memory of a robot. You watch its camera and write short, factual memory entries "
    "that will later be the only record of what happened."
)

_ENTITY_TAG = re.compile(r"<((?:face|person|body|object)_[A-Za-z0-9]+)>")
_PERSON_ID = re.compile(r"\bperson (\d+)\b")
"""People as the simulated world's policy names them (the id they wear): "person 3" is the entity person_3.
The prompt keeps the paper's `<face_1>` wording, which released checkpoints were trained with."""


@dataclass(frozen=True)
class PrecedingMemory:
    """A memory the policy wrote earlier, shown to it as context."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class PolicyRequest:
    """Everything a backend needs for one memorization step."""

    messages: list[dict]  # chat messages; the user turn's content is [{"type": "video"}, {"type": "text", ...}]
    video: np.ndarray  # (T, H, W, 3) uint8 RGB frames of the window, oldest first
    frame_times: tuple[float, ...]  # seconds since window start, one per frame, increasing


@dataclass(frozen=True)
class ParsedMemory:
    """A well-formed policy output."""

    description: str
    thinking: str
    entity_ids: tuple[str, ...]


class MemoryParseError(ValueError):
    """The model output is not `<think>...</think>{"description": ...}`; the message is the reason."""


def _clock(seconds: float) -> str:
    return f"{seconds:.0f}s"


def select_window(clips: Sequence[Clip], current: Clip, window_clips: int = WINDOW_CLIPS) -> list[Clip]:
    """The clips of the window ending with `current`: up to `window_clips` clips within its time span."""
    horizon = current.end - window_clips * current.duration - 1e-6
    earlier = [
        c for c in clips if c.end <= current.start + 1e-6 and c.start >= horizon and c.clip_id != current.clip_id
    ]
    earlier.sort(key=lambda c: c.start)
    return [*earlier[-(window_clips - 1):], current] if window_clips > 1 else [current]


def entity_tag_id(entity_id: str) -> str:
    """A tracker's id as the entity id the prompt tags and the parser reads: kept when it is already of the form
    `face_3` / `person_3` / `body_3` / `object_3`, else `face_` + its letters and digits ("17" -> "face_17")."""
    if _ENTITY_TAG.fullmatch(f"<{entity_id}>"):
        return entity_id
    return "face_" + ("".join(ch for ch in entity_id if ch.isascii() and ch.isalnum())[:32] or "unknown")


def person_mentions(text: str) -> list[tuple[int, int, str]]:
    """Where `text` names a person as "person 2": the id's digits (start, end) and its entity id ("person_2")."""
    return [(m.start(1), m.end(1), f"person_{m.group(1)}") for m in _PERSON_ID.finditer(text)]


def view_side(x: float) -> str:
    """Which third of the view a box centre at `x` (0 left .. 1 right) is in."""
    return "left" if x < 1 / 3 else "right" if x > 2 / 3 else "middle"


def tracked_people(clip: Clip) -> list[tuple[str, str]] | None:
    """(entity id, side of the view at its last sighting) of every person the tracker saw in `clip`, left to
    right; None when the clip's frames carry no tracker output."""
    if all(frame.detections is None for frame in clip.frames):
        return None
    last_seen: dict[str, float] = {}
    for frame in clip.frames:
        for detection in frame.detections or ():
            last_seen[entity_tag_id(detection.entity_id)] = detection.x
    return [(entity, view_side(x)) for entity, x in sorted(last_seen.items(), key=lambda item: (item[1], item[0]))]


def tracker_line(people: list[tuple[str, str]] | None) -> str | None:
    """The prompt's line on who the tracker saw in the newest clip (the paper's `<face_k>` ids), each id after the
    side of the view it was last seen in, so a policy that has seen someone on the left copies the id that
    follows "left"; None without a tracker."""
    if people is None:
        return None
    if not people:
        return "The person tracker sees nobody in the newest clip."
    return "The person tracker sees in the newest clip: " + ", ".join(
        f"{side}: <{entity}>" for entity, side in people) + "."


def build_prompt_text(window_start: float, current: Clip, preceding: Sequence[PrecedingMemory]) -> str:
    """The user instruction: where the newest clip is in the video, who the tracker saw in it, and what was
    already written."""
    rel_start, rel_end = current.start - window_start, current.end - window_start
    lines = [
        f"The video shows the robot's camera for the last {rel_end:.0f} seconds. "
        f"The newest clip is from {_clock(rel_start)} to {_clock(rel_end)}.",
    ]
    if tracked := tracker_line(tracked_people(current)):
        lines.append(tracked)
    if preceding:
        lines.append("Memories you already wrote for the earlier clips:")
        lines += [f"[{_clock(m.start - window_start)}-{_clock(m.end - window_start)}] {m.text}" for m in preceding]
    else:
        lines.append("You have written no memories for the earlier clips.")
    lines.append(
        "Write the memory for the newest clip in 1-2 sentences: only what is new, never repeating the "
        "memories above. Refer to people by their ids like <face_1>. Be specific about objects, places, "
        "counts and actions. Think briefly inside <think></think>, then reply with a JSON object "
        '{"description": "..."} and nothing else.'
    )
    return "\n".join(lines)


def pick_frames(frames: Sequence, count: int) -> list:
    """`count` frames evenly spread over `frames`, the first and the last included (all when count is 0)."""
    if count <= 0 or count >= len(frames):
        return list(frames)
    indexes = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in dict.fromkeys(indexes.tolist())]


def build_request(window: Sequence[Clip], preceding: Sequence[PrecedingMemory],
                  frames_per_clip: int = 0) -> PolicyRequest:
    """Build the policy input for the last clip of `window` (oldest first), with `frames_per_clip` frames of
    each clip (0: every sampled frame)."""
    if not window:
        raise ValueError("the window needs at least the current clip")
    current = window[-1]
    window_start = window[0].start
    frames = [f for clip in window for f in pick_frames(clip.frames, frames_per_clip)]
    if not frames:
        raise ValueError(f"clip {current.clip_id} has no frames")
    shape = frames[-1].image.shape
    # frames of a window share one size; a camera that changed resolution mid-window is resized to the newest
    images = [f.image if f.image.shape == shape else _resize_like(f.image, shape) for f in frames]
    times = tuple(max(0.0, f.stamp - window_start) for f in frames)
    recent = [m for m in preceding if m.end <= current.start + 1e-6 and m.start >= window_start - 1e-6]
    messages = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {"type": "video"},
                {"type": "text", "text": build_prompt_text(window_start, current, recent[-PRECEDING_MEMORIES:])},
            ],
        },
    ]
    return PolicyRequest(messages=messages, video=np.stack(images), frame_times=times)


def _resize_like(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def sanitize_text(text: str, max_chars: int) -> str:
    """Drop control and unpaired-surrogate characters, fold whitespace, cut to `max_chars`."""
    cleaned = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") else ch
        for ch in text
    )
    return " ".join(cleaned.split())[:max_chars]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
"""Where a memory's sentences (statements) part."""


def _without_repeats(text: str) -> str:
    """`text` with every sentence that repeats an earlier one of it left out (the raw output keeps them)."""
    sentences = [part for part in _SENTENCE_END.split(text) if part]
    return " ".join(dict.fromkeys(sentences))


_DESCRIPTION_VALUE = re.compile(r'"description"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _scored_description(raw: str, token_starts: Sequence[int],
                        token_probs: Sequence[float]) -> tuple[re.Match, list[tuple[str, float]]] | None:
    """Where `raw`'s description value lies, and each of its statements with its least likely token's probability."""
    found = _DESCRIPTION_VALUE.search(raw, raw.rfind("</think>") + 1)
    if found is None or len(token_starts) != len(token_probs) or not token_probs or token_starts[0] > found.start(1):
        return None
    value, offset = found.group(1), found.start(1)
    scored, cursor = [], 0
    ends = [*token_starts[1:], len(raw)]
    for part in _SENTENCE_END.split(value):
        start = value.index(part, cursor)
        cursor = start + len(part)
        span = (offset + start, offset + cursor)
        probs = [p for p, first, last in zip(token_probs, token_starts, ends, strict=True)
                 if first < span[1] and span[0] < last]
        scored.append((part, min(probs, default=1.0)))
    return found, scored


def statement_confidences(raw: str, token_starts: Sequence[int],
                          token_probs: Sequence[float]) -> list[tuple[str, float]] | None:
    """Each statement (sentence) of `raw`'s description with the probability of its least likely token
    (`token_starts[k]`: where generated token k starts in `raw`; `token_probs[k]`: its probability when it was
    chosen); None when the description cannot be found or the token figures do not cover it."""
    described = _scored_description(raw, token_starts, token_probs)
    return None if described is None else described[1]


def confident_statements(raw: str, token_starts: Sequence[int], token_probs: Sequence[float],
                         min_confidence: float) -> str:
    """`raw` with every statement (sentence) of its description after the first left out when the least likely
    of its tokens had probability below `min_confidence` (see `statement_confidences`). The first statement
    (the room, in the TaskMem format) always stays, so a memory is never emptied; `raw` comes back unchanged
    when its description cannot be found or the token figures do not cover it."""
    described = _scored_description(raw, token_starts, token_probs)
    if described is None:
        return raw
    found, scored = described
    kept = [part for number, (part, confidence) in enumerate(scored)
            if number == 0 or not part.strip() or confidence >= min_confidence]
    return raw[:found.start(1)] + " ".join(kept) + raw[found.end(1):]


def parse_output(raw: str, max_chars: int = MAX_DESCRIPTION_CHARS) -> ParsedMemory:
    """Parse `<think>...</think>{"description": "..."}`; raise MemoryParseError with the reason otherwise.

    The opening `<think>` may be missing (thinking models often get it from the prompt). The JSON may sit in
    a ```json fence. It must be an object with exactly one key, "description", holding non-empty text.
    """
    if not isinstance(raw, str):
        raise MemoryParseError("output is not text")
    closes = raw.count("</think>")
    if closes == 0:
        raise MemoryParseError("no </think>: thinking never ended")
    if closes > 1:
        raise MemoryParseError(f"{closes} </think> tags, expected exactly one")
    head, tail = raw.split("</think>")
    if head.count("<think>") > 1 or "<think>" in tail:
        raise MemoryParseError("misplaced <think> tag")
    thinking = head.replace("<think>", "").strip()

    body = tail.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.DOTALL)
    if fence:
        body = fence.group(1)
    if not body.startswith("{"):
        raise MemoryParseError("no JSON object after </think>")
    try:
        obj, end = json.JSONDecoder().raw_decode(body)
    except json.JSONDecodeError as err:
        raise MemoryParseError(f"invalid JSON: {err.msg} at char {err.pos}") from None
    if body[end:].strip():
        raise MemoryParseError("text after the JSON object")
    if not isinstance(obj, dict) or set(obj) != {"description"}:
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise MemoryParseError(f'expected {{"description": ...}} only, got {keys}')
    description = obj["description"]
    if not isinstance(description, str):
        raise MemoryParseError("description is not a string")
    if len(description) > max_chars:
        raise MemoryParseError(f"description has {len(description)} characters, more than {max_chars}")
    description = _without_repeats(sanitize_text(description, max_chars))
    if not description:
        raise MemoryParseError("empty description")
    found = [(m.start(), m.group(1)) for m in _ENTITY_TAG.finditer(description)]
    found += [(start, entity) for start, _, entity in person_mentions(description)]
    entities = tuple(dict.fromkeys(name for _, name in sorted(found)))
    return ParsedMemory(description=description, thinking=thinking, entity_ids=entities)
