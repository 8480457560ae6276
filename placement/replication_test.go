package placement

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestReplicationResetKeepsQuorum: the leader restarts a returning voter's replication
// (a removal, then an add) only when the configuration without it can commit now; with a
// second voter down, the removal would have stopped the group for good.
func TestReplicationResetKeepsQuorum(t *testing.T) {
	servers := []raft.Server{
		{ID: "n1", Suffrage: raft.Voter}, {ID: "n2", Suffrage: raft.Voter}, {ID: "n3", Suffrage: raft.Voter},
		{ID: "n4", Suffrage: raft.Nonvoter},
	}
	c := &Cluster{failingSince: map[raft.ServerID]time.Time{}}
	if !c.quorumWithout(servers, "n3") {
		t.Error("n1 and n2 healthy: removing n3 leaves a working quorum")
	}
	c.failingSince["n2"] = time.Now()
	if c.quorumWithout(servers, "n3") {
		t.Error("n2 failing: without n3 only n1 of {n1, n2} answers, not a quorum")
	}
}
