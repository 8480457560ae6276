package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// frameCounter is an HTTP-FLV player that counts the video frames it receives on one
// connection and the media time they cover.
type frameCounter struct {
	frames atomic.Int64
	lastTS atomic.Int64 // ms
	ended  atomic.Bool  // the connection ended
	errMu  sync.Mutex
	err    error
}

func countFrames(t *testing.T, url string) *frameCounter {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fc := &frameCounter{}
	go func() {
		defer fc.ended.Store(true)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fc.setErr(err)
			return
		}
		defer resp.Body.Close()
		fc.setErr(readFLV(bufio.NewReader(resp.Body), func(typ byte, ts uint32, _ []byte) bool {
			if typ == 9 {
				fc.frames.Add(1)
				fc.lastTS.Store(int64(ts))
			}
			return true
		}))
	}()
	return fc
}

func (fc *frameCounter) setErr(err error) { fc.errMu.Lock(); fc.err = err; fc.errMu.Unlock() }
func (fc *frameCounter) why() error       { fc.errMu.Lock(); defer fc.errMu.Unlock(); return fc.err }

// playing waits until the counter has covered d more media time than at the call, on the
// same connection.
func (fc *frameCounter) playing(t *testing.T, d time.Duration, what string) {
	t.Helper()
	from := fc.lastTS.Load()
	eventually(t, d+45*time.Second, what, func() bool {
		if fc.ended.Load() {
			t.Fatalf("%s: the player's connection ended after %d frames: %v", what, fc.frames.Load(), fc.why())
		}
		return fc.lastTS.Load()-from >= d.Milliseconds()
	})
}

func view(n *procs.Node) (procs.View, bool) {
	v, err := n.View(context.Background())
	return v, err == nil
}

// TestMajorityLoss: 3 nodes, the publisher and two players on n3; n1 and n2 are
// SIGKILLed. n3, without a leader, is degraded, not dead: its publisher and players keep
// going for 15 s of media, a new publish there plays, and it reports the state (API,
// `peer status`, metrics, one log line). n1 and n2 restart on their data dirs: the three
// agree again, with one master per stream and both streams placed at n3, whose players
// never lost their connection.
func TestMajorityLoss(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 3, nil)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	pub := publish(t, rtmpURL(n3, "live/ml"))
	eventually(t, 20*time.Second, "live/ml mastered at n3", func() bool {
		a, ok := assignment(n3, "live/ml")
		return ok && a.Master == n3.Name
	})
	players := []*frameCounter{countFrames(t, flvURL(n3, "live/ml")), countFrames(t, flvURL(n3, "live/ml"))}
	for i, p := range players {
		p.playing(t, time.Second, fmt.Sprintf("player %d playing before the kill", i+1))
	}

	n1.Kill()
	n2.Kill()
	eventually(t, 20*time.Second, "n3 degraded", func() bool {
		v, ok := view(n3)
		return ok && v.Degraded && v.Leader == ""
	})
	before := players[0].frames.Load()
	for i, p := range players {
		p.playing(t, 15*time.Second, fmt.Sprintf("player %d playing 15 s on degraded n3", i+1))
	}
	t.Logf("players on degraded n3 received %d more frames", players[0].frames.Load()-before)
	select {
	case <-pub.Done():
		t.Fatalf("the publisher on degraded n3 was dropped: %v", pub.Err())
	default:
	}

	// A new stream: no reachable node masters it, n3 takes it.
	publish(t, rtmpURL(n3, "live/new"))
	avtest.CheckPlayable(t, flvURL(n3, "live/new"), 0)
	if v, _ := view(n3); !contains(v.Unplaced, "live/new") {
		t.Errorf("n3's view does not list live/new as unplaced: %v", v.Unplaced)
	}
	if m := scrapeMetrics(n3); m["peer_degraded"] != 1 {
		t.Errorf("peer_degraded on n3 = %v, want 1", m["peer_degraded"])
	}
	out, err := exec.Command(peerBin, "status", "--api", "http://"+n3.HTTP).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "DEGRADED") || !strings.Contains(string(out), "live/new") {
		t.Errorf("peer status on degraded n3 (%v):\n%s", err, out)
	}

	for _, n := range []*procs.Node{n1, n2} {
		if err := n.Start(n3.Gossip); err != nil {
			t.Fatal(err)
		}
	}
	waitAgreed(t, c.Nodes, 60*time.Second)
	eventually(t, 30*time.Second, "the three agree on one master per stream, n3", func() bool {
		for _, s := range []string{"live/ml", "live/new"} {
			var epoch uint64
			for _, n := range c.Nodes {
				v, ok := view(n)
				a, placed := v.Stream(s)
				if !ok || v.Degraded || !placed || a.Master != n3.Name || epoch != 0 && a.Epoch != epoch {
					return false
				}
				epoch = a.Epoch
			}
		}
		return true
	})
	if v, _ := view(n3); len(v.Unplaced) > 0 || scrapeMetrics(n3)["peer_degraded"] != 0 {
		t.Errorf("n3 still reports unplaced streams %v or degraded after the heal", v.Unplaced)
	}
	for i, p := range players {
		p.playing(t, time.Second, fmt.Sprintf("player %d still playing after the restart", i+1))
	}
	for _, line := range []string{"degraded: no contact with a raft leader", "no longer degraded"} {
		if k := strings.Count(n3.Logs(), line); k != 1 {
			t.Errorf("n3 logged %q %d times, want once", line, k)
		}
	}
}

// TestMajorityLossRestartedMaster: 3 nodes, live/rm published at and mastered by n1; n1
// and n2 are SIGKILLed and the user publishes live/rm again at the degraded survivor n3
// (its last known master is dead). n1 restarts on its data dir without the publisher it
// had: placement still names it, but it is no rival. After the heal n3's publisher is
// adopted without an interruption (chaos majority-loss: it was kicked for the restarted
// master and the stream waited for a new publish elsewhere).
func TestMajorityLossRestartedMaster(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 3, nil)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	first := publish(t, rtmpURL(n1, "live/rm"))
	eventually(t, 20*time.Second, "live/rm mastered at n1, known to n3", func() bool {
		a, ok := assignment(n3, "live/rm")
		return ok && a.Master == n1.Name
	})
	n1.Kill()
	n2.Kill()
	first.Stop()
	eventually(t, 20*time.Second, "n3 degraded, n1 dead to its gossip", func() bool {
		v, ok := view(n3)
		if !ok || !v.Degraded {
			return false
		}
		for _, m := range v.Members {
			if m.Name == n1.Name {
				return m.State != "alive"
			}
		}
		return true
	})
	pub := publish(t, rtmpURL(n3, "live/rm"))
	eventually(t, 20*time.Second, "n3 masters live/rm unplaced", func() bool {
		v, ok := view(n3)
		return ok && contains(v.Unplaced, "live/rm")
	})
	player := countFrames(t, flvURL(n3, "live/rm"))
	player.playing(t, time.Second, "player on degraded n3")

	for _, n := range []*procs.Node{n1, n2} {
		if err := n.Start(n3.Gossip); err != nil {
			t.Fatal(err)
		}
	}
	waitAgreed(t, c.Nodes, 60*time.Second)
	eventually(t, 30*time.Second, "the three agree: live/rm mastered by n3 in one epoch", func() bool {
		return masteredEverywhere(c.Nodes, "live/rm", n3.Name)
	})
	player.playing(t, time.Second, "player on n3 still playing after the heal")
	select {
	case <-pub.Done():
		t.Fatalf("n3's publisher was dropped at the heal: %v", pub.Err())
	default:
	}
	if logged(n3, "publisher fenced off") {
		t.Errorf("n3 fenced off a publisher:\n%s", n3.Logs())
	}
	if got := userPublishers(c.Nodes, "live/rm"); len(got) != 1 || got[0] != n3.Name {
		t.Errorf("user publishers of live/rm: %v, want only n3", got)
	}
}

// partitionedCluster starts n nodes under their own uids so that iptables can cut one
// off (chaos_partition_test.go); it skips where partitions are unavailable.
func partitionedCluster(t *testing.T, n int) (*procs.Cluster, *partitioner, func(i int) endpoint) {
	t.Helper()
	part := newPartitioner()
	if !part.ok {
		t.Skip("partitions unavailable: " + part.reason)
	}
	if err := part.markNodes(n); err != nil {
		part.close()
		t.Skip("conntrack marks unavailable: " + err.Error())
	}
	dir, err := os.MkdirTemp("", "peer-partition")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	bin := filepath.Join(dir, "peer")
	if err := copyFile(peerBin, bin); err != nil {
		t.Fatal(err)
	}
	c := &procs.Cluster{Key: "test-key", Dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			for _, nd := range c.Nodes {
				t.Logf("---- log of %s (last 6000 bytes):\n%s", nd.Name, tail(nd.Logs(), 6000))
			}
		}
		c.StopAll()
		part.close()
		os.RemoveAll(dir)
	})
	for i := range n {
		w, err := part.wrapper(dir, bin, part.uid(i))
		if err != nil {
			t.Fatal(err)
		}
		c.Bin = w
		nd := c.NewNode(fmt.Sprintf("n%d", i+1))
		var seeds []string
		if i > 0 {
			seeds = []string{c.Nodes[0].Gossip}
		}
		if err := nd.Start(seeds...); err != nil {
			t.Fatal(err)
		}
	}
	waitAgreed(t, c.Nodes, 30*time.Second)
	ep := func(i int) endpoint {
		nd := c.Nodes[i]
		return endpoint{idx: i, uid: part.uid(i), ports: portsOf(nd.RTMP, nd.HTTP, nd.Gossip, nd.Raft)}
	}
	return c, part, ep
}

// userPublishers lists the nodes holding a user (not node-to-node) publisher of stream.
func userPublishers(nodes []*procs.Node, stream string) []string {
	var out []string
	for _, n := range nodes {
		var cr clientsResp
		if getJSON(context.Background(), "http://"+n.HTTP+"/api/v1/clients", &cr) != nil {
			out = append(out, n.Name+"?")
			continue
		}
		for _, cl := range cr.Clients {
			if cl.Publish && cl.Stream == stream && !strings.HasPrefix(cl.IP, "node:") {
				out = append(out, n.Name)
			}
		}
	}
	return out
}

// TestPartitionHeal cuts the master n3 off with its publisher. n3 turns degraded and
// keeps serving; the majority promotes a replica, and the user publishes again at it (a
// rival). n3 also takes a new stream while cut off. After the heal, Raft's placement wins:
// n3's publisher of the promoted stream is kicked (one publisher per stream; the time from
// the heal is the FIGURE line), and the stream n3 took alone is adopted without an
// interruption. No two views ever name two masters in one epoch.
func TestPartitionHeal(t *testing.T) {
	avtest.RequireTools(t)
	c, part, ep := partitionedCluster(t, 3)
	n1, n3 := c.Nodes[0], c.Nodes[2]
	old := publish(t, rtmpURL(n3, "live/p"))
	var a procs.Assignment
	eventually(t, 20*time.Second, "live/p mastered at n3 with replicas", func() bool {
		var ok bool
		a, ok = assignment(n1, "live/p")
		return ok && a.Master == n3.Name && len(a.Replicas) > 0
	})

	if err := part.partition(n3.Name, ep(2), []endpoint{ep(0), ep(1)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "n3 degraded", func() bool { v, ok := view(n3); return ok && v.Degraded })
	var promoted procs.Assignment
	eventually(t, 20*time.Second, "live/p promoted on the majority side", func() bool {
		var ok bool
		promoted, ok = assignment(n1, "live/p")
		return ok && promoted.Master != n3.Name && promoted.Epoch > a.Epoch
	})
	select {
	case <-old.Done():
		t.Fatalf("n3's publisher was dropped while n3 is cut off: %v", old.Err())
	default:
	}
	// The user publishes again at the new master (a relayed publish would show there as
	// a link, not as a user's).
	rival := publish(t, rtmpURL(c.ByName(promoted.Master), "live/p"))
	eventually(t, 20*time.Second, "the rival publisher flowing on the majority side", func() bool {
		return len(userPublishers(c.Nodes[:2], "live/p")) == 1
	})
	alone := publish(t, rtmpURL(n3, "live/alone"))
	eventually(t, 20*time.Second, "n3 serving live/alone unplaced", func() bool {
		v, ok := view(n3)
		return ok && contains(v.Unplaced, "live/alone")
	})
	player := countFrames(t, flvURL(n3, "live/alone"))
	player.playing(t, time.Second, "live/alone playing on cut-off n3")

	part.heal()
	healed := time.Now()
	eventually(t, 30*time.Second, "one publisher of live/p after the heal", func() bool {
		return len(userPublishers(c.Nodes, "live/p")) == 1
	})
	t.Logf("FIGURE heal to one publisher per stream: %d ms", time.Since(healed).Milliseconds())
	eventually(t, 10*time.Second, "n3's old publisher kicked", func() bool {
		select {
		case <-old.Done():
			return true
		default:
			return false
		}
	})
	select {
	case <-rival.Done():
		t.Fatalf("the rival publisher (placement's) was dropped: %v", rival.Err())
	default:
	}
	eventually(t, 30*time.Second, "live/alone adopted: mastered at n3 in every view", func() bool {
		return masteredEverywhere(c.Nodes, "live/alone", n3.Name)
	})
	select {
	case <-alone.Done():
		t.Fatalf("live/alone's publisher was dropped at the heal: %v", alone.Err())
	default:
	}
	player.playing(t, 2*time.Second, "live/alone still playing on the same connection after the heal")
	// Never two masters in one epoch, across the views.
	masters := map[string]string{}
	for _, n := range c.Nodes {
		v, _ := view(n)
		for _, x := range v.Streams {
			k := fmt.Sprintf("%s@%d", x.Stream, x.Epoch)
			if m, ok := masters[k]; ok && m != x.Master {
				t.Errorf("%s has masters %s and %s", k, m, x.Master)
			}
			masters[k] = x.Master
		}
	}
}

// masteredEverywhere reports that every node, none degraded, places stream at master in
// one and the same epoch.
func masteredEverywhere(nodes []*procs.Node, stream, master string) bool {
	var epoch uint64
	for _, n := range nodes {
		v, ok := view(n)
		a, placed := v.Stream(stream)
		if !ok || v.Degraded || !placed || a.Master != master || epoch != 0 && a.Epoch != epoch {
			return false
		}
		epoch = a.Epoch
	}
	return true
}
