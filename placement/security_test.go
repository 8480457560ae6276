package placement

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"net"
	"strings"
	"testing"
	"time"
)

// outsider starts a node of cluster key key that never joins: it holds the key but is
// not a member. name may be a member's (an impostor with its own identity key).
func outsider(t *testing.T, key, name string) *Cluster {
	t.Helper()
	h := newHarness(t, key)
	return h.start(h.config(name, false))
}

// Control RPCs are honoured only from members, for themselves: a holder of the key
// that is not a member, an impostor using a member's name, and a member asking for
// another node are all refused, and the stream they aimed at stays.
func TestRPCCallerChecks(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "agreement", h.agreed)
	ctx := ctxT(t, 20*time.Second)
	a, err := nodes[1].Acquire(ctx, "live/s", "n2")
	if err != nil {
		t.Fatal(err)
	}
	leader := h.leaderNode()
	evil := outsider(t, "k", "evil")
	impostor := outsider(t, "k", "n2")
	var follower, other *Cluster
	for _, c := range nodes {
		if c != leader && follower == nil {
			follower = c
		} else if c != leader {
			other = c
		}
	}
	for _, tc := range []struct {
		name string
		from *Cluster
		req  rpcReq
	}{
		{"non-member releases a live stream", evil, rpcReq{Op: "release", Stream: "live/s", Node: "n2", Epoch: a.Epoch}},
		{"non-member acquires for itself", evil, rpcReq{Op: "acquire", Stream: "live/evil", Node: "evil"}},
		{"non-member drains a node", evil, rpcReq{Op: "drain", Node: "n2"}},
		{"non-member removes a voter", evil, rpcReq{Op: "remove", Node: "n3"}},
		{"impostor releases as n2", impostor, rpcReq{Op: "release", Stream: "live/s", Node: "n2", Epoch: a.Epoch}},
		{"impostor drains n2", impostor, rpcReq{Op: "drain", Node: "n2"}},
		{"member drains another node", follower, rpcReq{Op: "drain", Node: other.Self()}},
		{"member removes another node", follower, rpcReq{Op: "remove", Node: other.Self()}},
		{"member releases as another node", follower, rpcReq{Op: "release", Stream: "live/s", Node: other.Self(), Epoch: a.Epoch}},
	} {
		resp, err := tc.from.rpcCall(ctx, leader.RaftAddr(), tc.req)
		if err != nil || resp.Code != codeRefused {
			t.Errorf("%s: %+v, %v; want code %q", tc.name, resp, err, codeRefused)
		}
	}
	if code, err := RequestAs(ctx, "k", "n2", leader.RaftAddr(), "drain", "", "n2", 0); err != nil || code != codeRefused {
		t.Errorf("RequestAs as n2: %q, %v; want %q", code, err, codeRefused)
	}
	if _, err := RequestAs(ctx, "other", "n2", leader.RaftAddr(), "drain", "", "n2", 0); err == nil {
		t.Error("RequestAs with another key got an answer")
	}
	// A member's own request passes (an acquire of a stream whose master lives changes nothing).
	if resp, err := follower.rpcCall(ctx, leader.RaftAddr(), rpcReq{Op: "acquire", Stream: "live/s", Node: follower.Self()}); err != nil || resp.Code != codeOK {
		t.Errorf("member's acquire: %+v, %v", resp, err)
	}
	if cur, ok := leader.Lookup("live/s"); !ok || cur.Epoch != a.Epoch || cur.Master != "n2" {
		t.Fatalf("the stream changed: %+v %v", cur, ok)
	}
	v, _ := raftConfig(leader)
	if len(v) != 3 {
		t.Fatalf("voters %v after the refused removes", v)
	}
	for _, c := range nodes {
		if m, _ := c.mem.Member("n2"); m.Leaving {
			t.Fatalf("n2 marked leaving on %s", c.Self())
		}
		if rec, _ := c.fsm.member("n2"); rec.State == "leaving" {
			t.Fatalf("n2 recorded leaving on %s", c.Self())
		}
	}
}

// The raft port speaks only TLS with a cluster certificate: plain JSON gets no answer,
// and an oversized request from a member ends its connection.
func TestRPCPlainAndOversizedRefused(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(1)
	waitFor(t, 10*time.Second, "a leader", func() bool { return nodes[0].IsLeader() })
	c, err := net.DialTimeout("tcp", nodes[0].RaftAddr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte(`{"op":"drain","node":"n1"}` + "\n"))
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatalf("plain RPC answered: %q", line)
	}
	c.Close()

	conn, err := nodes[0].layer.dial(alpnRPC, nodes[0].RaftAddr(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte(`{"op":"acquire","stream":"` + strings.Repeat("a", 2*maxRequest) + `"}` + "\n"))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err == nil {
		t.Fatalf("oversized RPC answered: %q", line)
	}
	if rec, _ := nodes[0].fsm.member("n1"); rec.State == "leaving" {
		t.Fatal("plain drain applied")
	}
}

// A second node claiming a live member's name with another identity key does not take
// its place: every node keeps showing the original, with its key.
func TestDuplicateNameRefused(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "agreement", h.agreed)
	orig, _ := nodes[0].mem.Member("n2")
	waitFor(t, 10*time.Second, "n2's identity key recorded", func() bool {
		for _, c := range nodes {
			if rec, ok := c.fsm.member("n2"); !ok || rec.Key != orig.Key {
				return false
			}
		}
		return true
	})
	impostor := outsider(t, "k", "n2")
	if err := impostor.Join([]string{nodes[0].GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	// The impostor sees the cluster, so the cluster has its gossip; give it a few
	// gossip and reconcile rounds to spread.
	waitFor(t, 10*time.Second, "the impostor gossiping with the cluster", func() bool {
		return len(impostor.mem.Members()) == 3
	})
	time.Sleep(1500 * time.Millisecond)
	for _, c := range nodes {
		m, ok := c.mem.Member("n2")
		if !ok || m.Key != orig.Key || m.GossipName != orig.GossipName || m.State != "alive" {
			t.Fatalf("%s shows n2 as %+v, want the original %+v", c.Self(), m, orig)
		}
		if rec, _ := c.fsm.member("n2"); rec.Key != orig.Key || rec.Raft != orig.Raft {
			t.Fatalf("%s records n2 as %+v", c.Self(), rec)
		}
	}
	if _, err := nodes[1].Acquire(ctxT(t, 5*time.Second), "live/n2", "n2"); err != nil {
		t.Fatalf("the real n2 refused after the impostor: %v", err)
	}
}

// The node key survives restarts (the identity that keeps the name) and is private.
func TestNodeKeyPersists(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadNodeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadNodeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Fatal("node key changed across loads")
	}
	ca, _ := deriveCA("k")
	other, _ := deriveCA("other")
	cert, err := ca.issue("n1", k1)
	if err != nil {
		t.Fatal(err)
	}
	who, err := ca.verify(cert.Certificate)
	if err != nil || who.name != "n1" || who.key != keyFingerprint(k1.Public().(ed25519.PublicKey)) {
		t.Fatalf("own certificate: %+v, %v", who, err)
	}
	if _, err := other.verify(cert.Certificate); err == nil {
		t.Fatal("a certificate of another cluster key verified")
	}
}

// BenchmarkRPCRoundTrip is one forwarded request as a follower makes it: a TLS
// connection to the raft port (handshake with both certificates) and one acquire of a
// stream the node already masters (answered without a raft apply).
func BenchmarkRPCRoundTrip(b *testing.B) {
	h := newHarness(b, "k")
	nodes := h.cluster(1)
	waitFor(b, 10*time.Second, "a leader", func() bool { return nodes[0].IsLeader() })
	ctx := context.Background()
	if _, err := nodes[0].Acquire(ctx, "s", nodes[0].Self()); err != nil {
		b.Fatal(err)
	}
	req := rpcReq{Op: "acquire", Stream: "s", Node: nodes[0].Self()}
	b.ResetTimer()
	for range b.N {
		if resp, err := nodes[0].rpcCall(ctx, nodes[0].RaftAddr(), req); err != nil || resp.Code != codeOK {
			b.Fatalf("%+v %v", resp, err)
		}
	}
}
