#!/bin/sh
# Verify packaging/berth.service with `systemd-analyze verify`.
#
# verify refuses units whose ExecStart binary does not exist, and CI machines
# have no /usr/local/bin/berth. So the unit is copied into a temp dir with
# ExecStart pointed at a stub executable, and the copy is verified.
#
# Fails (exit 1) when systemd-analyze exits non-zero OR prints anything about
# berth.service: unknown keys and unparsable values are only warnings and
# still exit 0. Messages about other units (e.g. a missing docker.service on
# the CI host) are shown but tolerated.
#
# Usage: packaging/verify-unit.sh [path/to/berth.service]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
unit=${1:-"$here/berth.service"}
bin_path=/usr/local/bin/berth

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "verify-unit: systemd-analyze not found (apt-get install systemd)" >&2
    exit 1
fi
if [ ! -f "$unit" ]; then
    echo "verify-unit: unit file not found: $unit" >&2
    exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# Stub standing in for the real binary.
printf '#!/bin/sh\nexit 0\n' >"$tmp/berth"
chmod 0755 "$tmp/berth"

# Make sure the path being replaced is really the one ExecStart uses, so a
# changed ExecStart cannot make the substitution silently do nothing.
if ! grep -q "^ExecStart=$bin_path " "$unit"; then
    echo "verify-unit: expected 'ExecStart=$bin_path ...' in $unit" >&2
    exit 1
fi
# The copy keeps the name berth.service: verify derives the unit name from it.
sed "s#^ExecStart=$bin_path #ExecStart=$tmp/berth #" "$unit" >"$tmp/berth.service"

# --recursive-errors=no (systemd >= 250): the exit status reflects only this
# unit, not units it references. Older systemd lacks the option.
opts="--man=no"
if systemd-analyze --help 2>&1 | grep -q -- '--recursive-errors'; then
    opts="$opts --recursive-errors=no"
fi

status=0
# shellcheck disable=SC2086 # $opts is a list of flags, split on purpose
out=$(systemd-analyze verify $opts "$tmp/berth.service" 2>&1) || status=$?

if [ -n "$out" ]; then
    echo "systemd-analyze verify output:"
    printf '%s\n' "$out" | sed 's/^/  /'
fi

if [ "$status" -ne 0 ]; then
    echo "verify-unit: FAILED (systemd-analyze exited with $status)" >&2
    exit 1
fi
if printf '%s\n' "$out" | grep -q 'berth\.service'; then
    echo "verify-unit: FAILED (warnings about berth.service above)" >&2
    exit 1
fi

echo "verify-unit: OK ($unit)"
