#!/usr/bin/env bash
# The test command: set up (idempotent), lint, then the whole test suite with ROS 2 confined to loopback.
# Extra arguments go to pytest (e.g. -k store).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
VENV=${TASKMEM_VENV:-$ROOT/.venv}
cd "$ROOT"
"$VENV/bin/ruff" check .
exec "$ROOT/scripts/loopback.sh" "$VENV/bin/python" -m pytest "$@"
