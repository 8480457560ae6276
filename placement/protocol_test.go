package placement

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"peer/membership"
)

func TestWriteVersion(t *testing.T) {
	member := func(name string, min, max int, st membership.State) membership.Member {
		return membership.Member{Name: name, State: st, Protocol: membership.Protocol{Min: min, Max: max}}
	}
	alive, dead := membership.StateAlive, membership.StateDead
	for _, tc := range []struct {
		own     membership.Protocol
		members []membership.Member
		want    int
		refused string // the member named in the refusal
	}{
		{builtinProtocol, []membership.Member{member("a", 2, 2, alive)}, commandVersion, ""},
		// A newer release writes what the older members read.
		{membership.Protocol{Min: 2, Max: 3}, []membership.Member{member("a", 2, 3, alive), member("b", 2, 2, alive)}, 2, ""},
		// ... and no higher than its code knows.
		{membership.Protocol{Min: 2, Max: 3}, []membership.Member{member("a", 2, 3, alive)}, commandVersion, ""},
		// A dead member does not hold the version back.
		{membership.Protocol{Min: 2, Max: 3}, []membership.Member{member("a", 2, 3, alive), member("old", 1, 1, dead)}, 2, ""},
		// A live member that cannot read what this leader can write: refused.
		{builtinProtocol, []membership.Member{member("a", 2, 2, alive), member("old", 1, 1, alive)}, 0, "old"},
	} {
		v, err := writeVersion("self", tc.own, commandVersion, tc.members)
		switch {
		case tc.refused == "" && (err != nil || v != tc.want):
			t.Errorf("%v with %v: %d, %v; want %d", tc.own, tc.members, v, err, tc.want)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), "member "+tc.refused) || !strings.Contains(err.Error(), tc.own.String())):
			t.Errorf("%v with %v: %d, %v; want a refusal naming %s", tc.own, tc.members, v, err, tc.refused)
		}
	}
}

// TestJoinProtocolVersions: a node announcing only newer placement protocol versions
// (a fake release, through Config.Protocol) cannot join; its Join names both versions.
// One version apart joins, becomes a voter and takes decisions like any member.
func TestJoinProtocolVersions(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(2)
	waitFor(t, 15*time.Second, "2 nodes agreed", h.agreed)

	cfg := h.config("n3", false)
	cfg.Protocol = membership.Protocol{Min: 3, Max: 4}
	tooNew, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := tooNew.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = tooNew.Join([]string{nodes[0].GossipAddr()})
	tooNew.Shutdown()
	if !errors.Is(err, membership.ErrIncompatible) || !strings.Contains(err.Error(), "speaks placement protocol 3-4") ||
		!strings.Contains(err.Error(), "speaks "+builtinProtocol.String()) || !strings.Contains(err.Error(), "n3 is too new") {
		t.Fatalf("join of a node too new: %v", err)
	}
	for _, c := range nodes {
		if _, ok := c.Membership().Member("n3"); ok {
			t.Errorf("%s lists the refused node", c.Self())
		}
	}

	cfg = h.config("n4", false)
	cfg.Protocol = membership.Protocol{Min: 2, Max: 3}
	next := h.start(cfg, nodes[0].GossipAddr())
	waitFor(t, 20*time.Second, "3 nodes agreed, one of them one version newer", h.agreed)
	a, err := next.Acquire(ctxT(t, 5*time.Second), "live/mixed", next.Self())
	if err != nil || a.Master != next.Self() {
		t.Fatalf("acquire at the newer node: %+v %v", a, err)
	}
	waitFor(t, 5*time.Second, "every FSM has the stream", h.fsmAgreed)
}
