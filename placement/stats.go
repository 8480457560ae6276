package placement

import (
	"strings"
	"sync/atomic"
	"time"

	"peer/membership"
)

// ApplyBuckets are the upper bounds, in seconds, of the apply latency histogram.
var ApplyBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// Stats is this node's view of placement and its Raft group, for /metrics.
type Stats struct {
	// RaftState is "leader", "follower", "candidate" or "shutdown".
	RaftState string
	// LeaderKnown is false while this node knows no Raft leader: placement cannot
	// change, so a stream whose master dies has no failover until one is elected.
	LeaderKnown bool
	// Degraded: this node has been out of contact with a Raft leader for FenceTimeout
	// (Cluster.Degraded): it keeps serving, placement is frozen.
	Degraded bool
	// LeaderChanges counts the leaders this node has seen elected since it started.
	LeaderChanges uint64
	// PlacementChanges counts the assignment changes this node's FSM applied (stream
	// created, moved, deleted, or its replicas or edges changed); Failovers those that
	// gave a stream another master (its master died, left or was drained). Every node
	// applies the same log, so the counts agree across the cluster (a restarted node
	// counts the log it replays again).
	PlacementChanges, Failovers uint64
	// Apply is the latency of this node's own Raft applies (as leader) until committed
	// and applied.
	Apply Histogram
	// Members counts the cluster's members by membership state, this node included.
	Members map[membership.State]int
	// LastIndex is the index of this node's last Raft log entry (stored, maybe not yet
	// committed) and AppliedIndex the last one its FSM applied. Every node reports
	// them, leader or not: their growth counts the entries placement wrote.
	LastIndex, AppliedIndex uint64
}

// Histogram is a cumulative latency histogram over ApplyBuckets.
type Histogram struct {
	Count   uint64
	Sum     float64  // seconds
	Buckets []uint64 // Buckets[i]: observations <= ApplyBuckets[i]
}

// latency records a histogram over ApplyBuckets with atomics: one apply costs a few adds.
type latency struct {
	count, sumNanos atomic.Uint64
	buckets         [len(ApplyBuckets)]atomic.Uint64 // not cumulative
}

func (l *latency) observe(d time.Duration) {
	l.count.Add(1)
	l.sumNanos.Add(uint64(max(d, 0)))
	for i, b := range ApplyBuckets {
		if d.Seconds() <= b {
			l.buckets[i].Add(1)
			return
		}
	}
}

func (l *latency) snapshot() Histogram {
	h := Histogram{Count: l.count.Load(), Sum: float64(l.sumNanos.Load()) / 1e9, Buckets: make([]uint64, len(ApplyBuckets))}
	var cum uint64
	for i := range ApplyBuckets {
		cum += l.buckets[i].Load()
		h.Buckets[i] = cum
	}
	return h
}

// Stats reports placement's counters and this node's Raft standing; it is cheap
// enough for every scrape.
func (c *Cluster) Stats() Stats {
	changes, failovers := c.fsm.counts()
	s := Stats{RaftState: strings.ToLower(c.raft.State().String()), LeaderKnown: c.Leader() != "", Degraded: c.Degraded(),
		LeaderChanges: c.leaderChanges.Load(), PlacementChanges: changes, Failovers: failovers,
		Apply: c.applyLatency.snapshot(), Members: map[membership.State]int{},
		LastIndex: c.raft.LastIndex(), AppliedIndex: c.raft.AppliedIndex()}
	for _, m := range c.mem.Members() {
		s.Members[m.State]++
	}
	return s
}

// counts reports the assignment changes and master changes applied.
func (f *FSM) counts() (changes, failovers uint64) {
	return f.changes.Load(), f.failovers.Load()
}

// countChanges counts changes as Stats reports them.
func (f *FSM) countChanges(changes []Change) {
	for _, ch := range changes {
		f.changes.Add(1)
		if ch.Old != nil && ch.New != nil && ch.Old.Master != ch.New.Master {
			f.failovers.Add(1)
		}
	}
}
