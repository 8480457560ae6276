package placement

import (
	"testing"
	"time"
)

// TestRestartedNodeCatchesUpAtOnce is issue 15's "a restarted node answers streams: []
// and refuses the master's copy (not placed) for about 10 s": raft's leader backs off its
// replication to a follower that keeps failing (up to 10.24 s between attempts) and
// heartbeats carry no commit index, so a follower restarted after an outage of a few
// seconds heard from the leader at once but applied nothing (its FSM: the last
// snapshot) until the next attempt. The leader now starts its replication afresh when
// heartbeats to a server resume after an outage: the restarted node's FSM holds the
// stream as soon as it is in contact.
func TestRestartedNodeCatchesUpAtOnce(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(3)
	waitFor(t, 15*time.Second, "agreement", h.agreed)
	leader := h.waitLeader(t)
	var follower *Cluster
	for _, c := range nodes {
		if c != leader {
			follower = c
		}
	}
	if _, err := leader.Acquire(ctxT(t, 5*time.Second), "live/r", leader.Self()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every FSM has the stream", h.fsmAgreed)
	name := follower.Self()
	h.kill(follower)
	// The outage: raft's retries back off meanwhile (after 25 s, by 2.5-5 s: the
	// stream then reached the restarted FSM 3.6 s after contact, and 11 ms with the fix).
	time.Sleep(3 * time.Second)
	c := h.start(h.config(name, false), leader.GossipAddr())
	contact := waitFor(t, 10*time.Second, "the restarted node in contact with the leader", func() bool { return c.Leader() != "" })
	caught := waitFor(t, 15*time.Second, "the restarted node's FSM has the stream", func() bool { _, ok := c.Lookup("live/r"); return ok })
	t.Logf("restarted node after a 3 s outage: leader known %v after the start, the stream in its FSM %v later", contact, caught)
	waitFor(t, 10*time.Second, "the leader's replication to the restarted node started afresh", func() bool {
		return leader.replicationResets.Load() > 0
	})
	waitFor(t, 15*time.Second, "agreement after the restart", h.agreed)
}
