#!/usr/bin/env bash
# Installs what piosnap's tests need on a fresh Debian machine that has Go:
# Debian packages (restic for the retention cross-check, python3 for the ZIP
# cross-check, systemd for systemd-analyze, qemu-user-static for the arm64
# run, mariadb-server and -client for the directory source's database
# tests, which start their own server) and, through the Go module proxy, MinIO and staticcheck.
# Safe to run again: it installs only what is missing.
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
[ -x /usr/bin/time ] || need_apt+=(time)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if [ ! -x "$gobin/minio" ]; then
  echo "test-deps: go install minio (a few minutes the first time)"
  go install "github.com/minio/minio@$MINIO_VERSION"
fi
if [ ! -x "$gobin/staticcheck" ] || ! "$gobin/staticcheck" -version | grep -q "$STATICCHECK_RELEASE"; then
  echo "test-deps: go install staticcheck"
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
