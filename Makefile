# groupsync — build, test and measure.
#
#   make run     the whole system on this machine (same as `go run ./cmd/groupsync`)
#   make test    everything CI runs: formatting, vet, unit, integration and interop tests
#   make bench   benchmarks and the load report (figures on stdout and in bench-results/)
#   make chaos-cluster   chaos run on a 3-node NATS cluster and Redis with Sentinel
#   make latency-cluster end-to-end latency on that cluster, steady and during a leader failover
#   make fuzz    every Fuzz target in turn, FUZZTIME each (default 30s)
#   make screenshots  the web console's screenshots in docs/images, taken by its browser test

GO        ?= go
PKGS      := ./...
INTEROP   := virgil/interop
BROWSER   := test/browser
TESTFLAGS ?= -race -count=1 -timeout 14m

.PHONY: all build run test lint interop-deps browser-deps compose-check bench chaos chaos-cluster latency-cluster fuzz screenshots clean

all: build

build:
	$(GO) build -o bin/groupsync ./cmd/groupsync

run:
	$(GO) run ./cmd/groupsync

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# The interop tests drive the official E3Kit Node client; its exact versions
# are pinned by the committed package-lock.json.
interop-deps:
	@if [ -f $(INTEROP)/package-lock.json ]; then \
		cd $(INTEROP) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

# The browser test serves the official e3kit-browser bundles to Chromium; their
# exact versions are pinned by the committed package-lock.json.
browser-deps:
	@if [ -f $(BROWSER)/package-lock.json ]; then \
		cd $(BROWSER) && npm ci --no-audit --no-fund --loglevel=error; \
	fi

# docker-compose.yml is validated by a test in cmd/groupsync; this target does it by hand.
compose-check:
	GROUPSYNC_VIRGIL_APP_ID=x GROUPSYNC_VIRGIL_APP_KEY_ID=x GROUPSYNC_VIRGIL_APP_KEY=x GROUPSYNC_IDENTITY_SECRET=x \
	GROUPSYNC_WEBHOOK_USERNAME=x GROUPSYNC_WEBHOOK_PASSWORD=x GROUPSYNC_COMETCHAT_APP_ID=x \
	GROUPSYNC_NATS_PASSWORD=x GROUPSYNC_REDIS_PASSWORD=x GROUPSYNC_JOB_KEY=x \
	docker-compose -f docker-compose.yml config -q

test: lint interop-deps browser-deps
	$(GO) test $(TESTFLAGS) $(PKGS)

bench:
	./scripts/bench.sh

chaos:
	./scripts/chaos.sh

# The chaos run on a 3-node NATS cluster and Redis with Sentinel.
chaos-cluster:
	./scripts/chaos-cluster.sh

# Latency on the 3-node NATS cluster and Redis with Sentinel, steady and
# while the job stream's leader is killed (figures only; no time assertions).
latency-cluster:
	./scripts/latency-cluster.sh

fuzz:
	./scripts/fuzz.sh

# The browser test of the web console saves its pages as it goes through them.
screenshots: browser-deps
	$(GO) test -count=1 -run '^TestConsole$$' ./$(BROWSER) -browser.screenshots=$(CURDIR)/docs/images

clean:
	rm -rf bin bench-results
