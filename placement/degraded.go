package placement

import (
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Degraded mode. A node that has not heard from a Raft leader for FenceTimeout is
// degraded: its FSM may be stale and it cannot change placement, but it keeps serving
// what it has (publishers, players, links to the nodes it still reaches) and may take a
// new publish that no reachable node is known to master (the data plane decides that).
// When a leader is back, Raft's placement wins: the data plane kicks a local publisher
// whose stream placement gives to another node and claims, through the leader, the
// streams it took meanwhile (see docs/design.md, "Fencing").
//
// FenceTimeout stays what makes this safe among the nodes in contact with a leader: a
// cut-off master declares itself degraded (no longer in contact) before the majority
// can have promoted another master of its streams (Config.checkFencing).

// contactState is fenceLoop's record of this node's standing.
type contactState struct {
	started  time.Time // Start: a starting node is not degraded before FenceTimeout
	degraded atomic.Bool
	since    atomic.Int64 // unix nanos: when the node became degraded (0: it is not)
	had      bool         // in contact at least once since Start (fenceLoop's goroutine only)
}

// Degraded reports whether this node is out of contact with a Raft leader: it has not
// heard from one for FenceTimeout (counted from Start for a node that never has).
func (c *Cluster) Degraded() bool { return c.contact.degraded.Load() }

// DegradedSince is when this node became degraded (zero when it is not).
func (c *Cluster) DegradedSince() time.Time {
	if n := c.contact.since.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// updateDegraded runs from fenceLoop with the fresh contact test: it enters and leaves
// degraded mode, logs each once, and tells OnChange subscribers (ChangeContactLost,
// ChangeContactRestore).
func (c *Cluster) updateDegraded(inContact bool) {
	s := &c.contact
	s.had = s.had || inContact
	degraded := !inContact && (s.had || time.Since(s.started) >= c.cfg.FenceTimeout)
	if s.degraded.Load() == degraded {
		return
	}
	kind := ChangeContactRestore
	if degraded {
		kind = ChangeContactLost
		s.since.Store(time.Now().UnixNano())
		s.degraded.Store(true)
		c.log.Warn("degraded: no contact with a raft leader; serving what this node has, placement is frozen and new publishes stay local",
			zap.Duration("fence_timeout", c.cfg.FenceTimeout))
	} else {
		since := c.DegradedSince()
		s.degraded.Store(false)
		s.since.Store(0)
		c.log.Info("no longer degraded: in contact with the raft leader; placement wins again",
			zap.String("leader", c.Leader()), zap.Duration("degraded_for", time.Since(since).Round(time.Millisecond)))
	}
	c.enqueue([]Change{{Kind: kind}})
}
