# peer: the two commands a fresh machine needs are `make run` and `make test`.
GO      ?= go
PKGS    := ./...
# Packages with concurrency run under the race detector.
RACE    := ./media/... ./ingress/... ./membership/... ./placement/...

.PHONY: run build install test race lint fuzz bench chaos figures sim scale idle tools console-assets screenshots clean

run:
	$(GO) run ./cmd/peer run

build:
	$(GO) build -o bin/peer ./cmd/peer

# Installs the binary, the systemd unit, its environment file and an example config
# (existing /etc files are kept). PREFIX=/usr/local DESTDIR= as usual.
PREFIX  ?= /usr/local
install: build
	install -D -m 0755 bin/peer $(DESTDIR)$(PREFIX)/bin/peer
	install -D -m 0644 conf/peer.service $(DESTDIR)/etc/systemd/system/peer.service
	test -e $(DESTDIR)/etc/default/peer || install -D -m 0600 conf/peer.env $(DESTDIR)/etc/default/peer
	test -e $(DESTDIR)/etc/peer/peer.yaml || install -D -m 0644 conf/examples/three-nodes.yaml $(DESTDIR)/etc/peer/peer.yaml
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/peer/README.md
	@id peer >/dev/null 2>&1 || echo "create the service user: useradd --system --home /var/lib/peer peer"

# The whole suite, as CI runs it: vet, unit and end-to-end tests (real ffmpeg/ffprobe
# clients on loopback), race detector on the concurrent packages.
test: tools
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 12m $(PKGS)
	$(GO) test -race -count=1 -timeout 8m $(RACE)
	bash scripts/fuzz.sh

# Every fuzz target for FUZZTIME each (3s) on its seed corpus; longer: FUZZTIME=60s make fuzz
fuzz:
	bash scripts/fuzz.sh

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)

# Benchmarks: micro-benchmarks of the hot path, then the fan-out/latency driver.
bench: tools
	$(GO) test -run '^$$' -bench . -benchmem ./media/... ./ingress/...
	sh scripts/bench.sh

# The long fault-injection run: CHAOS_DURATION=60s CHAOS_SEED=42 make chaos
chaos: tools
	$(GO) test -count=1 -v -timeout 30m -run '^TestChaos$$' ./chaos -chaos.long

# The control-plane figures (view agreement, leader failover, master promotion, dead
# voter replacement, fencing) measured on real processes, three runs.
figures: tools
	$(GO) test -count=3 -v -run 'TestControlPlane|TestFiveNodes' ./chaos | grep FIGURE

# The placement simulation: 50 nodes, 1000 streams in one process.
sim:
	$(GO) test -count=1 -v -run 'TestSimulation$$' ./placement -sim

# Players at scale on one node: 10,000 HTTP-FLV, then 5,000 RTMP of a 500 kbit/s stream.
scale:
	bash scripts/scale.sh

# What an idle 3-node cluster costs: context switches/s and CPU per node.
idle:
	bash scripts/idle.sh

# Copies the console's players (mpegts.js, hls.js, pinned) from npm into
# ingress/console/assets/vendor/; the result is committed, so nothing else needs npm.
console-assets:
	bash scripts/console-assets.sh

# PNGs of the console and of the player (docs/console.png, docs/player.png), taken by the
# browser tests on a real 3-node cluster.
screenshots: tools
	$(GO) test -count=1 -v -timeout 5m -run '^TestConsole$$' ./chaos/browser -screenshots $(CURDIR)/docs

# Installs what the tests need when it is missing (Debian).
tools:
	@bash scripts/install-tools.sh

clean:
	rm -rf bin data
