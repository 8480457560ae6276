package chaos

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// TestWitness is the seed's two hosts plus a small third machine: two media nodes and a
// witness (`--witness`, a Raft voter that carries no media). Either media node may die:
// the other keeps quorum with the witness, takes the stream over, and a new publish there
// plays. The witness is never given a stream and serves no media.
func TestWitness(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 3, func(i int) []string {
		if i == 2 {
			return []string{"--witness"}
		}
		return nil
	})
	n1, n2, w := c.Nodes[0], c.Nodes[1], c.Nodes[2]

	// The witness takes no RTMP and no players; its API answers.
	if conn, err := net.DialTimeout("tcp", w.RTMP, time.Second); err == nil {
		conn.Close()
		t.Error("the witness listens for RTMP")
	}
	if resp, err := http.Get(flvURL(w, "live/x")); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("the witness answered a player with %s", resp.Status)
		}
	}
	view, err := w.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if view.Leader == "" {
		t.Fatal("the witness sees no leader")
	}

	noWitness := func(a procs.Assignment) bool {
		return a.Master != w.Name && !contains(a.Replicas, w.Name) && !contains(a.Edges, w.Name)
	}

	// 1. Kill the replica: the master keeps its stream and the cluster its quorum.
	pub := publish(t, rtmpURL(n1, "live/two"))
	eventually(t, 20*time.Second, "live/two on n1 with n2 as replica", func() bool {
		a, ok := assignment(n1, "live/two")
		return ok && a.Master == n1.Name && contains(a.Replicas, n2.Name) && noWitness(a)
	})
	n2.Kill()
	eventually(t, 20*time.Second, "n2's replica role dropped", func() bool {
		a, ok := assignment(n1, "live/two")
		return ok && a.Master == n1.Name && !contains(a.Replicas, n2.Name) && noWitness(a)
	})
	avtest.CheckPlayable(t, flvURL(n1, "live/two"), 0)
	if err := n2.Start(n1.Gossip); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "n2 back as the replica", func() bool {
		a, ok := assignment(n2, "live/two")
		return ok && a.Master == n1.Name && contains(a.Replicas, n2.Name)
	})
	waitAgreed(t, c.Nodes, 30*time.Second)

	// 2. Kill the master: n2 is promoted (quorum: n2 and the witness) and serves.
	before, _ := assignment(n2, "live/two")
	n1.Kill()
	pub.Stop()
	eventually(t, 20*time.Second, "n2 promoted", func() bool {
		a, ok := assignment(n2, "live/two")
		return ok && a.Master == n2.Name && a.Epoch > before.Epoch && noWitness(a)
	})
	publish(t, rtmpURL(n2, "live/after"))
	eventually(t, 20*time.Second, "a new publish at n2 placed", func() bool {
		a, ok := assignment(n2, "live/after")
		return ok && a.Master == n2.Name && noWitness(a)
	})
	avtest.CheckPlayable(t, flvURL(n2, "live/after"), 0)
}
