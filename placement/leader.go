package placement

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/membership"
)

func (c *Cluster) observeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case o := <-c.obsCh:
			switch d := o.Data.(type) {
			case raft.FailedHeartbeatObservation:
				c.heartbeatFailed(d)
				continue
			case raft.ResumedHeartbeatObservation:
				c.heartbeatResumed(d)
				continue
			}
			lo, ok := o.Data.(raft.LeaderObservation)
			if !ok {
				continue
			}
			c.log.Info("raft leader changed", zap.String("leader", string(lo.LeaderID)), zap.String("addr", string(lo.LeaderAddr)))
			if lo.LeaderID != "" {
				c.leaderChanges.Add(1)
			}
			if string(lo.LeaderID) == c.name {
				c.lmu.Lock()
				c.leaderSince = time.Now()
				c.nonvoterSince = map[raft.ServerID]time.Time{}
				c.failingSince = map[raft.ServerID]time.Time{}
				c.resumed = map[raft.ServerID]time.Duration{}
				c.lmu.Unlock()
				c.lastVerified.Store(time.Now().UnixNano())
			}
			c.trigger()
		}
	}
}

func (c *Cluster) trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Cluster) onMemberEvent(ev membership.Event) { c.trigger() }

// reconcileLoop: the leader's periodic and event-driven work.
func (c *Cluster) reconcileLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		if c.raft.State() != raft.Leader {
			continue
		}
		c.resetReplication()
		if err := c.reconcileStreams(); err != nil && !errors.Is(err, errNotLeader) {
			c.log.Warn("stream reconcile", zap.Error(err))
		}
		for i := 0; i < 4 && c.ctx.Err() == nil; i++ { // a few config changes per round
			changed, err := c.reconcileServers()
			if err != nil {
				c.log.Warn("raft reconcile", zap.Error(err))
				break
			}
			if !changed {
				break
			}
		}
		if err := c.syncMembers(); err != nil && !errors.Is(err, errNotLeader) {
			c.log.Warn("member sync", zap.Error(err))
		}
	}
}

var errNotLeader = errors.New("not leader")

// writeVersion is the command version the leader writes: the highest every live member
// reads (the lowest Protocol.Max among them), no higher than this node's code knows
// (known). It refuses when that is below what this node can write (own.Min): a member
// would not understand the command, and the FSMs would diverge.
func writeVersion(self string, own membership.Protocol, known int, members []membership.Member) (int, error) {
	v, by := min(own.Max, known), ""
	for _, m := range members {
		if m.State == membership.StateAlive && m.Protocol.Max < v {
			v, by = m.Protocol.Max, m.Name
		}
	}
	if v < own.Min {
		return 0, fmt.Errorf("placement: member %s reads placement protocol up to %d, this leader (%s) writes %s: refusing the command; upgrade %s",
			by, v, self, own, by)
	}
	return v, nil
}

// apply a command through raft (leader only) and return the FSM's result.
func (c *Cluster) apply(cmd command) (applyResult, error) {
	v, err := writeVersion(c.name, c.cfg.Protocol, commandVersion, c.mem.Members())
	if err != nil {
		return applyResult{}, err
	}
	b, err := encodeCommand(cmd, v)
	if err != nil {
		return applyResult{}, err
	}
	start := time.Now()
	c.applying.Add(1)
	f := c.raft.Apply(b, c.cfg.RPCTimeout)
	err = f.Error()
	c.applying.Add(-1)
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return applyResult{}, errNotLeader
		}
		return applyResult{}, err
	}
	c.applyLatency.observe(time.Since(start))
	select {
	case c.commits <- struct{}{}:
	default:
	}
	res, _ := f.Response().(applyResult)
	return res, res.Err
}

// announceLoop makes the followers apply a committed change at once. Raft tells them
// what is committed only with the next AppendEntries, which without new entries waits for
// CommitTimeout (0.5-1 s); a barrier entry is replicated right away and carries the
// commit. This lets CommitTimeout stay long: an idle leader then wakes every follower
// once or twice a second for it, besides heartbeats (background work every node pays).
// A barrier is a log entry every voter writes and fsyncs, so it is spent only on the
// last change of a run: a change applied within AnnounceLinger of a commit carries that
// commit to the followers itself, and its own commit signals again.
func (c *Cluster) announceLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.commits:
		}
		if !c.lingerAfterCommit() {
			continue // a change in flight: its commit signals again
		}
		if c.raft.State() == raft.Leader {
			_ = c.raft.Barrier(c.cfg.RPCTimeout).Error() // best effort: CommitTimeout is the fallback
		}
	}
}

// lingerAfterCommit waits until AnnounceLinger has passed without a commit and reports
// whether the commits are still unannounced: false when a change is in flight (it will
// carry them) or the cluster is stopping.
func (c *Cluster) lingerAfterCommit() bool {
	for {
		select {
		case <-c.ctx.Done():
			return false
		case <-time.After(c.cfg.AnnounceLinger):
		}
		if c.applying.Load() > 0 {
			return false
		}
		select {
		case <-c.commits: // committed during the linger: wait for the rest of the run
		default:
			return true
		}
	}
}
