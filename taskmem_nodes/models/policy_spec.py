"""What a checkpoint trained by TaskMem expects at inference, stored next to its weights as
`taskmem_policy.json`: the token ids decoding may produce (a model trained with a restricted vocabulary never
trained the other embedding rows) and how many frames of each clip it sees."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

POLICY_FILE = "taskmem_policy.json"


@dataclass(frozen=True)
class PolicySpec:
    allowed_token_ids: tuple[int, ...] = ()
    """Decoding is restricted to these ids (empty: any id)."""
    frames_per_clip: int = 0
    """Frames of each 10-s clip in the policy's window, evenly spaced with the first and last (0: all)."""

    @classmethod
    def load(cls, checkpoint: str | Path) -> PolicySpec:
        """The checkpoint's spec; the default (no restriction) when it has none. ValueError if malformed."""
        path = Path(checkpoint) / POLICY_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
            spec = cls(tuple(int(i) for i in data.get("allowed_token_ids", ())), int(data.get("frames_per_clip", 0)))
        except (ValueError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a valid TaskMem policy spec: {err}") from None
        if spec.frames_per_clip < 0 or any(i < 0 for i in spec.allowed_token_ids):
            raise ValueError(f"{path}: frames_per_clip and token ids must not be negative")
        return spec

    def save(self, checkpoint: str | Path) -> None:
        data = asdict(self)
        data["allowed_token_ids"] = list(self.allowed_token_ids)
        (Path(checkpoint) / POLICY_FILE).write_text(json.dumps(data))
