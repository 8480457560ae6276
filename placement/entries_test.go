package placement

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestEntriesPerStreamLifecycle counts the raft log entries a stream's lifecycle
// (publish, then unpublish) costs. Each entry is replicated to and fsynced by every
// voter, so a barrier per change would double the count; changes that follow each other
// share the followers' commit announcement instead (announceLoop).
func TestEntriesPerStreamLifecycle(t *testing.T) {
	h := newHarness(t, "secret")
	// A long linger makes the sharing independent of how fast this machine runs the
	// loop below; the default is a few milliseconds.
	h.tweak = func(c *Config) { c.AnnounceLinger = time.Second }
	leader, follower := h.leaderFollower(3)
	const streams = 30
	before := leader.raft.LastIndex()
	for i := range streams {
		stream := fmt.Sprintf("live/s%d", i)
		a, err := follower.Acquire(ctxT(t, 5*time.Second), stream, follower.Self())
		if err != nil {
			t.Fatalf("acquire %s: %v", stream, err)
		}
		if err := follower.Release(ctxT(t, 5*time.Second), stream, follower.Self(), a.Epoch); err != nil {
			t.Fatalf("release %s: %v", stream, err)
		}
	}
	waitFor(t, 10*time.Second, "every node to forget the streams", func() bool {
		for _, c := range h.live() {
			if len(c.Streams()) != 0 {
				return false
			}
		}
		return true
	})
	entries := leader.raft.LastIndex() - before
	t.Logf("%d entries for %d stream lifecycles: %.2f each", entries, streams, float64(entries)/streams)
	if limit := uint64(2*streams + 2); entries > limit {
		t.Fatalf("%d raft entries for %d stream lifecycles, want at most %d (2 per lifecycle and one announcement)", entries, streams, limit)
	}
}

// TestNoOpChangesWriteNoEntries: a change that cannot apply (a release of a stream
// already released or of an older epoch, an edge join of a node in the edge set, a leave
// of one not in it) is answered by the leader without a log entry, so a retried RPC or a
// follower asking before it applied its own join costs none. Counted as the leader's
// applies: barriers are not applies, so the count does not depend on timing.
func TestNoOpChangesWriteNoEntries(t *testing.T) {
	h := newHarness(t, "secret")
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	leader := h.waitLeader(t)
	var others []*Cluster
	for _, c := range nodes {
		if c != leader {
			others = append(others, c)
		}
	}
	pubAt, edge := others[0], others[1]
	const stream = "live/noop"
	a, err := pubAt.Acquire(ctxT(t, 5*time.Second), stream, pubAt.Self())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := edge.JoinEdge(ctxT(t, 5*time.Second), stream, edge.Self()); err != nil {
		t.Fatal(err)
	}
	applies := func() uint64 { return leader.Stats().Apply.Count }
	noEntry := func(what string, f func() error, want error) {
		t.Helper()
		before := applies()
		if err := f(); !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if n := applies() - before; n != 0 {
			t.Fatalf("%s wrote %d entries, want none", what, n)
		}
	}
	oneEntry := func(what string, f func() error) {
		t.Helper()
		before := applies()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n := applies() - before; n != 1 {
			t.Fatalf("%s wrote %d entries, want 1", what, n)
		}
	}
	noEntry("a second join", func() error {
		got, err := edge.JoinEdge(ctxT(t, 5*time.Second), stream, edge.Self())
		if err == nil && !slices.Contains(got.Edges, edge.Self()) {
			err = fmt.Errorf("edges %v lack %s", got.Edges, edge.Self())
		}
		return err
	}, nil)
	noEntry("a leave of a node not in the edge set", func() error {
		return pubAt.LeaveEdge(ctxT(t, 5*time.Second), stream, pubAt.Self())
	}, nil)
	noEntry("a release of an older epoch", func() error {
		return pubAt.Release(ctxT(t, 5*time.Second), stream, pubAt.Self(), a.Epoch-1)
	}, ErrStale)
	oneEntry("the leave", func() error { return edge.LeaveEdge(ctxT(t, 5*time.Second), stream, edge.Self()) })
	oneEntry("the release", func() error { return pubAt.Release(ctxT(t, 5*time.Second), stream, pubAt.Self(), a.Epoch) })
	noEntry("a second release", func() error {
		return pubAt.Release(ctxT(t, 5*time.Second), stream, pubAt.Self(), a.Epoch)
	}, nil)
}

// TestRetriedChangeInFlightWritesOneEntry: copies of a request that reach the leader
// while it applies the first (a caller's retry after its RPC timed out) wait for it and
// write no entry of their own.
func TestRetriedChangeInFlightWritesOneEntry(t *testing.T) {
	h := newHarness(t, "secret")
	h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	leader := h.waitLeader(t)
	a, err := leader.Acquire(ctxT(t, 5*time.Second), "live/retry", leader.Self())
	if err != nil {
		t.Fatal(err)
	}
	before := leader.Stats().Apply.Count
	const copies = 8
	done := make(chan rpcResp, copies)
	req := rpcReq{Op: "release", Stream: "live/retry", Node: leader.Self(), Epoch: a.Epoch}
	for range copies {
		go func() { done <- leader.handle(ctxT(t, 5*time.Second), req) }()
	}
	for range copies {
		if r := <-done; r.err() != nil {
			t.Fatalf("a copy of the release: %v", r.err())
		}
	}
	if n := leader.Stats().Apply.Count - before; n != 1 {
		t.Fatalf("%d copies of one release wrote %d entries, want 1", copies, n)
	}
}
