package placement

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRecover: three nodes with two streams (one mastered by a node that will be lost);
// all stop, two data dirs are destroyed, Recover turns the third into a cluster of one
// that keeps both streams: the lost master's stream moves to the survivor (its replica)
// at a new epoch, the survivor's own keeps its epoch, the lost nodes show as left, and
// replacements with fresh data dirs under the lost names join as usual.
func TestRecover(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(3)
	waitFor(t, 15*time.Second, "agreement", h.agreed)
	n3 := nodes[2]
	if _, err := nodes[0].Acquire(ctxT(t, 5*time.Second), "live/a", "n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Acquire(ctxT(t, 5*time.Second), "live/c", "n3"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "both streams with two replicas at n3", func() bool {
		a, ok1 := n3.Lookup("live/a")
		c, ok3 := n3.Lookup("live/c")
		return ok1 && ok3 && a.Master == "n1" && len(a.Replicas) == 2 && c.Master == "n3" && len(c.Replicas) == 2
	})
	before, _ := n3.Lookup("live/a")
	own, _ := n3.Lookup("live/c")
	raftAddr := n3.RaftAddr()
	for _, c := range nodes {
		h.kill(c)
	}
	for _, name := range []string{"n1", "n2"} {
		if err := os.RemoveAll(h.dirs[name]); err != nil {
			t.Fatal(err)
		}
		delete(h.dirs, name)
	}
	key, err := os.ReadFile(h.dirs["n3"] + "/node-key")
	if err != nil {
		t.Fatal(err)
	}

	if _, err := Recover(h.dirs["n3"], []Voter{{Name: "n1", Addr: "127.0.0.1:1"}}, nil); err == nil || !strings.Contains(err.Error(), "leave out") {
		t.Fatalf("a configuration without the node itself: %v", err)
	}
	if _, err := Recover(t.TempDir(), nil, nil); err == nil {
		t.Fatal("an empty dir recovered")
	}
	rec, err := Recover(h.dirs["n3"], nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("recovered: %+v", rec)
	if rec.Node != "n3" || len(rec.Before) != 3 || !slices.Equal(rec.Lost, []string{"n1", "n2"}) || rec.Streams != 2 || rec.Index == 0 ||
		len(rec.Voters) != 1 || rec.Voters[0] != (Voter{Name: "n3", Addr: raftAddr}) {
		t.Fatalf("recovery %+v", rec)
	}
	if after, err := os.ReadFile(h.dirs["n3"] + "/node-key"); err != nil || string(after) != string(key) {
		t.Fatal("the node's identity key changed")
	}

	cfg := h.config("n3", false)
	cfg.RaftAddr = raftAddr
	c := h.start(cfg)
	waitFor(t, 10*time.Second, "n3 leads alone", func() bool {
		v, nv := raftConfig(c)
		return c.IsLeader() && slices.Equal(v, []string{"n3"}) && len(nv) == 0
	})
	waitFor(t, 10*time.Second, "live/a moved to n3, live/c kept", func() bool {
		a, ok := c.Lookup("live/a")
		o, ok3 := c.Lookup("live/c")
		return ok && ok3 && a.Master == "n3" && a.Epoch > before.Epoch && len(a.Replicas) == 0 &&
			o.Master == "n3" && o.Epoch == own.Epoch && len(o.Replicas) == 0
	})
	for _, m := range c.View().Members {
		if (m.Name == "n1" || m.Name == "n2") && m.State != "left" {
			t.Fatalf("lost node shown as %+v", m)
		}
	}

	// Replacements under the lost names, with new identity keys, join as usual.
	h.start(h.config("n1", false), c.GossipAddr())
	h.start(h.config("n2", false), c.GossipAddr())
	waitFor(t, 20*time.Second, "three agree again", func() bool { return h.agreed() && h.fsmAgreed() })
	waitFor(t, 10*time.Second, "replicas refilled", func() bool {
		a, _ := c.Lookup("live/a")
		return a.Master == "n3" && len(a.Replicas) == 2
	})
}

// TestRecoverSeveralSurvivors: two survivors given the same voters (names only: the
// addresses come from the stored configuration) elect a leader between them, and a
// replacement of the lost node joins as usual.
func TestRecoverSeveralSurvivors(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(3)
	waitFor(t, 15*time.Second, "agreement", h.agreed)
	addrs := map[string]string{}
	for _, c := range nodes {
		addrs[c.Self()] = c.RaftAddr()
		h.kill(c)
	}
	if err := os.RemoveAll(h.dirs["n1"]); err != nil {
		t.Fatal(err)
	}
	delete(h.dirs, "n1")
	voters := []Voter{{Name: "n2"}, {Name: "n3"}}
	for _, name := range []string{"n2", "n3"} {
		rec, err := Recover(h.dirs[name], voters, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rec.Lost, []string{"n1"}) || len(rec.Voters) != 2 || rec.Voters[0].Addr != addrs["n2"] {
			t.Fatalf("recovery of %s: %+v", name, rec)
		}
	}
	start := func(name string, seeds ...string) *Cluster {
		cfg := h.config(name, false)
		cfg.RaftAddr = addrs[name]
		return h.start(cfg, seeds...)
	}
	first := start("n2")
	second := start("n3", first.GossipAddr())
	// Two nodes keep one voter (desiredVoters): the leader demotes the other.
	waitFor(t, 15*time.Second, "a leader of n2 and n3", func() bool {
		v, nv := raftConfig(second)
		l := first.Leader()
		return l != "" && l == second.Leader() && len(v)+len(nv) == 2 && !slices.Contains(append(v, nv...), "n1")
	})
	h.start(h.config("n1", false), first.GossipAddr())
	waitFor(t, 20*time.Second, "three agree again", h.agreed)
}
