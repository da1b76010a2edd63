# piosnap developer tasks. `make test` is the test command CI runs.
GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w

.PHONY: demo test test-deps lint unit arm64 systemd dist bench clean

## demo: run piosnap end to end on a simulated cluster (no config needed)
demo:
	$(GO) run ./cmd/piosnap demo

## test: install missing tools, then gofmt, vet, staticcheck, all tests (also
## built for arm64 and run under qemu), and the systemd unit check
test: test-deps lint unit arm64 systemd

test-deps:
	./scripts/test-deps.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GOBIN)/staticcheck ./...

unit:
	MINIO_BIN=$(GOBIN)/minio $(GO) test -count=1 -timeout 30m ./...

## arm64: the test suite built for linux/arm64 and run under qemu-aarch64-static
arm64:
	GOARCH=arm64 PIOSNAP_TEST_EXEC=qemu-aarch64-static MINIO_BIN=$(GOBIN)/minio $(GO) test -count=1 -timeout 40m -exec qemu-aarch64-static ./...

systemd:
	./systemd/verify.sh

## dist: release binaries for the Raspberry Pi (arm64, armv7) and amd64.
## They are built with cgo (Debian's cross compilers) so that Go resolves
## <unit>.local names through the system's mDNS (nss-mdns/Avahi), as
## Pioreactor itself does; a CGO_ENABLED=0 binary cannot resolve them.
dist:
	./scripts/dist-deps.sh
	mkdir -p dist
	CGO_ENABLED=1 CC=aarch64-linux-gnu-gcc GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/piosnap-linux-arm64 ./cmd/piosnap
	CGO_ENABLED=1 CC=arm-linux-gnueabihf-gcc GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/piosnap-linux-armv7 ./cmd/piosnap
	CGO_ENABLED=1 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/piosnap-linux-amd64 ./cmd/piosnap
	cd dist && sha256sum piosnap-* > SHA256SUMS

## bench: the benchmarks whose results BENCHMARKS.md records
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf dist
