package membership

import (
	"errors"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).sendPingAndWaitForAck"),
	)
}

func logger() *zap.Logger {
	if os.Getenv("PEER_TEST_LOG") != "" {
		l, _ := zap.NewDevelopment()
		return l
	}
	return zap.NewNop()
}

func start(t *testing.T, name, key string, log *zap.Logger, seeds ...string) *Membership {
	t.Helper()
	if log == nil {
		log = logger()
	}
	m, err := New(Config{Name: name, BindAddr: "127.0.0.1:0", ClusterKey: key,
		Meta: Meta{RTMP: "127.0.0.1:1935", HTTP: "127.0.0.1:8080", Raft: "127.0.0.1:7947", Version: "t"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Shutdown)
	if len(seeds) > 0 {
		if err := m.Join(seeds); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	s := time.Now()
	for time.Since(s) < d {
		if f() {
			return time.Since(s)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timeout waiting for %s", what)
	return 0
}

func state(m *Membership, name string) State {
	mm, ok := m.Member(name)
	if !ok {
		return ""
	}
	return mm.State
}

func TestJoinLoadFailLeaveRejoin(t *testing.T) {
	a := start(t, "a", "key", nil)
	events := make(chan Event, 64)
	a.Subscribe(func(e Event) { events <- e })
	b := start(t, "b", "key", nil, a.Addr())
	c := start(t, "c", "key", nil, a.Addr())
	waitFor(t, 3*time.Second, "3 alive everywhere", func() bool {
		for _, m := range []*Membership{a, b, c} {
			if len(m.Members()) != 3 || state(m, "a") != StateAlive || state(m, "b") != StateAlive || state(m, "c") != StateAlive {
				return false
			}
		}
		return true
	})
	mb, _ := a.Member("b")
	if mb.RTMP != "127.0.0.1:1935" || mb.HTTP == "" || mb.Raft == "" || mb.Incarnation == 0 || mb.GossipName == "b" {
		t.Fatalf("meta: %+v", mb)
	}
	// Load is gossiped.
	b.SetLoad(Load{Streams: 3, Players: 40, EgressMbps: 12.5, CPU: 0.4})
	waitFor(t, 3*time.Second, "load update", func() bool {
		m, _ := c.Member("b")
		return m.Load.Players == 40 && m.Load.CPU == 0.4
	})
	// Crash: dead, and it stays listed.
	crash := time.Now()
	c.Shutdown()
	d := waitFor(t, 5*time.Second, "c dead", func() bool { return state(a, "c") == StateDead && state(b, "c") == StateDead })
	t.Logf("crash detected (dead everywhere) after %v", d)
	_ = crash
	// Graceful leave: left.
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "b left", func() bool { return state(a, "b") == StateLeft })
	// Restart "c" at a new address: same stable name, visible again quickly
	// despite memberlist's "Conflicting address" rule.
	s := time.Now()
	c2 := start(t, "c", "key", nil, a.Addr())
	d = waitFor(t, 3*time.Second, "c back", func() bool {
		m, _ := a.Member("c")
		return m.State == StateAlive && m.Gossip == c2.Addr()
	})
	t.Logf("restarted c visible again after %v", d)
	_ = s
	got := map[EventType]int{}
	timeout := time.After(time.Second)
loop:
	for {
		select {
		case e := <-events:
			got[e.Type]++
		case <-timeout:
			break loop
		}
	}
	if got[EventJoin] < 3 || got[EventFail] < 1 || got[EventLeave] < 1 || got[EventUpdate] < 1 {
		t.Fatalf("events %v", got)
	}
}

func TestWrongKeyRefusedAndLogged(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	a := start(t, "a", "right", zap.New(core))
	bad := start(t, "bad", "wrong", nil)
	if err := bad.Join([]string{a.Addr()}); err == nil {
		t.Fatal("join with the wrong key succeeded")
	}
	none := start(t, "none", "", nil)
	if err := none.Join([]string{a.Addr()}); err == nil {
		t.Fatal("join without key succeeded")
	}
	time.Sleep(300 * time.Millisecond)
	if len(a.Members()) != 1 {
		t.Fatalf("a lists %v", a.Members())
	}
	if logs.FilterMessage("refused gossip from a node without the cluster key").Len() == 0 {
		t.Fatalf("refusal not logged; logs: %v", logs.All())
	}
}

// A node whose key differs from the seed's (or that has none while the seed has one, or
// the reverse) gets ErrKeyMismatch from Join, so a starting node can say so and stop
// instead of retrying forever; an unreachable seed does not.
func TestJoinKeyMismatch(t *testing.T) {
	keyed := start(t, "keyed", "key", nil)
	keyless := start(t, "keyless", "", nil)
	for _, tc := range []struct{ key, seed string }{
		{"", keyed.Addr()}, {"other", keyed.Addr()}, {"key", keyless.Addr()},
	} {
		m := start(t, "joiner-"+tc.key, tc.key, nil)
		if err := m.Join([]string{tc.seed}); !errors.Is(err, ErrKeyMismatch) {
			t.Errorf("key %q to %s: %v, want ErrKeyMismatch", tc.key, tc.seed, err)
		}
	}
	m := start(t, "joiner", "key", nil)
	if err := m.Join([]string{"127.0.0.1:1"}); err == nil || errors.Is(err, ErrKeyMismatch) {
		t.Errorf("unreachable seed: %v, want a plain error", err)
	}
}

// A node that Trust refuses (a second "b" with another identity key) neither replaces
// nor hides the member of that name, produces no event, and is logged once.
func TestTrustKeepsTheNameHolder(t *testing.T) {
	core, logs := observer.New(zapcore.WarnLevel)
	a, err := New(Config{Name: "a", BindAddr: "127.0.0.1:0", ClusterKey: "key",
		Trust: func(name, key string) bool { return name != "b" || key == "kb" }}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Shutdown)
	events := make(chan Event, 64)
	a.Subscribe(func(e Event) { events <- e })
	startKeyed := func(name, key string) *Membership {
		m, err := New(Config{Name: name, BindAddr: "127.0.0.1:0", ClusterKey: "key", Meta: Meta{Key: key}}, logger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Shutdown)
		if err := m.Join([]string{a.Addr()}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	b := startKeyed("b", "kb")
	waitFor(t, 3*time.Second, "b alive at a", func() bool { return state(a, "b") == StateAlive })
	startKeyed("b", "other")
	waitFor(t, 3*time.Second, "the impostor refused", func() bool { return logs.FilterMessageSnippet("claiming the name").Len() > 0 })
	m, _ := a.Member("b")
	if m.Key != "kb" || m.Gossip != b.Addr() {
		t.Fatalf("a shows b as %+v; want the holder at %s", m, b.Addr())
	}
	for len(events) > 0 {
		if e := <-events; e.Member.Key == "other" {
			t.Fatalf("event for the impostor: %+v", e)
		}
	}
}
