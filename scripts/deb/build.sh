#!/usr/bin/env bash
# Builds the piosnap Debian packages from the release binaries in dist/
# (`make dist` runs it after building them): dist/piosnap_<version>_<arch>.deb
# for arm64, armhf and amd64. nfpm (a Go module) is installed by
# scripts/dist-deps.sh. Usage: scripts/deb/build.sh VERSION
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
nfpm=${NFPM:-$(go env GOPATH)/bin/nfpm}
version=${1:?usage: build.sh VERSION}
# A Debian version starts with a digit: "v1.2.0" becomes "1.2.0"; a build
# without a release tag ("8c31f2a", "8c31f2a-dirty") becomes
# "0.0.0~git8c31f2a" ("~" sorts before any release).
version=${version#v}
if ! [[ $version =~ ^[0-9]+\.[0-9]+ ]]; then
	version="0.0.0~git${version}"
fi
version=${version//-/.}
for pair in arm64:arm64 arm7:armv7 amd64:amd64; do
	arch=${pair%%:*} bin=dist/piosnap-linux-${pair#*:}
	[ -x "$bin" ] || { echo "build.sh: $bin is missing: run make dist" >&2; exit 1; }
	DEB_ARCH=$arch DEB_VERSION=$version PIOSNAP_BIN=$bin \
		"$nfpm" package --config scripts/deb/nfpm.yaml --packager deb --target dist/
done
ls dist/*.deb
