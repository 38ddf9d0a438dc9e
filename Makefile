# go-websocket: build, run and test.
#   make run    build the node and run it with ./conf.ini (standalone, no etcd)
#   make test   install what the tests need, then run every check and test
#   make unit   unit tests only (every package outside test/)
#   make e2e    black-box suites against the built binary (test/e2e, test/security, test/ops, test/docs)
#               and the tests of their shared harness (test/internal)
#   make cluster  cluster suites (in-process etcd, and etcd + nginx + node processes)
#   make browser  headless Chromium suite
SHELL := /bin/bash
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false

BIN        ?= ./go-websocket
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
FUZZTIME   ?= 10s
STATICCHECK := $(shell go env GOPATH)/bin/staticcheck

.PHONY: build run test deps lint unit e2e cluster browser fuzz bench smoke vuln clean

build:
	@GOPROXY=off go list -deps . > /dev/null 2>&1 || \
	  echo "First build on this machine: Go downloads its toolchain and every module (a few minutes of 'go: downloading' lines)."
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

run: build
	$(BIN) -c conf.ini

# Everything CI runs, cheapest and most telling first; stops at the first
# failing step.
test: deps lint unit fuzz e2e cluster browser bench smoke

# System packages for the end-to-end tests: etcd, nginx, chromium, node and npm.
deps:
	bash .ci/install-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	test -x $(STATICCHECK) || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...
	# The node builds for Windows and macOS too (raw socket writes are per OS).
	GOOS=windows GOARCH=amd64 go build -o /dev/null .
	GOOS=darwin GOARCH=arm64 go build -o /dev/null .

# Unit tests: every package outside test/ (the black-box suites have their
# own targets below).
MODULE := $(shell sed -n 's/^module //p' go.mod)
unit:
	go test -race -count=1 -timeout 10m $$(go list ./... | grep -v '^$(MODULE)/test/')
	# Stack sizes need a build without the race detector.
	go test -count=1 -run 'StackStaysSmall' ./servers/

e2e:
	go test -race -count=1 -timeout 20m ./test/internal/... ./test/e2e/ ./test/security/ ./test/ops/ ./test/docs/ ./test/sdk/

cluster:
	go test -race -count=1 -timeout 20m ./test/cluster/...

browser:
	go test -race -count=1 -timeout 10m ./test/browser/

# Every fuzz target in the code (each `func FuzzX` of a *_test.go file) runs
# for FUZZTIME on top of its committed seed corpus; the list is found, not
# kept by hand.
fuzz:
	@set -e; files=$$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^\./\.git/' | sort); \
	  test -n "$$files" || { echo "no fuzz targets found"; exit 1; }; \
	  for f in $$files; do \
	    pkg=./$$(dirname $${f#./}); \
	    for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	      echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	      go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	    done; \
	  done

# Benchmarks run briefly so they cannot rot; timings are not asserted here.
bench:
	go test -run '^$$' -bench . -benchtime 200x -benchmem ./servers/... ./tools/ident/ ./api/ ./routers/ ./test/cluster/

smoke:
	bash tools/wsbench/smoke.sh

# govulncheck with an offline database built from the golang.org/x/vulndb
# module (govulncheck's online database is not reachable everywhere).
VULNDB ?= /tmp/gows-vulndb
vuln:
	test -x $$(go env GOPATH)/bin/govulncheck || go install golang.org/x/vuln/cmd/govulncheck@v1.9.0
	if [ ! -f $(VULNDB)/index/db.json ]; then \
	  dir=$$(GOFLAGS= go mod download -json golang.org/x/vulndb@latest | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	  (cd $$dir && GOFLAGS=-mod=mod go run ./cmd/indexdb -vulns $$dir/data/osv -out $(VULNDB)); \
	fi
	$$(go env GOPATH)/bin/govulncheck -db file://$(VULNDB) -show verbose ./...

clean:
	rm -f $(BIN)
