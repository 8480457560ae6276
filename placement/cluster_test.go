package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"peer/membership"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestThreeNodeJoinAgreedView(t *testing.T) {
	h := newHarness(t, "secret")
	start := time.Now()
	nodes := h.cluster(3)
	d := waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	t.Logf("3 nodes: agreed view (leader, 3 alive, 3 voters) %v after start of the first node (%v after last join)", time.Since(start), d)

	v := nodes[1].View()
	b, _ := json.Marshal(v)
	var generic map[string]any
	_ = json.Unmarshal(b, &generic)
	for _, k := range []string{"self", "leader", "members", "streams"} {
		if _, ok := generic[k]; !ok {
			t.Fatalf("view JSON lacks %q: %s", k, b)
		}
	}
	if v.Self != "n2" || v.Leader == "" || len(v.Members) != 3 {
		t.Fatalf("bad view: %s", b)
	}
	roles := map[string]int{}
	for _, m := range v.Members {
		if m.State != "alive" || m.RTMP == "" || m.HTTP == "" {
			t.Fatalf("bad member %+v", m)
		}
		roles[m.Raft]++
	}
	if roles["leader"] != 1 || roles["voter"] != 2 {
		t.Fatalf("roles %v", roles)
	}
	if !strings.Contains(string(b), `"streams":[]`) {
		t.Fatalf("streams must be an empty list: %s", b)
	}
	// A stream shows up in every view with master/replicas/epoch.
	a, err := nodes[2].Acquire(ctxT(t, 5*time.Second), "live/test", "n3")
	if err != nil || a.Master != "n3" || len(a.Replicas) != 2 || a.Epoch == 0 {
		t.Fatalf("acquire: %+v %v", a, err)
	}
	waitFor(t, 3*time.Second, "stream in every view", func() bool {
		for _, c := range nodes {
			if vs := c.View().Streams; len(vs) != 1 || vs[0].Master != "n3" {
				return false
			}
		}
		return true
	})
	b, _ = json.Marshal(nodes[0].View())
	if !strings.Contains(string(b), `"stream":"live/test","master":"n3","replicas":[`) || !strings.Contains(string(b), `"edges":[],"epoch":`) {
		t.Fatalf("stream JSON: %s", b)
	}
}

// TestFollowersLearnChangesAtOnce: followers apply a placement change without waiting
// for the leader's next idle AppendEntries (CommitTimeout, an hour here): the leader
// replicates a barrier after each change, and it carries the commit.
func TestFollowersLearnChangesAtOnce(t *testing.T) {
	h := newHarness(t, "secret")
	h.tweak = func(c *Config) { c.CommitTimeout = time.Hour }
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	for _, stream := range []string{"live/a", "live/b", "live/c"} {
		if _, err := nodes[1].Acquire(ctxT(t, 5*time.Second), stream, "n2"); err != nil {
			t.Fatalf("acquire %s: %v", stream, err)
		}
		waitFor(t, 5*time.Second, stream+" known to every node", func() bool {
			for _, c := range nodes {
				if _, ok := c.Lookup(stream); !ok {
					return false
				}
			}
			return true
		})
	}
}

func TestLeaderCrashFailover(t *testing.T) {
	h := newHarness(t, "")
	h.cluster(3)
	waitFor(t, 10*time.Second, "agreement", h.agreed)
	old := h.leaderNode()
	killed := time.Now()
	h.kill(old)
	d := waitFor(t, 10*time.Second, "new leader", func() bool {
		for _, c := range h.live() {
			if l := c.Leader(); l == "" || l == old.Self() {
				return false
			}
		}
		return true
	})
	t.Logf("leader %s crashed; new leader %s agreed by survivors after %v", old.Self(), h.live()[0].Leader(), d)
	// The time is a figure (`make figures`), not a test: a busy machine stretches it.
	// The cluster still takes decisions.
	if _, err := h.live()[0].Acquire(ctxT(t, 5*time.Second), "s", h.live()[0].Self()); err != nil {
		t.Fatal(err)
	}
	// The dead voter cannot be removed (MinQuorum 3 with 2 healthy voters):
	// config keeps 3 voters so quorum is still 2 of 3.
	time.Sleep(2500 * time.Millisecond)
	v, _ := raftConfig(h.waitLeader(t))
	if len(v) != 3 {
		t.Fatalf("voters after crash in a 3-node cluster: %v (want the dead one kept)", v)
	}
	_ = killed
}

func TestFiveNodesVoterReplacement(t *testing.T) {
	h := newHarness(t, "k")
	h.cluster(5)
	d := waitFor(t, 15*time.Second, "5-node agreement (3 voters, 2 nonvoters)", h.agreed)
	t.Logf("5 nodes agreed after %v", d)
	leader := h.leaderNode()
	voters, nonvoters := raftConfig(leader)
	if len(voters) != 3 || len(nonvoters) != 2 {
		t.Fatalf("voters %v nonvoters %v", voters, nonvoters)
	}
	var victim *Cluster
	for _, c := range h.live() {
		if c != leader && slices.Contains(voters, c.Self()) {
			victim = c
			break
		}
	}
	h.kill(victim)
	start := time.Now()
	d = waitFor(t, 15*time.Second, "dead voter replaced", func() bool {
		l := h.leaderNode()
		if l == nil {
			return false
		}
		v, nv := raftConfig(l)
		return len(v) == 3 && len(nv) == 1 && !slices.Contains(v, victim.Self()) && !slices.Contains(nv, victim.Self())
	})
	t.Logf("voter %s killed; replaced by a promoted nonvoter and removed after %v", victim.Self(), d)
	_ = start
	v, _ := raftConfig(h.waitLeader(t))
	if len(v)%2 != 1 {
		t.Fatalf("even voters %v", v)
	}
	waitFor(t, 3*time.Second, "every view lists the victim as dead, raft none", func() bool {
		for _, c := range h.live() {
			m, ok := c.mem.Member(victim.Self())
			if !ok || m.State != membership.StateDead {
				return false
			}
			found := false
			for _, mv := range c.View().Members {
				if mv.Name == victim.Self() {
					found = mv.State == "dead" && mv.Raft == "none"
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
}

func TestRestartSameDataDir(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "agreement", h.agreed)
	n3 := nodes[2]
	oldRaft := n3.RaftAddr()
	oldGossip := n3.GossipAddr()
	// A different name on the same data dir is refused.
	bad := h.config("n3", false)
	bad.Name = "other"
	if c, err := New(bad, nil); err == nil {
		if err := c.Start(context.Background()); err == nil {
			c.Shutdown()
			t.Fatal("data dir of n3 accepted for another name")
		}
	}
	h.kill(n3)
	// The last start's incarnation is stored in the data dir; pretend it is an hour
	// ahead of the clock (the clock went back since): the restart must still beat it.
	ahead := time.Now().Add(time.Hour).UnixNano()
	if err := os.WriteFile(filepath.Join(h.dirs["n3"], "incarnation"), []byte(strconv.FormatInt(ahead, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Restart from the data dir alone (no name): identity comes from node-id.
	cfg := h.config("n3", false)
	cfg.Name = ""
	restarted := time.Now()
	c := h.start(cfg, nodes[0].GossipAddr())
	if c.Self() != "n3" {
		t.Fatalf("restarted as %q", c.Self())
	}
	if c.RaftAddr() == oldRaft || c.GossipAddr() == oldGossip {
		t.Fatalf("expected new addresses (got %s %s)", c.RaftAddr(), c.GossipAddr())
	}
	d := waitFor(t, 15*time.Second, "restarted node back as itself", func() bool {
		if !h.agreed() {
			return false
		}
		l := h.leaderNode()
		f := l.raft.GetConfiguration()
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == "n3" {
				return string(s.Address) == c.RaftAddr()
			}
		}
		return false
	})
	t.Logf("n3 restarted at new addresses, back in gossip and raft (new address) after %v", d)
	if m, _ := nodes[0].mem.Member("n3"); m.Incarnation != ahead+1 || m.State != membership.StateAlive {
		t.Fatalf("n3 seen as %s with incarnation %d, want alive with %d (stored + 1)", m.State, m.Incarnation, ahead+1)
	}
	_ = restarted
	// It has its log: the FSM catches up and decisions work from it.
	if _, err := c.Acquire(ctxT(t, 5*time.Second), "after-restart", "n3"); err != nil {
		t.Fatal(err)
	}
}

func TestWrongClusterKeyRefused(t *testing.T) {
	h := newHarness(t, "right-key")
	nodes := h.cluster(2)
	waitFor(t, 10*time.Second, "agreement", h.agreed)

	// A node with another key cannot join gossip.
	hb := newHarness(t, "wrong-key")
	bad, err := New(hb.config("intruder", false), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hb.mu.Lock()
	hb.nodes["intruder"] = bad
	hb.mu.Unlock()
	if err := bad.Join([]string{nodes[0].GossipAddr()}); err == nil {
		t.Error("join with the wrong key succeeded")
	}
	// Nor reach the raft/RPC port.
	if _, err := bad.rpcCall(ctxT(t, 2*time.Second), nodes[0].RaftAddr(), rpcReq{Op: "acquire", Stream: "x", Node: "intruder"}); err == nil {
		t.Error("RPC with the wrong key accepted")
	}
	if _, err := bad.layer.Dial("127.0.0.1:1", time.Second); err == nil {
		t.Error("dial to nowhere succeeded")
	}
	// A node without any key is refused too.
	hn := newHarness(t, "")
	nokey, err := New(hn.config("nokey", false), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := nokey.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hn.mu.Lock()
	hn.nodes["nokey"] = nokey
	hn.mu.Unlock()
	_ = nokey.Join([]string{nodes[0].GossipAddr()})
	if _, err := nokey.rpcCall(ctxT(t, 2*time.Second), nodes[0].RaftAddr(), rpcReq{Op: "acquire", Stream: "x", Node: "nokey"}); err == nil {
		t.Error("RPC without key accepted")
	}
	time.Sleep(500 * time.Millisecond)
	for _, c := range nodes {
		for _, m := range c.mem.Members() {
			if m.Name == "intruder" || m.Name == "nokey" {
				t.Fatalf("%s lists %s", c.Self(), m.Name)
			}
		}
		v, nv := raftConfig(c)
		if slices.Contains(append(v, nv...), "intruder") || slices.Contains(append(v, nv...), "nokey") {
			t.Fatalf("intruder in raft: %v %v", v, nv)
		}
	}
	if _, ok := nodes[0].Lookup("x"); ok {
		t.Fatal("intruder's acquire was applied")
	}
	// The right key works.
	if _, err := nodes[1].rpcCall(ctxT(t, 2*time.Second), nodes[0].RaftAddr(), rpcReq{Op: "edge", Stream: "nope", Node: nodes[1].Self()}); err != nil {
		t.Fatalf("RPC with the right key: %v", err)
	}
}

func TestDecisions(t *testing.T) {
	h := newHarness(t, "k")
	nodes, follower := h.agreedFollower(4)
	ch, cancel := follower.Watch()
	defer cancel()
	ctx := ctxT(t, 20*time.Second)
	// Acquire from a follower (forwarded to the leader).
	a, err := follower.Acquire(ctx, "live/a", follower.Self())
	if err != nil {
		t.Fatal(err)
	}
	if a.Master != follower.Self() || len(a.Replicas) != 2 || slices.Contains(a.Replicas, a.Master) {
		t.Fatalf("assignment %+v", a)
	}
	// Idempotent for the same node; a publish elsewhere is redirected.
	b, err := nodes[0].Acquire(ctx, "live/a", nodes[0].Self())
	if err != nil || !b.equal(&a) {
		t.Fatalf("second acquire: %+v %v (want %+v)", b, err, a)
	}
	// The FSM change reaches the follower's watchers.
	select {
	case chg := <-ch:
		if chg.Kind != ChangeUpdate || chg.Stream != "live/a" || chg.New.Master != a.Master {
			t.Fatalf("change %+v", chg)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no watch event")
	}
	if !follower.IsCurrent("live/a", follower.Self(), a.Epoch) {
		t.Fatal("IsCurrent false")
	}
	if !valid(follower, "live/a", a.Epoch) {
		t.Fatal("valid false")
	}
	// Edges.
	if _, err := nodes[1].JoinEdge(ctx, "live/a", "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].JoinEdge(ctx, "live/a", "n3"); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[2].JoinEdge(ctx, "missing", "n3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("edge on missing stream: %v", err)
	}
	if err := nodes[1].LeaveEdge(ctx, "live/a", "n2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "edges replicated", func() bool {
		for _, c := range h.live() {
			x, ok := c.Lookup("live/a")
			if !ok || !slices.Equal(x.Edges, []string{"n3"}) || x.Epoch != a.Epoch {
				return false
			}
		}
		return true
	})
	// Release: wrong epoch refused, right epoch removes.
	if err := follower.Release(ctx, "live/a", follower.Self(), a.Epoch+1); !errors.Is(err, ErrStale) {
		t.Fatalf("release with wrong epoch: %v", err)
	}
	if err := follower.Release(ctx, "live/a", follower.Self(), a.Epoch); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "stream removed everywhere", func() bool {
		for _, c := range h.live() {
			if _, ok := c.Lookup("live/a"); ok {
				return false
			}
		}
		return true
	})
	// A new acquire gets a new, larger epoch.
	c2, err := nodes[2].Acquire(ctx, "live/a", nodes[2].Self())
	if err != nil || c2.Epoch <= a.Epoch || c2.Master != nodes[2].Self() {
		t.Fatalf("re-acquire %+v %v", c2, err)
	}
	// An overloaded node does not get the master role.
	nodes[3].SetLoad(membership.Load{CPU: 0.99})
	waitFor(t, 3*time.Second, "load gossiped", func() bool {
		m, _ := h.leaderNode().mem.Member(nodes[3].Self())
		return m.Load.CPU > 0.9
	})
	o, err := nodes[3].Acquire(ctx, "live/over", nodes[3].Self())
	if err != nil || o.Master == nodes[3].Self() || slices.Contains(o.Replicas, nodes[3].Self()) {
		t.Fatalf("overloaded node got a role: %+v %v", o, err)
	}
}

func TestMasterPromotionOnCrash(t *testing.T) {
	h := newHarness(t, "k")
	_, master := h.agreedFollower(4)
	ctx := ctxT(t, 10*time.Second)
	a, err := master.Acquire(ctx, "live/p", master.Self())
	if err != nil || a.Master != master.Self() {
		t.Fatalf("%+v %v", a, err)
	}
	waitFor(t, 3*time.Second, "fsm agreement", h.fsmAgreed)
	h.kill(master)
	d := waitFor(t, 10*time.Second, "replica promoted", func() bool {
		for _, c := range h.live() {
			x, ok := c.Lookup("live/p")
			if !ok || x.Master == master.Self() || !slices.Contains(a.Replicas, x.Master) || x.Epoch <= a.Epoch {
				return false
			}
		}
		return true
	})
	t.Logf("master %s crashed; replica promoted on all survivors after %v", master.Self(), d)
	waitFor(t, 5*time.Second, "replicas refilled", func() bool {
		x, _ := h.live()[0].Lookup("live/p")
		return len(x.Replicas) == 2 && !slices.Contains(x.Replicas, master.Self()) && !slices.Contains(x.Replicas, x.Master)
	})
}

func TestStaleMasterFencing(t *testing.T) {
	h := newHarness(t, "k")
	_, master := h.agreedFollower(4)
	ctx := ctxT(t, 20*time.Second)
	a, err := master.Acquire(ctx, "live/f", master.Self())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "fsm agreement", h.fsmAgreed)
	lost := make(chan time.Time, 4)
	cancel := master.OnChange(func(c Change) {
		if c.Kind == ChangeContactLost {
			lost <- time.Now()
		}
	})
	defer cancel()
	var others []*Cluster
	for _, c := range h.live() {
		if c != master {
			others = append(others, c)
		}
	}
	moved := make(chan time.Time, 16)
	cancel2 := others[0].OnChange(func(c Change) {
		if c.Stream == "live/f" && c.New != nil && c.New.Master != master.Self() {
			moved <- time.Now()
		}
	})
	defer cancel2()
	cut := time.Now()
	setPartitioned(master, true)
	d := waitFor(t, 5*time.Second, "stale master fenced", func() bool { return !valid(master, "live/f", a.Epoch) })
	t.Logf("partitioned master sees valid()=false after %v", d)
	waitFor(t, time.Second, "partitioned master degraded", master.Degraded)
	if v := master.View(); !v.Degraded || v.Leader != "" || v.DegradedSince == nil {
		t.Errorf("degraded master's view: degraded %v leader %q since %v", v.Degraded, v.Leader, v.DegradedSince)
	}
	if !master.Stats().Degraded {
		t.Error("degraded master's stats say it is not")
	}
	select {
	case at := <-lost:
		t.Logf("contact_lost event after %v", at.Sub(cut))
	case <-time.After(3 * time.Second):
		t.Error("no contact_lost event")
	}
	// Its local FSM still claims the stream (it cannot hear anyone)…
	if !master.IsCurrent("live/f", master.Self(), a.Epoch) {
		t.Log("note: local FSM already changed")
	}
	// …while the rest of the cluster moves it.
	waitFor(t, 10*time.Second, "stream moved by the majority", func() bool {
		x, ok := others[0].Lookup("live/f")
		return ok && x.Master != master.Self() && x.Epoch > a.Epoch
	})
	d2 := (<-moved).Sub(cut)
	t.Logf("majority promoted a replica %v after the partition", d2)
	if d2 < d {
		t.Errorf("stream moved (%v) before the old master was fenced (%v)", d2, d)
	}
	// Heal: the old master learns it lost the stream.
	setPartitioned(master, false)
	healed := time.Now()
	d3 := waitFor(t, 10*time.Second, "old master learns", func() bool {
		x, ok := master.Lookup("live/f")
		return ok && x.Master != master.Self() && !master.IsCurrent("live/f", master.Self(), a.Epoch)
	})
	t.Logf("after healing, the old master's FSM shows the new owner after %v", d3)
	waitFor(t, 5*time.Second, "healed master no longer degraded", func() bool { return !master.Degraded() && !master.View().Degraded })
	_ = healed
	if err := master.Release(ctx, "live/f", master.Self(), a.Epoch); !errors.Is(err, ErrStale) {
		t.Fatalf("stale release: %v", err)
	}
}

func TestGracefulLeave(t *testing.T) {
	h := newHarness(t, "k")
	nodes := h.cluster(4)
	waitFor(t, 15*time.Second, "agreement", h.agreed)
	leaver := h.leaderNode() // the hardest case: the leader leaves
	ctx := ctxT(t, 15*time.Second)
	a, err := leaver.Acquire(ctx, "live/l", leaver.Self())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := leaver.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	t.Logf("leader left gracefully in %v", time.Since(start))
	h.mu.Lock()
	delete(h.nodes, leaver.Self())
	h.mu.Unlock()
	waitFor(t, 10*time.Second, "handoff and removal", func() bool {
		for _, c := range h.live() {
			x, ok := c.Lookup("live/l")
			if !ok || x.Master == leaver.Self() || x.Epoch <= a.Epoch || slices.Contains(x.Replicas, leaver.Self()) {
				return false
			}
			m, _ := c.mem.Member(leaver.Self())
			if m.State != membership.StateLeft {
				return false
			}
		}
		leader := h.leaderNode()
		if leader == nil { // the leader left: an election may be under way
			return false
		}
		v, nv := raftConfig(leader)
		return len(v) == 3 && len(nv) == 0
	})
	_ = nodes
}

// Replicas 0 places a stream with a master only (it used to be read as "the default, 2"),
// and a negative count is refused.
func TestZeroReplicas(t *testing.T) {
	h := newHarness(t, "secret")
	h.tweak = func(c *Config) { c.Replicas = 0 }
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	a, err := nodes[1].Acquire(ctxT(t, 5*time.Second), "live/solo", "n2")
	if err != nil || a.Master != "n2" || len(a.Replicas) != 0 {
		t.Fatalf("acquire: %+v %v; want master n2 and no replicas", a, err)
	}
	cfg := h.config("n9", false)
	cfg.Replicas = -1
	if _, err := New(cfg, nil); err == nil {
		t.Fatal("replicas -1 accepted")
	}
}

// TestDegradedBypassesChangeQueue: a node that lost the leader reports itself degraded
// even while its change queue is stuck behind a subscriber that does not return (the
// data plane's decisions read Degraded, not the queued ChangeContactLost).
func TestDegradedBypassesChangeQueue(t *testing.T) {
	h := newHarness(t, "k")
	_, node := h.agreedFollower(3)
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	defer node.OnChange(func(Change) {
		select {
		case blocked <- struct{}{}:
		default:
		}
		<-release
	})()
	defer close(release) // runs before the unsubscribe and the harness's shutdown
	// Any change blocks the queue: the stream this node acquires.
	if _, err := node.Acquire(ctxT(t, 10*time.Second), "live/q", node.Self()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("change queue never reached the blocking subscriber")
	}
	setPartitioned(node, true)
	waitFor(t, 10*time.Second, "degraded while the change queue is blocked", node.Degraded)
}

// TestAdopt: a claim of a stream taken while degraded makes the caller its master when
// the stream is free, even on a node that counts as overloaded (moving the publisher
// would interrupt it), and returns a live rival's placement untouched.
func TestAdopt(t *testing.T) {
	h := newHarness(t, "k")
	h.tweak = func(c *Config) {
		c.Overloaded = func(m membership.Member, mastered int) bool { return mastered >= 1 }
	}
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	ctx := ctxT(t, 10*time.Second)
	a, err := nodes[1].Acquire(ctx, "live/a", "n2")
	if err != nil || a.Master != "n2" {
		t.Fatalf("acquire: %+v %v", a, err)
	}
	if b, err := nodes[1].Acquire(ctx, "live/b", "n2"); err != nil || b.Master == "n2" {
		t.Fatalf("acquire at a full node: %+v %v; want another master", b, err)
	}
	if c, err := nodes[1].Adopt(ctx, "live/c", "n2"); err != nil || c.Master != "n2" || c.Epoch == 0 {
		t.Fatalf("adopt of a free stream at a full node: %+v %v; want n2", c, err)
	}
	if r, err := nodes[2].Adopt(ctx, "live/a", "n3"); err != nil || r.Master != "n2" || r.Epoch != a.Epoch {
		t.Fatalf("adopt of a stream with a live master: %+v %v; want n2's placement at epoch %d", r, err, a.Epoch)
	}
}

// TestPromotionSkipsDeadNonvoter: with a voter down (fewer healthy voters than
// MinQuorum), the leader promotes a nonvoter, counting it towards the new quorum. A
// nonvoter killed just after the voter still looks alive to gossip for a while; promoted,
// it left two live voters of four (quorum 3): no leader ever again (chaos witness fault:
// the witness, then a non-voter master SIGKILLed 0.4 s apart). The leader's own
// heartbeats to it already fail: the survivors must keep a leader and end with a
// working configuration.
func TestPromotionSkipsDeadNonvoter(t *testing.T) {
	h := newHarness(t, "k")
	h.cluster(5)
	waitFor(t, 15*time.Second, "5-node agreement (3 voters, 2 nonvoters)", h.agreed)
	leader := h.leaderNode()
	voters, nonvoters := raftConfig(leader)
	var voter *Cluster
	for _, c := range h.live() {
		if c != leader && slices.Contains(voters, c.Self()) {
			voter = c
			break
		}
	}
	// promote takes the nonvoters in name order: kill the one it would pick.
	nonvoter := h.nodes[nonvoters[0]]
	h.kill(voter)
	time.Sleep(300 * time.Millisecond)
	h.kill(nonvoter)
	waitFor(t, 30*time.Second, "the survivors agree on a leader and a configuration of themselves", func() bool {
		l := h.leaderNode()
		if l == nil {
			return false
		}
		v, nv := raftConfig(l)
		return h.agreed() && len(v) == 3 && len(nv) == 0 &&
			!slices.Contains(v, nonvoter.Self()) && !slices.Contains(v, voter.Self())
	})
}

// TestAdoptRestartedMaster: a master that restarted on its data dir since it took a
// stream lost the publisher it had. It is no rival: a degraded survivor's adopt takes
// the stream (chaos majority-loss: n4's publisher of live/s3 was kicked for a restarted
// n3 that published nothing). A publish at the restarted master re-acquires the stream
// (new epoch), and a live master that did not restart stays a rival.
func TestAdoptRestartedMaster(t *testing.T) {
	h := newHarness(t, "k")
	h.tweak = func(c *Config) { c.FailoverGrace = time.Minute } // no promotion while n3 is down
	nodes := h.cluster(3)
	waitFor(t, 10*time.Second, "3-node agreement", h.agreed)
	ctx := ctxT(t, 30*time.Second)
	a, err := nodes[2].Acquire(ctx, "live/s3", "n3")
	if err != nil || a.Master != "n3" || a.MasterInc == 0 {
		t.Fatalf("acquire: %+v %v; want n3 with its incarnation", a, err)
	}
	b, err := nodes[2].Acquire(ctx, "live/b", "n3")
	if err != nil || b.Master != "n3" {
		t.Fatalf("acquire: %+v %v", b, err)
	}
	if r, err := nodes[1].Adopt(ctx, "live/s3", "n2"); err != nil || r.Master != "n3" || r.Epoch != a.Epoch {
		t.Fatalf("adopt with a live master: %+v %v; want n3's placement at epoch %d", r, err, a.Epoch)
	}
	h.kill(nodes[2])
	n3 := h.start(h.config("n3", false), nodes[0].GossipAddr())
	waitFor(t, 15*time.Second, "the leader sees n3 alive with its new incarnation", func() bool {
		l := h.leaderNode()
		if l == nil {
			return false
		}
		m, ok := l.mem.Member("n3")
		return ok && m.State == membership.StateAlive && m.Incarnation != a.MasterInc
	})
	if cur, ok := nodes[0].Lookup("live/s3"); !ok || cur.Master != "n3" {
		t.Fatalf("live/s3 placed at %+v (%v); want still n3", cur, ok)
	}
	var r Assignment
	waitFor(t, 10*time.Second, "n2's adopt of live/s3 goes through", func() bool {
		r, err = nodes[1].Adopt(ctx, "live/s3", "n2")
		return err == nil && r.Master == "n2"
	})
	if r.Epoch <= a.Epoch {
		t.Fatalf("adopted at epoch %d, want a new one past %d", r.Epoch, a.Epoch)
	}
	rb, err := n3.Acquire(ctx, "live/b", "n3")
	if err != nil || rb.Master != "n3" || rb.Epoch <= b.Epoch || rb.MasterInc == b.MasterInc {
		t.Fatalf("publish at the restarted master: %+v %v; want n3 at a new epoch past %d, new incarnation", rb, err, b.Epoch)
	}
	if r, err := nodes[1].Adopt(ctx, "live/b", "n2"); err != nil || r.Master != "n3" || r.Epoch != rb.Epoch {
		t.Fatalf("adopt of a stream re-acquired by its restarted master: %+v %v; want n3 at epoch %d", r, err, rb.Epoch)
	}
}

// TestRPCBurstReusesConnections: a burst of placement calls from one node (its
// publishers all leaving at once) waits for the pooled connections to the leader rather
// than opening one, with its TLS handshake, per call.
func TestRPCBurstReusesConnections(t *testing.T) {
	h := newHarness(t, "secret")
	_, follower := h.leaderFollower(3)
	dials := &follower.cfg.Network.(*partition).dials
	before := dials.Load()
	const calls = 64
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := follower.Acquire(ctxT(t, 10*time.Second), fmt.Sprintf("live/burst%d", i), follower.Self())
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := dials.Load() - before; n > maxRPCInFlight {
		t.Fatalf("%d calls at once opened %d connections, want at most %d", calls, n, maxRPCInFlight)
	}
}
