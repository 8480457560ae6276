package chaos

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// TestRecoverAfterMajorityLoss is issue 16's outage recovery: 3 nodes, a stream mastered
// by n1 and one by n3; n1 and n2 are SIGKILLed and their data dirs destroyed. The
// survivor n3 is stopped, `peer recover --data` makes its data dir a cluster of one, and
// `peer run` on it leads: both streams are kept (the lost master's moves to n3, its
// replica), a publisher publishes again and a player plays. Two fresh nodes under the
// lost names (new data dirs, new identity keys) join as usual and the three agree on one
// master per stream.
func TestRecoverAfterMajorityLoss(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 3, nil)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]

	pubLost := publish(t, rtmpURL(n1, "live/lost"))
	pubKept := publish(t, rtmpURL(n3, "live/kept"))
	var lost, kept procs.Assignment
	eventually(t, 20*time.Second, "live/lost at n1 and live/kept at n3, n3 a replica of live/lost", func() bool {
		var ok1, ok3 bool
		lost, ok1 = assignment(n3, "live/lost")
		kept, ok3 = assignment(n3, "live/kept")
		return ok1 && ok3 && lost.Master == n1.Name && contains(lost.Replicas, n3.Name) && kept.Master == n3.Name
	})

	n1.Kill()
	n2.Kill()
	pubLost.Stop()
	for _, n := range []*procs.Node{n1, n2} {
		if err := os.RemoveAll(n.Data); err != nil {
			t.Fatal(err)
		}
	}
	n3.Stop()
	pubKept.Stop()

	out, err := exec.Command(peerBin, "recover", "--data", n3.Data).CombinedOutput()
	t.Logf("peer recover:\n%s", out)
	if err != nil {
		t.Fatalf("peer recover: %v", err)
	}
	if !strings.Contains(string(out), "recorded as left: n1, n2") || !strings.Contains(string(out), "2 stream(s)") {
		t.Fatal("peer recover did not report the lost nodes and the kept streams")
	}

	if err := n3.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "n3 leads, live/lost moved to n3, live/kept kept", func() bool {
		v, err := n3.View(context.Background())
		if err != nil || v.Leader != n3.Name {
			return false
		}
		l, ok1 := v.Stream("live/lost")
		k, ok3 := v.Stream("live/kept")
		return ok1 && ok3 && l.Master == n3.Name && l.Epoch > lost.Epoch && k.Master == n3.Name && k.Epoch == kept.Epoch
	})
	publish(t, rtmpURL(n3, "live/lost"))
	publish(t, rtmpURL(n3, "live/kept"))
	avtest.CheckPlayable(t, flvURL(n3, "live/lost"), 0)

	// Replacements under the lost names, on fresh data dirs, join as usual.
	f1, f2 := c.NewNode(n1.Name), c.NewNode(n2.Name)
	c.Nodes = []*procs.Node{n3, f1, f2}
	for _, f := range []*procs.Node{f1, f2} {
		if err := f.Start(n3.Gossip); err != nil {
			t.Fatal(err)
		}
	}
	waitAgreed(t, c.Nodes, 30*time.Second)
	eventually(t, 20*time.Second, "the three agree on one master per stream", func() bool {
		var ref procs.View
		for i, n := range c.Nodes {
			v, err := n.View(context.Background())
			if err != nil || len(v.Streams) != 2 {
				return false
			}
			if i == 0 {
				ref = v
				continue
			}
			for _, a := range ref.Streams {
				b, ok := v.Stream(a.Stream)
				if !ok || b.Master != a.Master || b.Epoch != a.Epoch {
					return false
				}
			}
		}
		return true
	})
	avtest.CheckPlayable(t, flvURL(f1, "live/kept"), 0)
}
