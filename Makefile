# piosnap developer tasks. `make test` is the test command CI runs.
GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: demo test test-deps lint unit race unit-cmd arm64 armv7 systemd dist deb-test bench clean

## demo: run piosnap end to end on a simulated cluster (no config needed)
demo:
	$(GO) run ./cmd/piosnap demo

## test: install missing tools, then gofmt, vet, staticcheck, go.mod tidy,
## all tests (the packages outside cmd/ under the race detector), the suite
## built for arm64 and armv7 and run under qemu, and the systemd unit check
test: test-deps lint race unit-cmd arm64 armv7 systemd

test-deps:
	./scripts/test-deps.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy and commit the result"; exit 1; }

## unit: every test, natively (tools from `make test-deps`)
unit:
	MINIO_BIN=$(GOBIN)/minio $(GO) test -count=1 -timeout 30m ./...

## race: the product's packages outside cmd/ under the race detector (the
## daemon's concurrency lives in scheduler/ and store/); `make test` runs
## them only this way, and the rest natively (unit-cmd), so no test runs
## twice. The simulator is left out of it: it is the tests' stand-in for a
## cluster, and its pure-Go SQLite runs about 30 times slower under -race.
NATIVE_ONLY := /cmd/|/archive/pioreactor/simulator$$
race:
	CGO_ENABLED=1 MINIO_BIN=$(GOBIN)/minio $(GO) test -race -count=1 -timeout 30m $$($(GO) list ./... | grep -Ev '$(NATIVE_ONLY)')

## unit-cmd: cmd/ and the simulator, natively
unit-cmd:
	MINIO_BIN=$(GOBIN)/minio $(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -E '$(NATIVE_ONLY)')

## arm64: the test suite built for linux/arm64 and run under qemu-aarch64-static
arm64:
	GOARCH=arm64 PIOSNAP_TEST_EXEC=qemu-aarch64-static MINIO_BIN=$(GOBIN)/minio $(GO) test -count=1 -timeout 40m -exec qemu-aarch64-static ./...

## armv7: the test suite built for 32-bit linux/arm (Raspberry Pi OS armhf)
## and run under qemu-arm-static
armv7:
	GOARCH=arm GOARM=7 PIOSNAP_TEST_EXEC=qemu-arm-static MINIO_BIN=$(GOBIN)/minio $(GO) test -count=1 -timeout 40m -exec qemu-arm-static ./...

systemd:
	./systemd/verify.sh

## dist: release binaries for the Raspberry Pi (arm64, armv7) and amd64,
## and a Debian package of each (arm64, armhf, amd64), with SHA256SUMS.
## They are built with cgo (Debian's cross compilers) so that Go resolves
## <unit>.local names through the system's mDNS (nss-mdns/Avahi), as
## Pioreactor itself does; a CGO_ENABLED=0 binary cannot resolve them.
dist:
	./scripts/dist-deps.sh
	rm -rf dist && mkdir -p dist
	CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/piosnap-linux-arm64 ./cmd/piosnap
	CGO_ENABLED=1 CC=arm-linux-gnueabihf-gcc GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/piosnap-linux-armv7 ./cmd/piosnap
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/piosnap-linux-amd64 ./cmd/piosnap
	./scripts/deb/build.sh '$(VERSION)'
	cd dist && sha256sum piosnap-* piosnap_*.deb > SHA256SUMS

## deb-test: install dist's amd64 package with dpkg on this machine, check
## what it installed, then purge it (CI runs it; needs root and no piosnap
## package installed)
deb-test:
	./scripts/deb/test.sh dist/piosnap_*_amd64.deb

## bench: the benchmarks whose results BENCHMARKS.md records
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf dist
