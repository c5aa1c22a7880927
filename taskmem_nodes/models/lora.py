"""peft LoRA adapters for users who prefer them to a steering vector: a directory written by peft's
`save_pretrained` (adapter_config.json + adapter weights), loaded into the running model through
transformers' PEFT integration and switched like a steering adapter. `open_adapter` takes either kind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from taskmem_nodes.models.steering import AdapterError, SteeringAdapter

_NAME = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class LoraAdapter:
    path: Path
    version: str  # the directory name
    base_model: str  # what adapter_config.json names as its base ("" when unnamed)

    @classmethod
    def load(cls, path: str | Path) -> LoraAdapter:
        path = Path(path)
        try:
            config = json.loads((path / "adapter_config.json").read_text())
        except (OSError, ValueError) as err:
            raise AdapterError(f"{path} is not a peft adapter directory: {err}") from None
        if config.get("peft_type") != "LORA":
            raise AdapterError(f"{path}: only LoRA peft adapters are supported, got {config.get('peft_type')!r}")
        return cls(path, _NAME.sub("_", path.name)[:64] or "lora", str(config.get("base_model_name_or_path") or ""))


def open_adapter(path: str | Path) -> SteeringAdapter | LoraAdapter:
    """A steering adapter file or a peft LoRA directory; AdapterError when it is neither."""
    path = Path(path)
    return LoraAdapter.load(path) if path.is_dir() else SteeringAdapter.load(path)
