package attack

import (
	"bufio"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
	"peer/media/rtmp"
	"peer/placement"
	"peer/placement/dataplane"
)

// clusterKey is the key newTarget's nodes run with (harness_test.go).
const clusterKey = "attack-test-key"

// legitAssignment is the legit stream's placement as node 0 sees it.
func (tg *target) legitAssignment() procs.Assignment {
	tg.t.Helper()
	v, err := tg.nodes[0].View(context.Background())
	if err != nil {
		tg.t.Fatal(err)
	}
	a, ok := v.Stream(legitStream)
	if !ok || len(a.Replicas) == 0 {
		tg.t.Fatalf("legit stream not placed with replicas: %+v", v.Streams)
	}
	return a
}

func (tg *target) byName(name string) (int, *procs.Node) {
	for i, n := range tg.nodes {
		if n.Name == name {
			return i, n
		}
	}
	tg.t.Fatalf("no node %s", name)
	return 0, nil
}

// logged waits (bounded) for a node's log to contain s.
func logged(t *testing.T, n *procs.Node, s string) {
	t.Helper()
	eventually(t, 10*time.Second, n.Name+" logging "+s, func() bool { return strings.Contains(n.Logs(), s) })
}

// linkDial publishes (or plays) app/name+query at node n as an internal link would.
func linkDial(n *procs.Node, publish bool, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	app, name, _ := strings.Cut(legitStream, "/")
	dial := rtmp.DialPlay
	if publish {
		dial = rtmp.DialPublish
	}
	c, err := dial(ctx, n.RTMP, app, name+query, 3*time.Second)
	if err == nil {
		c.Close()
	}
	return err
}

// A link with a made-up signature is refused: a forged forward to a replica does not
// replace the master's copy, a forged pull gets nothing.
func TestForgedLinkSignature(t *testing.T) {
	tg := newTarget(t, 3)
	a := tg.legitAssignment()
	i, replica := tg.byName(a.Replicas[0])
	tg.attack(i, "forged link signature (forward to a replica, pull), 20 each", 20, func() {
		for range 20 {
			q := dataplane.LinkQuery("not-the-key", "forward", legitStream, a.Master, replica.Name, a.Epoch, false, time.Now())
			if err := linkDial(replica, true, q); err == nil {
				t.Fatal("forged forward accepted")
			}
			q = dataplane.LinkQuery("", "pull", legitStream, "n9", replica.Name, a.Epoch, false, time.Now())
			if err := linkDial(replica, false, q); err == nil {
				t.Fatal("forged pull (keyless signature) accepted")
			}
		}
		logged(t, replica, "refused a cluster link")
	})
	if got := tg.legitAssignment(); got.Epoch != a.Epoch || got.Master != a.Master {
		t.Fatalf("placement changed: %+v -> %+v", a, got)
	}
}

// A captured real link ticket is good once, for the node it names, until it expires,
// and never for an older epoch: replayed, redirected, expired or stale it is refused.
func TestReplayedLinkTicket(t *testing.T) {
	tg := newTarget(t, 3)
	a := tg.legitAssignment()
	mi, master := tg.byName(a.Master)
	ri, replica := tg.byName(a.Replicas[0])
	// The master's own forward must be in place first: the captured forward ticket
	// below then only meets a busy stream.
	avtest.CheckPlayable(t, tg.rtmpURL(ri, legitStream), 0)
	tg.attack(mi, "replayed, redirected, expired and stale link tickets", 20, func() {
		// A pull ticket of an edge for the master, as captured off the wire.
		pull := dataplane.LinkQuery(clusterKey, "pull", legitStream, a.Replicas[1], master.Name, a.Epoch, false, time.Now())
		if err := linkDial(master, false, pull); err != nil {
			t.Fatalf("the captured ticket's own use: %v", err)
		}
		if err := linkDial(master, false, pull); err == nil {
			t.Fatal("replayed pull accepted")
		}
		logged(t, master, "replayed")
		redirected := dataplane.LinkQuery(clusterKey, "pull", legitStream, a.Replicas[1], master.Name, a.Epoch, false, time.Now())
		if err := linkDial(replica, false, redirected); err == nil {
			t.Fatal("pull ticket for the master accepted by a replica")
		}
		expired := dataplane.LinkQuery(clusterKey, "pull", legitStream, a.Replicas[1], master.Name, a.Epoch, false, time.Now().Add(-time.Minute))
		if err := linkDial(master, false, expired); err == nil {
			t.Fatal("expired pull accepted")
		}
		stale := dataplane.LinkQuery(clusterKey, "pull", legitStream, a.Replicas[1], master.Name, a.Epoch-1, false, time.Now())
		if err := linkDial(master, false, stale); err == nil {
			t.Fatal("pull for an older epoch accepted")
		}
		// A forward ticket of the master for a replica: its first use only finds the
		// master's own forward there (busy), the replay is refused as such.
		fwd := dataplane.LinkQuery(clusterKey, "forward", legitStream, master.Name, replica.Name, a.Epoch, false, time.Now())
		if err := linkDial(replica, true, fwd); err == nil || strings.Contains(err.Error(), "cluster link refused") {
			t.Fatalf("the forward ticket's own use: %v, want a busy stream", err)
		}
		if err := linkDial(replica, true, fwd); err == nil || !strings.Contains(err.Error(), "replayed") {
			t.Fatalf("replayed forward: %v, want refused as replayed", err)
		}
	})
	if got := tg.legitAssignment(); got.Epoch != a.Epoch || got.Master != a.Master {
		t.Fatalf("placement changed: %+v -> %+v", a, got)
	}
}

// Control RPCs to the raft ports: plain JSON without the key gets no answer; a process
// with the key that is not a member, or that takes a member's name, is refused for
// release, drain and remove of live nodes and streams. Nothing changes.
func TestRPCFromOutsiders(t *testing.T) {
	tg := newTarget(t, 3)
	a := tg.legitAssignment()
	mi, _ := tg.byName(a.Master)
	tg.attack(mi, "control RPCs without the key and from non-members with it", 20, func() {
		reqs := []struct{ op, stream, node string }{
			{"release", legitStream, a.Master}, {"drain", "", a.Master}, {"remove", "", a.Replicas[0]},
			{"acquire", "live/evil", "evil"},
		}
		for _, n := range tg.nodes {
			for _, r := range reqs {
				c, err := net.DialTimeout("tcp", n.Raft, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = c.Write([]byte(`{"op":"` + r.op + `","stream":"` + r.stream + `","node":"` + r.node + `","epoch":` +
					strconv.FormatUint(a.Epoch, 10) + "}\n"))
				if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
					t.Fatalf("%s answered a plain %s: %q", n.Name, r.op, line)
				}
				c.Close()
				for _, as := range []string{"evil", r.node} {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					code, err := placement.RequestAs(ctx, clusterKey, as, n.Raft, r.op, r.stream, r.node, a.Epoch)
					cancel()
					if err != nil || code != "refused" {
						t.Fatalf("%s to %s as %s: code %q, %v; want refused", r.op, n.Name, as, code, err)
					}
				}
			}
		}
		for _, n := range tg.nodes {
			if strings.Contains(n.Logs(), "refused RPC") {
				return
			}
		}
		t.Fatal("no node logged a refused RPC")
	})
	if got := tg.legitAssignment(); got.Epoch != a.Epoch || got.Master != a.Master {
		t.Fatalf("placement changed: %+v -> %+v", a, got)
	}
	tg.attack(mi, "300 idle and 300 junk connections to the raft port", 20, func() {
		var idle []net.Conn
		for range 300 {
			if c, err := net.DialTimeout("tcp", tg.nodes[mi].Raft, time.Second); err == nil {
				idle = append(idle, c)
			}
		}
		junk := []byte(strings.Repeat("\x16\x03\x01\xff\xff", 200))
		for range 300 {
			if c, err := net.DialTimeout("tcp", tg.nodes[mi].Raft, time.Second); err == nil {
				_, _ = c.Write(junk)
				c.Close()
			}
		}
		time.Sleep(3 * time.Second) // past the handshake timeout: the node drops the idle ones
		for _, c := range idle {
			c.Close()
		}
		logged(t, tg.nodes[mi], "refused connection")
	})
	tg.attack(mi, "2000 UDP packets without the key to the gossip port (plain deadMsg type)", 20, func() {
		before := len(tg.nodes[mi].Logs())
		c, err := net.Dial("udp", tg.nodes[mi].Gossip)
		if err != nil {
			t.Fatal(err)
		}
		pkt := append([]byte{6}, []byte(strings.Repeat("n2-dead", 40))...) // 6: memberlist's deadMsg
		for range 2000 {
			_, _ = c.Write(pkt)
		}
		c.Close()
		logged(t, tg.nodes[mi], "refused gossip from a node without the cluster key")
		if grown := len(tg.nodes[mi].Logs()) - before; grown > 20<<10 {
			t.Fatalf("the refusals wrote %d bytes of log", grown)
		}
	})
	eventually(t, 15*time.Second, "an agreed cluster view after the flood", func() bool {
		_, ok := procs.Agreed(context.Background(), tg.nodes, 3)
		return ok
	})
	v, err := tg.nodes[0].View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range v.Members {
		if m.State != "alive" {
			t.Fatalf("member %s is %s", m.Name, m.State)
		}
		if m.Raft == "voter" || m.Raft == "leader" {
			voters++
		}
	}
	if voters != 3 {
		t.Fatalf("%d voters after the refused removes: %+v", voters, v.Members)
	}
}

// A fourth process with the key and the seeds, named like a live member (n2), does not
// take its place: it is refused and logged, every node keeps the real n2 (its
// addresses), and n2 keeps its forwards.
func TestDuplicateNodeName(t *testing.T) {
	tg := newTarget(t, 3)
	a := tg.legitAssignment()
	ri, replica := tg.byName(a.Replicas[0])
	tg.attack(ri, "duplicate node name "+replica.Name+" (4th process with the key)", 30, func() {
		impostor := tg.c.NewNode(replica.Name)
		impostor.Data = filepath.Join(tg.c.Dir, replica.Name+"-impostor")
		impostor.Log = filepath.Join(tg.c.Dir, replica.Name+"-impostor.log")
		if err := impostor.Start(tg.nodes[0].Gossip); err != nil {
			t.Fatal(err)
		}
		logged(t, impostor, "joined the cluster")
		for _, n := range tg.nodes {
			logged(t, n, "refused a node claiming the name of another member")
		}
		time.Sleep(2 * time.Second) // a few gossip and reconcile rounds with the impostor in
		for _, n := range tg.nodes {
			v, err := n.View(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range v.Members {
				if m.Name == replica.Name && m.RTMP != replica.RTMP {
					t.Fatalf("%s shows %s at the impostor's address %s", n.Name, m.Name, m.RTMP)
				}
			}
		}
		if got := tg.legitAssignment(); !contains(got.Replicas, replica.Name) || got.Epoch != a.Epoch {
			t.Fatalf("%s lost its forward: %+v", replica.Name, got)
		}
		impostor.Stop()
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
