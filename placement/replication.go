package placement

import (
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// replicationResetAfter: a server whose heartbeats resume after failing this long gets
// its replication started afresh (resetReplication).
const replicationResetAfter = time.Second

// Raft's leader backs off its replication to a follower that keeps failing, doubling up
// to 10.24 s between attempts (hashicorp/raft's failureWait and maxFailureScale), and
// only replication carries the commit index: heartbeats, which retry within 150 ms, do
// not. A follower restarted after an outage of tens of seconds therefore heard from the
// leader at once, but applied nothing beyond its last snapshot until the next attempt:
// its view said `streams: []` and it refused its master's forward ("not placed") for up
// to 10 s (issue 15). The backoff lives in raft's replication goroutine, which only a
// removal from the configuration ends; so, when heartbeats to a server resume after an
// outage, the leader removes the server and adds it again at once with the same address
// and suffrage. Its new replication goroutine has no failures: the follower gets the log
// it misses within a round trip. While the two changes commit (a few ms) the group
// counts one voter less: a voter lost in that window delays them, as any lost voter
// delays a configuration change.

// heartbeatFailed records the start of a server's outage (its last contact).
func (c *Cluster) heartbeatFailed(o raft.FailedHeartbeatObservation) {
	c.lmu.Lock()
	if _, ok := c.failingSince[o.PeerID]; !ok {
		c.failingSince[o.PeerID] = o.LastContact
	}
	c.lmu.Unlock()
}

// heartbeatResumed queues the server for resetReplication after a long enough outage.
func (c *Cluster) heartbeatResumed(o raft.ResumedHeartbeatObservation) {
	c.lmu.Lock()
	since, ok := c.failingSince[o.PeerID]
	delete(c.failingSince, o.PeerID)
	if ok && time.Since(since) >= replicationResetAfter {
		c.resumed[o.PeerID] = time.Since(since)
	}
	c.lmu.Unlock()
	if ok {
		c.trigger()
	}
}

// resetReplication (leader loop) restarts the replication of the servers back from an
// outage: removed and added again, as they were.
func (c *Cluster) resetReplication() {
	c.lmu.Lock()
	resumed := c.resumed
	c.resumed = map[raft.ServerID]time.Duration{}
	c.lmu.Unlock()
	if len(resumed) == 0 {
		return
	}
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	servers := f.Configuration().Servers
	for _, s := range servers {
		out, ok := resumed[s.ID]
		if !ok || s.ID == raft.ServerID(c.name) {
			continue
		}
		if s.Suffrage == raft.Voter && !c.quorumWithout(servers, s.ID) {
			// Removing it would leave a configuration whose quorum is not reachable now:
			// the removal could never commit and the group would stop. The backoff
			// costs at most 10 s of staleness; that is the lesser harm.
			continue
		}
		if err := c.raft.RemoveServer(s.ID, 0, c.cfg.RPCTimeout).Error(); err != nil {
			c.log.Warn("raft: replication reset: removal failed", zap.String("server", string(s.ID)), zap.Error(err))
			continue
		}
		add := c.raft.AddNonvoter
		if s.Suffrage == raft.Voter {
			add = c.raft.AddVoter
		}
		if err := add(s.ID, s.Address, 0, c.cfg.RPCTimeout).Error(); err != nil {
			// The next leader round adds it back as a newcomer (addNewcomers).
			c.log.Warn("raft: replication reset: adding back failed", zap.String("server", string(s.ID)), zap.Error(err))
			continue
		}
		c.replicationResets.Add(1)
		c.log.Info("raft: replication to a server back from an outage started afresh", zap.String("server", string(s.ID)),
			zap.Duration("outage", out), zap.String("suffrage", s.Suffrage.String()))
	}
}

// heartbeatsFailing reports whether this leader's heartbeats to server id fail now.
func (c *Cluster) heartbeatsFailing(id raft.ServerID) bool {
	c.lmu.Lock()
	defer c.lmu.Unlock()
	_, failing := c.failingSince[id]
	return failing
}

// quorumWithout reports whether the voters of servers other than id, less those whose
// heartbeats are failing now, are a majority of the voters other than id: the quorum a
// configuration without id needs to commit.
func (c *Cluster) quorumWithout(servers []raft.Server, id raft.ServerID) bool {
	c.lmu.Lock()
	defer c.lmu.Unlock()
	voters, healthy := 0, 0
	for _, s := range servers {
		if s.ID == id || s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if _, failing := c.failingSince[s.ID]; !failing {
			healthy++
		}
	}
	return healthy > voters/2
}
