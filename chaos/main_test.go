package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

var peerBin string

// TestMain builds the peer binary once, or takes PEER_BIN (e.g. a -race build).
func TestMain(m *testing.M) { os.Exit(procs.RunWithBinary(m, "..", &peerBin, nil)) }

// startCluster starts n peer processes (the first runs, the others join it) and waits
// until they agree on a leader and on each other being alive.
func startCluster(t *testing.T, n int, extra func(i int) []string) (*procs.Cluster, time.Duration) {
	t.Helper()
	c := &procs.Cluster{Bin: peerBin, Key: "test-key", Dir: t.TempDir()}
	t.Cleanup(func() {
		for _, nd := range c.Nodes {
			if log := nd.Logs(); strings.Contains(log, "DATA RACE") || strings.Contains(log, "panic:") {
				t.Errorf("%s logged a data race or a panic", nd.Name)
			}
		}
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("---- log of %s (last 6000 bytes):\n%s", nd.Name, tail(nd.Logs(), 6000))
			}
		}
		c.StopAll()
	})
	start := time.Now()
	for i := range n {
		var args []string
		if extra != nil {
			args = extra(i)
		}
		nd := c.NewNode(fmt.Sprintf("n%d", i+1), args...)
		var seeds []string
		if i > 0 {
			seeds = []string{c.Nodes[0].Gossip}
		}
		if err := nd.Start(seeds...); err != nil {
			t.Fatal(err)
		}
	}
	waitAgreed(t, c.Nodes, 20*time.Second)
	return c, time.Since(start)
}

// relayingCluster starts 3 nodes of which n3 may master one stream only and holds
// live/filler: a stream published at n3 (the ingress) is mastered elsewhere and relayed.
func relayingCluster(t *testing.T) (*procs.Cluster, *procs.Node) {
	t.Helper()
	c, _ := startCluster(t, 3, func(i int) []string {
		if i == 2 {
			return []string{"--max-streams", "1"}
		}
		return nil
	})
	ingress := c.Nodes[2]
	publish(t, rtmpURL(ingress, "live/filler"))
	eventually(t, 15*time.Second, "filler placed at n3", func() bool {
		a, ok := assignment(ingress, "live/filler")
		return ok && a.Master == ingress.Name
	})
	return c, ingress
}

// relayedAssignment waits until stream, published at ingress, is placed on another
// master with a replica, and returns its assignment.
func relayedAssignment(t *testing.T, ingress *procs.Node, stream string) procs.Assignment {
	t.Helper()
	var a procs.Assignment
	eventually(t, 15*time.Second, stream+" placed elsewhere with a replica", func() bool {
		var ok bool
		a, ok = assignment(ingress, stream)
		return ok && a.Master != ingress.Name && len(a.Replicas) > 0
	})
	return a
}

func waitAgreed(t *testing.T, nodes []*procs.Node, timeout time.Duration) string {
	t.Helper()
	var leader string
	eventually(t, timeout, "an agreed cluster view", func() bool {
		var ok bool
		leader, ok = procs.Agreed(context.Background(), nodes, min(len(nodes), 3))
		return ok
	})
	return leader
}

func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// assignment polls node's view for stream.
func assignment(n *procs.Node, stream string) (procs.Assignment, bool) {
	v, err := n.View(context.Background())
	if err != nil {
		return procs.Assignment{}, false
	}
	return v.Stream(stream)
}

func publish(t *testing.T, url string) *avtest.Proc {
	t.Helper()
	p, err := avtest.Publish(url, avtest.PublishOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

func rtmpURL(n *procs.Node, stream string) string { return "rtmp://" + n.RTMP + "/" + stream }
func flvURL(n *procs.Node, stream string) string  { return "http://" + n.HTTP + "/" + stream + ".flv" }
func hlsURL(n *procs.Node, stream string) string  { return "http://" + n.HTTP + "/" + stream + ".m3u8" }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func logged(n *procs.Node, part string) bool { return strings.Contains(n.Logs(), part) }
