#!/usr/bin/env bash
# Installs what `make dist` needs, only when missing: the Debian cross
# compilers it builds the Raspberry Pi binaries with (cgo, for mDNS name
# resolution) and, through the Go module proxy, nfpm, which builds the
# Debian packages.
set -euo pipefail
need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v arm-linux-gnueabihf-gcc >/dev/null || need+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "dist-deps: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# nfpm v2.44.0: later releases need go.digitalxero.dev modules (for MSIX and
# RPM) that the Go module proxy does not serve to every network.
NFPM_VERSION=v2.44.0
gobin=$(go env GOPATH)/bin
if ! go version -m "$gobin/nfpm" 2>/dev/null | grep -q "mod.github.com/goreleaser/nfpm/v2.$NFPM_VERSION"; then
  echo "dist-deps: go install nfpm $NFPM_VERSION"
  go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
fi
