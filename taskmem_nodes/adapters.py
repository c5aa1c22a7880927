"""The released Phase Two adapters of a robot and which one is in use.

A directory of adapter files (`<version>.steer.safetensors`, see `models.steering`) plus `current.json`, the
version in use and the history of switches, written atomically. Phase Two writes an adapter here only when
it passed the gate, and makes it current; any released version (or "" = the base policy) can be made current
again: that is a rollback.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from taskmem_nodes.models.steering import ADAPTER_SUFFIX, AdapterError, AdapterInfo, SteeringAdapter

CURRENT_FILE = "current.json"


class AdapterRegistry:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, version: str) -> Path:
        return self.root / f"{version}{ADAPTER_SUFFIX}"

    def released(self) -> list[AdapterInfo]:
        """Every released adapter, oldest first (unreadable files are skipped: they were never released)."""
        infos = []
        for path in sorted(self.root.glob(f"*{ADAPTER_SUFFIX}")):
            try:
                infos.append(SteeringAdapter.load(path).info)
            except AdapterError:
                continue
        return infos

    def _state(self) -> dict:
        try:
            return json.loads((self.root / CURRENT_FILE).read_text())
        except (OSError, ValueError):
            return {"version": "", "history": []}

    @property
    def current_version(self) -> str:
        """The version in use ("" = the base policy)."""
        version = self._state().get("version", "")
        return version if version and self.path(version).is_file() else ""

    def current(self) -> SteeringAdapter | None:
        version = self.current_version
        return SteeringAdapter.load(self.path(version)) if version else None

    def history(self) -> list[dict]:
        return self._state().get("history", [])

    def use(self, version: str, reason: str = "") -> None:
        """Make `version` the adapter in use ("" = none); AdapterError for a version never released."""
        if version:
            SteeringAdapter.load(self.path(version))  # exists and is readable
        state = self._state()
        state["version"] = version
        state.setdefault("history", []).append({"version": version, "at": time.time(), "reason": reason})
        staging = self.root / (CURRENT_FILE + ".partial")
        staging.write_text(json.dumps(state, indent=1))
        os.replace(staging, self.root / CURRENT_FILE)
