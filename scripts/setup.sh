#!/usr/bin/env bash
# Sets up everything TaskMem needs on a machine without apt ROS 2 (Debian 12, x86_64, Python 3.11):
#   1. a venv with pinned ROS 2 Jazzy wheels, the ML stack and the dev tools,
#   2. the taskmem_interfaces package built with cmake into the venv (the venv is a ROS prefix),
#   3. the taskmem package itself (editable),
#   4. the bundled stream (vtest.avi, from Debian's opencv-doc) and the default memorizer checkpoint.
# Idempotent: each step keeps a stamp of its inputs and is skipped when they have not changed.
# Usage: scripts/setup.sh            (TASKMEM_VENV and TASKMEM_CACHE override the locations)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${TASKMEM_VENV:-$ROOT/.venv}
CACHE=${TASKMEM_CACHE:-$ROOT/.cache}
STAMPS=$VENV/.taskmem-stamps
mkdir -p "$CACHE"
export HF_HUB_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# step_needed NAME INPUT... : true when the hash of the inputs differs from the stamp of NAME.
step_needed() {
    local name=$1; shift
    local digest; digest=$(cat "$@" | sha256sum | cut -c1-16)
    STEP_DIGEST=$digest
    [ "$(cat "$STAMPS/$name" 2>/dev/null)" != "$digest" ]
}
step_done() { mkdir -p "$STAMPS"; echo "$STEP_DIGEST" > "$STAMPS/$1"; }

# --- system tools (cmake, compilers, Python headers, iproute2 for the private network namespace) ---
missing=()
for tool in cmake g++ ip unshare; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing system tools for: ${missing[*]}"
    apt-get update -qq && apt-get install -y -qq cmake g++ iproute2 util-linux >/dev/null
fi

# --- 1. venv and Python packages ---
if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    python3 -m venv "$VENV"
fi
PY=$VENV/bin/python
if step_needed pip "$ROOT/requirements/ros.txt" "$ROOT/requirements/base.txt" "$ROOT/requirements/dev.txt"; then
    log "installing pinned packages (first run: ~3 min)"
    # (the machine's pip config names local package folders that may be absent; drop those warnings)
    "$PY" -m pip install -q --prefer-binary --no-warn-script-location -r "$ROOT/requirements/ros.txt" \
        -r "$ROOT/requirements/base.txt" -r "$ROOT/requirements/dev.txt" 2>&1 \
        | { grep -v "is ignored: it is neither a file nor a directory" || true; }
    step_done pip
fi

# --- 2. taskmem_interfaces, built with plain cmake into the venv prefix ---
IFACE=$ROOT/ros2_ws/src/taskmem_interfaces
if step_needed interfaces "$IFACE"/CMakeLists.txt "$IFACE"/package.xml "$IFACE"/msg/* "$IFACE"/srv/* \
        "$IFACE"/action/* "$STAMPS/pip"; then
    # The ROS wheels export CMake files that name the include directories of the interpreter they were
    # built with (/opt/python/cp311-cp311/...). Point them at this interpreter's, or configure fails.
    py_include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
    np_include=$("$PY" -c 'import numpy; print(numpy.get_include())')
    { grep -rlE '/opt/python/cp311-cp311' "$VENV"/share/*/cmake/*.cmake || true; } | while read -r f; do
        sed -i -E \
            -e "s#/opt/python/cp311-cp311/lib/python3\.11/site-packages/numpy/(_core|core)/include#${np_include}#g" \
            -e "s#/opt/python/cp311-cp311/include/python3\.11#${py_include}#g" "$f"
    done
    log "building taskmem_interfaces with cmake (~30 s)"
    build=$CACHE/build/taskmem_interfaces
    rm -rf "$build"
    (
        export CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
        cmake -S "$IFACE" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" \
            -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >"$CACHE/interfaces-build.log" 2>&1
        cmake --build "$build" -j "$(nproc)" >>"$CACHE/interfaces-build.log" 2>&1
        cmake --install "$build" >>"$CACHE/interfaces-build.log" 2>&1
    ) || { log "interface build failed; see $CACHE/interfaces-build.log"; tail -30 "$CACHE/interfaces-build.log"; exit 1; }
    "$PY" -c 'import taskmem_interfaces.msg, taskmem_interfaces.srv, taskmem_interfaces.action'
    step_done interfaces
fi

# --- 3. the taskmem package ---
if step_needed package "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml" "$STAMPS/pip"; then
    log "installing taskmem (editable)"
    "$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
    step_done package
fi

# --- 4. data and the default checkpoint ---
mkdir -p "$CACHE/data"
if [ ! -s "$CACHE/data/vtest.avi" ]; then
    log "fetching the bundled stream vtest.avi from Debian's opencv-doc"
    tmp=$(mktemp -d)
    (cd "$tmp" && { apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc >/dev/null 2>&1; }; })
    dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -x -C "$tmp" ./usr/share/doc/opencv-doc/examples/data/vtest.avi
    mv "$tmp/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$CACHE/data/vtest.avi"
    rm -rf "$tmp"
fi
"$VENV/bin/taskmem" model ensure-default --quiet

log "ready: activate with 'source $VENV/bin/activate'"
