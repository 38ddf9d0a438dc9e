# go-websocket: build, run and test.
#   make run    build the node and run it with ./conf.ini (standalone, no etcd)
#   make test   install what the tests need, then run every check and test
SHELL := /bin/bash
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false

BIN        ?= ./go-websocket
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS    := -s -w -X main.version=$(VERSION)
FUZZTIME   ?= 10s
STATICCHECK := $(shell go env GOPATH)/bin/staticcheck

.PHONY: build run test deps lint unit fuzz bench smoke vuln clean

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) .

run: build
	$(BIN) -c conf.ini

# Everything CI runs, in order; fails on the first failing step.
test: deps lint unit fuzz bench smoke

# System packages for the end-to-end tests: etcd, nginx and chromium.
deps:
	bash .ci/install-deps.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	test -x $(STATICCHECK) || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(STATICCHECK) ./...

unit:
	go test -race -count=1 -timeout 20m ./...

# Each fuzz target runs for FUZZTIME on top of its committed seed corpus.
FUZZ_TARGETS := \
	./api:FuzzDecodeRequests \
	./tools/ident:FuzzVerify \
	./servers:FuzzConnectToken \
	./pkg/setting:FuzzINI
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	  go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
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
