package placement

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// IsCurrent: does the local FSM say node masters stream at epoch?
func (c *Cluster) IsCurrent(stream, node string, epoch uint64) bool {
	a := c.fsm.get(stream)
	return a != nil && a.Master == node && a.Epoch == epoch
}

// InContact reports whether this node has recently heard from (follower)
// or been confirmed as (leader) the raft leader, within FenceTimeout.
func (c *Cluster) InContact() bool {
	if c.raft.State() == raft.Leader {
		return time.Since(time.Unix(0, c.lastVerified.Load())) < c.cfg.FenceTimeout
	}
	lc := c.raft.LastContact()
	return !lc.IsZero() && time.Since(lc) < c.cfg.FenceTimeout
}

// fenceLoop keeps the leader's verification fresh and tracks whether this node is
// degraded (out of contact with a leader, see degraded.go).
func (c *Cluster) fenceLoop() {
	defer c.wg.Done()
	t := time.NewTicker(fenceCheck)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if c.raft.State() == raft.Leader &&
			time.Since(time.Unix(0, c.lastVerified.Load())) > c.cfg.FenceTimeout/4 {
			if err := c.raft.VerifyLeader().Error(); err == nil {
				c.lastVerified.Store(time.Now().UnixNano())
			}
		}
		ok := c.InContact()
		c.contactOK.Store(ok)
		c.updateDegraded(ok)
	}
}

// fenceCheck is the period of fenceLoop: a node turns degraded up to this long after
// FenceTimeout. fenceMargin is the default grace's slack over the
// fastest failover (scheduling, the leader learning of the death by gossip).
const (
	fenceCheck  = 100 * time.Millisecond
	fenceMargin = 100 * time.Millisecond
)

// checkFencing refuses timings where a cut-off master could still count as in contact
// with a leader after the cluster moved its stream (two publishers among the nodes in
// contact with a leader): the master turns degraded at most FenceTimeout + fenceCheck
// after its last contact with a leader, and the leader moves its streams at the
// earliest Gossip.MinDetection() + FailoverGrace after the master failed.
func (c *Config) checkFencing() error {
	fence := c.FenceTimeout + fenceCheck
	failover := c.Gossip.MinDetection() + c.FailoverGrace
	if fence >= failover {
		return fmt.Errorf("placement: fencing unsafe: a cut-off master turns degraded (fence timeout %v + check %v = %v) not before the fastest failover could promote another master of its streams, detection %v (probe timeout %v + %d x probe interval %v) + failover grace %v = %v: raise the grace or lower the fence timeout",
			c.FenceTimeout, fenceCheck, fence, c.Gossip.MinDetection(), c.Gossip.ProbeTimeout, c.Gossip.SuspicionMult, c.Gossip.ProbeInterval, c.FailoverGrace, failover)
	}
	return nil
}
