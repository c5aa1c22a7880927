#!/usr/bin/env bash
# Runs a command with ROS 2 traffic confined to this machine: DDS discovery limited to loopback, and, where
# this user may create one, a private network namespace whose only interface is loopback (multicast routed
# to it so DDS discovery works inside).
set -euo pipefail
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
if unshare -n true 2>/dev/null; then
    exec unshare -n bash -c 'ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec "$@"' _ "$@"
fi
echo "[loopback] no private network namespace here; DDS limited by ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" >&2
exec "$@"
