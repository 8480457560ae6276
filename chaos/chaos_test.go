package chaos

import (
	"flag"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The chaos run: a cluster of real peer processes on loopback, ffmpeg publishers (one
// relayed through a --max-streams 1 ingress), RTMP / HTTP-FLV / HLS players that check
// continuity live, and faults on a seeded schedule (SIGKILL of a random node, the raft
// leader, a stream's master, an edge with players, then restart with the same data dir;
// SIGSTOP for 10 s then SIGCONT; a network partition of one node; a rolling restart of
// every node, SIGTERM with drain then restart on its data dir; SIGKILL of a majority of
// the voters at once, the survivors serving degraded for 15 s, then restart of the dead;
// SIGKILL of the witness, and of a stream's master while it is down when the cluster can
// survive that). When the witness fault may be drawn, the second node is a `--witness`
// (a voter without media; no publisher, player or probe uses it). Invariants
// are checked all the time; see chaos_harness_test.go.
//
//	go test ./chaos -run TestChaosShort          # ~1 minute, part of the normal suite
//	CHAOS_DURATION=60s CHAOS_SEED=42 go test -v -count=1 -run '^TestChaos$' ./chaos -chaos.long
//
// Environment: CHAOS_DURATION (fault window, default 60s), CHAOS_SEED (default: time),
// CHAOS_NODES (5), CHAOS_PUBLISHERS (3), CHAOS_PLAYERS (30), CHAOS_FAULTS (comma list of
// kill-random,kill-leader,kill-master,kill-edge,freeze,partition,rolling-restart,
// majority-loss,witness),
// CHAOS_KEEP=1 keeps
// the data dirs and logs.

var chaosLong = flag.Bool("chaos.long", false, "run the long chaos test (TestChaos); CHAOS_DURATION set does the same")

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func baseConfig() chaosConfig {
	return chaosConfig{
		Nodes:      5,
		Publishers: 3,
		PlayBound:  10 * time.Second,
		MaxRecover: 30 * time.Second,
		Hold:       10 * time.Second,
		Outage:     15 * time.Second,
		GapBound:   10 * time.Second,
		Grace:      8 * time.Second,
		Settle:     20 * time.Second,
	}
}

// TestChaos is the long, randomized run behind `make chaos`.
func TestChaos(t *testing.T) {
	if !*chaosLong && os.Getenv("CHAOS_DURATION") == "" {
		t.Skip("long chaos run: pass -chaos.long or set CHAOS_DURATION")
	}
	cfg := baseConfig()
	cfg.Duration = 60 * time.Second
	if v := os.Getenv("CHAOS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("CHAOS_DURATION=%q: want a Go duration such as 60s", v)
		}
		cfg.Duration = d
	}
	cfg.Seed = time.Now().UnixNano() % 1000000
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: want an integer", v)
		}
		cfg.Seed = s
	}
	cfg.Nodes = max(envInt("CHAOS_NODES", 5), 3)
	cfg.Publishers = envInt("CHAOS_PUBLISHERS", 3)
	cfg.Players = envInt("CHAOS_PLAYERS", 30)
	cfg.Kinds = allFaults
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		cfg.Kinds = nil
		for _, k := range strings.Split(v, ",") {
			if k = strings.TrimSpace(k); contains(allFaults, k) {
				cfg.Kinds = append(cfg.Kinds, k)
			} else {
				t.Fatalf("CHAOS_FAULTS: unknown fault %q (known: %v)", k, allFaults)
			}
		}
	}
	// Stay inside go test's -timeout: faults started near the end still need ~1 min.
	if dl, ok := t.Deadline(); ok {
		if left := time.Until(dl) - 3*time.Minute; cfg.Duration > left {
			t.Logf("CHAOS_DURATION cut to %v to fit the test timeout", left.Round(time.Second))
			cfg.Duration = max(left, 10*time.Second)
		}
	}
	runChaos(t, cfg)
}

// TestChaosShort is the chaos run of the normal suite: a fixed script of the faults
// that work on any machine (no iptables needed), about a minute in all.
func TestChaosShort(t *testing.T) {
	if *chaosLong {
		t.Skip("the long run is on")
	}
	if testing.Short() {
		t.Skip("-short")
	}
	cfg := baseConfig()
	cfg.Duration = 30 * time.Second
	cfg.Seed = 7
	if v, err := strconv.ParseInt(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		cfg.Seed = v
	}
	cfg.Players = 18
	cfg.Settle = 15 * time.Second
	cfg.Script = []string{fKillMaster, fFreeze, fKillLeader, fKillEdge}
	runChaos(t, cfg)
}
