#!/usr/bin/env bash
# Installs what piosnap's tests need on a fresh Debian machine that has Go:
# Debian packages (restic for the retention cross-check, python3 for the ZIP
# cross-check, systemd for systemd-analyze, qemu-user-static for the arm64
# and armv7 runs, gcc for -race, chromium for the web application's browser
# test, mariadb-server, mariadb-client and postgresql for the directory
# source's database tests, which start their own servers) and, through the
# Go module proxy, MinIO and staticcheck, and checks for Python's Werkzeug,
# which it cannot install.
# Safe to run again: it installs only what is missing. MinIO and staticcheck
# are built once per machine (about 12 minutes on 2 cores) into
# $(go env GOPATH)/bin and kept there; a later run reuses them as long as
# their pinned versions below do not change.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
# staticcheck release 2026.2.2 is module version v0.8.2.
STATICCHECK_RELEASE=2026.2.2
STATICCHECK_VERSION=v0.8.2

gobin=$(go env GOPATH)/bin
need_apt=()
command -v restic >/dev/null || need_apt+=(restic)
command -v python3 >/dev/null || need_apt+=(python3)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
command -v qemu-aarch64-static >/dev/null || need_apt+=(qemu-user-static)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v curl >/dev/null || need_apt+=(curl)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server)
command -v mariadb-dump >/dev/null || need_apt+=(mariadb-client)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need_apt+=(postgresql)
# the web application's end-to-end test drives a headless Chromium
command -v chromium >/dev/null || need_apt+=(chromium)
[ -x /usr/bin/time ] || need_apt+=(time)
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! go version -m "$gobin/minio" 2>/dev/null | grep -q "mod.github.com/minio/minio.$MINIO_VERSION"; then
  echo "test-deps: go install minio (a few minutes the first time)"
  go install "github.com/minio/minio@$MINIO_VERSION"
fi
if [ ! -x "$gobin/staticcheck" ] || ! "$gobin/staticcheck" -version | grep -q "$STATICCHECK_RELEASE"; then
  echo "test-deps: go install staticcheck"
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

# TestImportWerkzeug feeds the client's upload to Werkzeug, the form parser of
# Pioreactor's web server. Python's package index may be out of reach, and
# Debian's python3-werkzeug (2.2 in bookworm) is older than Pioreactor's, so
# it is not installed here: say what to install instead.
if ! python3 -c 'import importlib.metadata as m, sys; sys.exit(int(m.version("werkzeug").split(".")[0]) < 3)' 2>/dev/null; then
  msg="test-deps: Python's Werkzeug 3 is missing (TestImportWerkzeug checks uploads with the parser Pioreactor uses): install it with 'pip install Werkzeug==3.1.8' (or 'pip install --break-system-packages Werkzeug==3.1.8' on Debian 12, or from a wheel copied from a machine that can reach PyPI)"
  if [ -n "${CI:-}" ]; then
    echo "$msg" >&2
    exit 1
  fi
  echo "$msg; without it that test is skipped" >&2
fi
