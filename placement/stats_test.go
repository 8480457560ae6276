package placement

import (
	"testing"
	"time"
)

// TestFSMCountsChangesAndFailovers: every applied assignment change counts; only a
// new master of an existing stream counts as a failover.
func TestFSMCountsChangesAndFailovers(t *testing.T) {
	f := newFSM(nil, nil)
	applyCmd(t, f, 10, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "a", Replicas: []string{"b"}, NewEpoch: true}}})
	applyCmd(t, f, 11, command{Op: opCAS, Updates: []update{{Stream: "s", Master: "x", NewEpoch: true}}}) // lost CAS: no change
	applyCmd(t, f, 12, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 10, Master: "a", Replicas: []string{"c"}}}})
	applyCmd(t, f, 13, command{Op: opEdge, Stream: "s", Node: "e", Join: true})
	// CAS compares the assignment's ModifyIndex: 13, after the edge join.
	applyCmd(t, f, 14, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 13, Master: "c", NewEpoch: true}}})
	applyCmd(t, f, 15, command{Op: opCAS, Updates: []update{{Stream: "s", Expect: 14, Delete: true}}})
	if changes, failovers := f.counts(); changes != 5 || failovers != 1 {
		t.Fatalf("counts = %d changes, %d failovers; want 5, 1", changes, failovers)
	}
}

// TestLatencyHistogram: observations land in the first bucket that holds them, and the
// snapshot is cumulative.
func TestLatencyHistogram(t *testing.T) {
	var l latency
	l.observe(500 * time.Microsecond)
	l.observe(20 * time.Millisecond)
	l.observe(time.Minute) // beyond the last bucket: only in the count (+Inf)
	h := l.snapshot()
	if h.Count != 3 || h.Buckets[0] != 1 || h.Buckets[3] != 1 || h.Buckets[4] != 2 || h.Buckets[len(h.Buckets)-1] != 2 {
		t.Fatalf("histogram %+v", h)
	}
	if h.Sum < 60 || h.Sum > 60.03 {
		t.Fatalf("sum %v", h.Sum)
	}
}

// TestStatsReportRaftLogPosition: every node's Stats carries its Raft log position, so
// /metrics can count the entries a workload wrote without asking the leader.
func TestStatsReportRaftLogPosition(t *testing.T) {
	h := newHarness(t, "secret")
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	leader := h.waitLeader(t)
	before := leader.Stats()
	if before.LastIndex == 0 || before.LastIndex != leader.raft.LastIndex() {
		t.Fatalf("leader's Stats().LastIndex = %d, raft's = %d", before.LastIndex, leader.raft.LastIndex())
	}
	follower := nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	if _, err := follower.Acquire(ctxT(t, 5*time.Second), "live/idx", follower.Self()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every node to apply the acquire", func() bool {
		last := leader.Stats().LastIndex
		for _, c := range nodes {
			if s := c.Stats(); s.LastIndex <= before.LastIndex || s.AppliedIndex < last {
				return false
			}
		}
		return true
	})
}
