#!/usr/bin/env bash
# The main job: set up (idempotent), then run the whole TaskMem node graph on the bundled stream and print
# the memories and the answers. Extra arguments go to `taskmem demo` (e.g. --rate 1 for real time).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$ROOT/scripts/setup.sh"
VENV=${TASKMEM_VENV:-$ROOT/.venv}
exec "$ROOT/scripts/loopback.sh" "$VENV/bin/taskmem" demo "$@"
