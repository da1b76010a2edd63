#!/usr/bin/env bash
# Checks systemd/piosnap.service with systemd-analyze, as CI does:
#   1. `systemd-analyze verify` must print nothing at all (it exits 0 on
#      many problems, such as an unknown key, and only warns);
#   2. `systemd-analyze security --offline=true` must rate the exposure at
#      or below PIOSNAP_MAX_EXPOSURE (default 2.0; systemd calls up to 4.9 "OK").
# Executables the unit names but this machine lacks (piosnap itself on a
# CI runner, /bin/kill in a minimal container) are replaced by a stub in a
# temporary copy of the unit; nothing else is changed.
# Needs systemd 252 or later: apt-get install -y systemd
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unit="$here/piosnap.service"
max=${PIOSNAP_MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "verify.sh: systemd-analyze not found: install it with 'apt-get install -y systemd'" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexit 0\n' >"$tmp/stub"
chmod 0755 "$tmp/stub"
cp "$unit" "$tmp/piosnap.service"
for exe in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' "$unit" | sort -u); do
	if [ ! -x "$exe" ]; then
		echo "verify.sh: $exe is not installed here; checking the unit with a stub in its place"
		sed -i "s#=\([-@:+!]*\)$exe\\b#=\\1$tmp/stub#" "$tmp/piosnap.service"
	fi
done

fail=0
if ! out=$(systemd-analyze verify --man=no "$tmp/piosnap.service" 2>&1) || [ -n "$out" ]; then
	echo "verify.sh: systemd-analyze verify found problems in $unit:" >&2
	printf '%s\n' "${out//$tmp\/piosnap.service/$unit}" >&2
	fail=1
else
	echo "verify.sh: systemd-analyze verify: clean"
fi

# --threshold counts in tenths: exposure 2.0 is 20.
threshold=$(awk -v m="$max" 'BEGIN { printf "%d", m * 10 + 0.5 }')
if ! out=$(systemd-analyze security --offline=true --threshold="$threshold" "$tmp/piosnap.service" 2>&1); then
	printf '%s\n' "$out" | grep -E '✗|Overall' >&2 || printf '%s\n' "$out" >&2
	echo "verify.sh: exposure above $max: restore the hardening settings in $unit" >&2
	fail=1
else
	printf '%s\n' "$out" | grep 'Overall exposure level'
fi
exit "$fail"
