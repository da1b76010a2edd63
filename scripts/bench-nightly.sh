#!/usr/bin/env bash
# Runs issue 10's nightly benchmark (BenchmarkNightly in cmd/piosnap): a
# simulated cluster whose leader database ages night by night, backed up by
# piosnap every night, next to one export ZIP per host per night and restic
# 0.18.1 backing up the same unzipped trees. Not part of `make test`.
#
#   scripts/bench-nightly.sh quick   # 30 MiB database, 5 nights (minutes)
#   scripts/bench-nightly.sh full    # 300 MiB database, 30 nights (about an hour)
#
# PIOSNAP_NIGHTLY_DB (e.g. 2GiB) and PIOSNAP_NIGHTLY_NIGHTS override the
# mode's size and nights. The report (Markdown) goes to stdout and to
# $PIOSNAP_NIGHTLY_OUT (default bench-nightly-<mode>.md). restic is built
# with `go install` into a temporary GOBIN and kept in
# ${XDG_CACHE_HOME:-~/.cache}/piosnap-bench; it is not a dependency of the
# module. Runs under nice: the machine may be shared.
set -euo pipefail

mode=${1:-quick}
case $mode in
  quick|full) ;;
  *) echo "usage: $0 [quick|full]" >&2; exit 2 ;;
esac
RESTIC_VERSION=v0.18.1

cd "$(dirname "$0")/.."
cache=${XDG_CACHE_HOME:-$HOME/.cache}/piosnap-bench
restic=$cache/restic-$RESTIC_VERSION
if [ ! -x "$restic" ]; then
  echo "bench-nightly: go install restic $RESTIC_VERSION (a minute or two the first time)" >&2
  gobin=$(mktemp -d)
  trap 'rm -rf "$gobin"' EXIT
  GOBIN=$gobin go install "github.com/restic/restic/cmd/restic@$RESTIC_VERSION"
  mkdir -p "$cache"
  mv "$gobin/restic" "$restic"
fi
for tool in unzip /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-nightly: $tool is missing; run scripts/test-deps.sh" >&2; exit 1; }
done

out=${PIOSNAP_NIGHTLY_OUT:-$PWD/bench-nightly-$mode.md}
PIOSNAP_NIGHTLY=$mode RESTIC=$restic PIOSNAP_NIGHTLY_OUT=$out \
  nice go test -run '^$' -bench '^BenchmarkNightly$' -benchtime 1x -timeout 0 -v ./cmd/piosnap
echo "bench-nightly: report in $out" >&2
