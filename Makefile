# Targets match CI (.ci/run). `make help` lists them.
GO      ?= go
BIN     ?= bin/chimalli
PKGS    ?= ./...
BENCH   ?= .
COUNT   ?= 6
FUZZTIME ?= 30s

.PHONY: help build test race e2e vet fmt-check fmt bench fuzz bench-compare bench-syscalls docker cluster cluster-down e2e-cluster clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## build bin/chimalli (static)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/node

test: ## unit and loopback end-to-end tests with the race detector (what CI runs)
	$(GO) test -race -count=1 -timeout 20m $(PKGS)

e2e: build ## end-to-end tests of the built binary against real peers
	E2E_CHIMALLI_BIN=$(abspath $(BIN)) $(GO) test -count=1 -run 'E2E' -v ./cmd/node/

vet: ## go vet
	$(GO) vet $(PKGS)

fmt-check: ## fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt: ## gofmt every file
	gofmt -w $$(git ls-files '*.go')

bench: ## Go benchmarks of the hot paths (COUNT runs each, for benchstat)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) ./gateway/ ./ratelimit/ ./tofu/ ./events/ ./raftstore/

fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg || exit 1; \
	  done; \
	done

bench-compare: ## throughput vs molly-brown and HAProxy on loopback; writes docs/performance.md (ROUNDS, DURATION, KEX)
	GO=$(GO) BIN=$(BIN) ./ops/benchcompare/bench-compare.sh

bench-syscalls: build ## system calls per request (docroot and proxy) with strace -c
	BIN=$(BIN) ./ops/benchcompare/syscalls.sh

docker: build ## build the FROM scratch image chimalli:dev
	mkdir -p bin/.data
	docker build -t chimalli:dev .

cluster: docker ## build the image, start the three-node compose cluster and wait until it is healthy
	./ops/compose/cluster.sh up

cluster-down: ## stop the compose cluster (its state stays in the named volumes)
	./ops/compose/cluster.sh down

e2e-cluster: docker ## the compose cluster's failure suite (Docker; about 5 minutes)
	CGO_ENABLED=0 $(GO) test -c -o bin/e2e-cluster.test ./ops/compose/
	cd ops/compose && CHIMALLI_E2E_CLUSTER=1 CHIMALLI_IMAGE=chimalli:dev ../../bin/e2e-cluster.test -test.v -test.timeout 30m -test.run 'TestE2ECluster'

clean:
	rm -rf bin
