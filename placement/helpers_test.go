package placement

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/membership"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist.Shutdown does not wait for an in-flight probe; it ends
		// after its awareness-scaled probe timeout (up to 9 x ProbeInterval).
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).sendPingAndWaitForAck"),
	)
}

func testLogger(t testing.TB) *zap.Logger {
	if os.Getenv("PEER_TEST_LOG") != "" {
		l, _ := zap.NewDevelopment()
		return l.With(zap.String("test", t.Name()))
	}
	return zap.NewNop()
}

type harness struct {
	t     testing.TB
	key   string
	mu    sync.Mutex
	nodes map[string]*Cluster
	dirs  map[string]string
	mem   bool // in-memory raft stores
	tweak func(*Config)
	why   string
}

func newHarness(t testing.TB, key string) *harness {
	h := &harness{t: t, key: key, nodes: map[string]*Cluster{}, dirs: map[string]string{}}
	t.Cleanup(h.shutdownAll)
	return h
}

func (h *harness) config(name string, bootstrap bool) Config {
	dir, ok := h.dirs[name]
	if !ok && !h.mem {
		dir = filepath.Join(h.t.TempDir(), name)
		h.dirs[name] = dir
	}
	cfg := Config{
		Name: name, DataDir: dir, InMemory: h.mem, NoSync: true,
		GossipAddr: "127.0.0.1:0", RaftAddr: "127.0.0.1:0",
		RTMPAddr: "127.0.0.1:1935", HTTPAddr: "127.0.0.1:8080",
		ClusterKey: h.key, Bootstrap: bootstrap, Version: "test", Replicas: 2,
		Network: newPartition(),
	}
	if h.tweak != nil {
		h.tweak(&cfg)
	}
	return cfg
}

func (h *harness) start(cfg Config, seeds ...string) *Cluster {
	h.t.Helper()
	c, err := New(cfg, testLogger(h.t).With(zap.String("n", cfg.Name)))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		h.t.Fatalf("start %s: %v", cfg.Name, err)
	}
	if len(seeds) > 0 {
		if err := c.Join(seeds); err != nil {
			h.t.Fatalf("join %s: %v", cfg.Name, err)
		}
	}
	h.mu.Lock()
	h.nodes[c.Self()] = c
	h.mu.Unlock()
	return c
}

// cluster starts n nodes n1..nN; n1 bootstraps.
func (h *harness) cluster(n int) []*Cluster {
	first := h.start(h.config("n1", true))
	out := []*Cluster{first}
	for i := 2; i <= n; i++ {
		out = append(out, h.start(h.config(fmt.Sprintf("n%d", i), false), first.GossipAddr()))
	}
	return out
}

func (h *harness) kill(c *Cluster) {
	c.Shutdown()
	h.mu.Lock()
	delete(h.nodes, c.Self())
	h.mu.Unlock()
}

func (h *harness) live() []*Cluster {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Cluster
	for _, c := range h.nodes {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *Cluster) int {
		if a.Self() < b.Self() {
			return -1
		}
		return 1
	})
	return out
}

func (h *harness) shutdownAll() {
	var wg sync.WaitGroup
	for _, c := range h.live() {
		wg.Add(1)
		go func() { defer wg.Done(); c.Shutdown() }()
	}
	wg.Wait()
}

func (h *harness) leaderNode() *Cluster {
	for _, c := range h.live() {
		if c.IsLeader() {
			return c
		}
	}
	return nil
}

// waitLeader returns the leader, waiting out an election.
func (h *harness) waitLeader(t testing.TB) *Cluster {
	t.Helper()
	var l *Cluster
	waitFor(t, 10*time.Second, "a raft leader", func() bool { l = h.leaderNode(); return l != nil })
	return l
}

// valid is the cheap fencing test for a master, as the data plane makes it: the local
// FSM says c owns stream at epoch and c is in contact with a leader.
func valid(c *Cluster, stream string, epoch uint64) bool {
	return c.InContact() && c.IsCurrent(stream, c.Self(), epoch)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timeout after %v waiting for %s", timeout, what)
	return 0
}

// raftConfig returns voters and nonvoters in c's view.
func raftConfig(c *Cluster) (voters, nonvoters []string) {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return nil, nil
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		} else {
			nonvoters = append(nonvoters, string(s.ID))
		}
	}
	slices.Sort(voters)
	slices.Sort(nonvoters)
	return
}

// agreed: every live node reports the same leader, sees every live node
// alive, the raft configuration holds exactly the live nodes with the
// desired odd number of voters, all healthy.
func (h *harness) agreed() bool {
	ok, why := h.agreedWhy()
	h.why = why
	return ok
}

func (h *harness) agreedWhy() (bool, string) {
	nodes := h.live()
	if len(nodes) == 0 {
		return false, "no nodes"
	}
	names := map[string]bool{}
	for _, c := range nodes {
		names[c.Self()] = true
	}
	leader := nodes[0].Leader()
	if leader == "" || !names[leader] {
		return false, "no leader"
	}
	want := desiredVoters(len(nodes), 5)
	for _, c := range nodes {
		if c.Leader() != leader {
			return false, c.Self() + " has another leader"
		}
		alive := 0
		for _, m := range c.mem.Members() {
			if names[m.Name] && m.State == membership.StateAlive {
				alive++
			}
		}
		if alive != len(nodes) {
			return false, fmt.Sprintf("%s sees %d alive", c.Self(), alive)
		}
		v, nv := raftConfig(c)
		if len(v) != want || len(v)+len(nv) != len(nodes) {
			return false, fmt.Sprintf("%s: config %v %v", c.Self(), v, nv)
		}
		for _, s := range append(v, nv...) {
			if !names[s] {
				return false, c.Self() + ": config has " + s
			}
		}
	}
	return true, ""
}

// fsmAgreed: all live nodes have the same streams in their FSM.
func (h *harness) fsmAgreed() bool {
	nodes := h.live()
	ref := nodes[0].Streams()
	for _, c := range nodes[1:] {
		s := c.Streams()
		if len(s) != len(ref) {
			return false
		}
		for i := range s {
			if !s[i].equalVal(ref[i]) {
				return false
			}
		}
	}
	return true
}

func (a Assignment) equalVal(b Assignment) bool { return a.equal(&b) }

// leaderFollower starts n agreed nodes and returns the raft leader and a follower.
func (h *harness) leaderFollower(n int) (leader, follower *Cluster) {
	h.t.Helper()
	nodes := h.cluster(n)
	waitFor(h.t, 10*time.Second, fmt.Sprintf("%d-node agreement", n), h.agreed)
	leader = h.waitLeader(h.t)
	follower = nodes[0]
	if follower == leader {
		follower = nodes[1]
	}
	return leader, follower
}

// agreedFollower starts n nodes, waits until they agree, and returns them and one
// that is not the raft leader.
func (h *harness) agreedFollower(n int) ([]*Cluster, *Cluster) {
	h.t.Helper()
	nodes := h.cluster(n)
	waitFor(h.t, 15*time.Second, "agreement", h.agreed)
	for _, c := range nodes {
		if !c.IsLeader() {
			return nodes, c
		}
	}
	h.t.Fatal("no follower")
	return nil, nil
}
