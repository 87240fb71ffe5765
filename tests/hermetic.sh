#!/usr/bin/env bash
# Runs a command in a network namespace with only loopback, so any test that
# reaches past 127.0.0.1 fails. As root (CI) with `unshare -n`, otherwise in a
# user namespace (`unshare -rn`). Where neither is allowed, or HERMETIC=0,
# the command runs with the host network and a notice says so.
set -euo pipefail
if [ "${HERMETIC:-1}" != 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
  for flags in -n -rn; do
    if unshare "$flags" true 2>/dev/null; then
      exec unshare "$flags" -- env HERMETIC_ACTIVE=1 sh -c 'ip link set lo up && exec "$@"' hermetic "$@"
    fi
  done
fi
echo "hermetic.sh: no loopback-only network namespace here; running with the host network" >&2
exec "$@"
