package placement

import (
	"fmt"
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
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	leader := h.waitLeader(t)
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
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
		for _, c := range nodes {
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
