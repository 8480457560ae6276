package placement

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"peer/membership"
)

var simFlag = flag.Bool("sim", false, "run the large placement simulation (TestSimulation)")

// TestSimulation (50 nodes, 1000 streams, kill 20%):
//
//	go test ./placement/ -run 'TestSimulation$' -sim -v
//	PEER_SIM=1 go test -run 'TestSimulation$' -v ./placement/
func TestSimulation(t *testing.T) {
	if !*simFlag && os.Getenv("PEER_SIM") == "" {
		t.Skip("use -sim (go test ./placement/ -run TestSimulation -sim) or PEER_SIM=1 to run the large simulation")
	}
	runSim(t, 50, 1000, 0.2, 64)
}

// TestSimulationSmall is the default-run variant: 20 nodes, 200 streams, kill 5 (the
// leader, one more voter, three nonvoters). It caught the promotion of a just-killed
// nonvoter that left the raft configuration without a quorum (promotionSafe).
func TestSimulationSmall(t *testing.T) {
	runSim(t, 20, 200, 0.25, 16)
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p)
	return s[i]
}

// placementHealthy: every live node's FSM agrees; every stream has a live
// master, Replicas distinct live nodes ≠ master, no dead edges.
func (h *harness) placementHealthy(replicas int) (bool, string) {
	nodes := h.live()
	alive := map[string]bool{}
	for _, c := range nodes {
		alive[c.Self()] = true
	}
	if !h.fsmAgreed() {
		return false, "FSMs differ"
	}
	for _, a := range nodes[0].Streams() {
		if !alive[a.Master] {
			return false, fmt.Sprintf("%s: dead master %s (%s)", a.Stream, a.Master, h.leaderView(a))
		}
		if len(a.Replicas) != min(replicas, len(nodes)-1) {
			return false, fmt.Sprintf("%s: replicas %v", a.Stream, a.Replicas)
		}
		seen := map[string]bool{a.Master: true}
		for _, r := range a.Replicas {
			if !alive[r] || seen[r] {
				return false, fmt.Sprintf("%s: bad replica set %v (master %s)", a.Stream, a.Replicas, a.Master)
			}
			seen[r] = true
		}
		for _, e := range a.Edges {
			if !alive[e] {
				return false, fmt.Sprintf("%s: dead edge %s", a.Stream, e)
			}
		}
	}
	return true, ""
}

// leaderView describes how the leader sees a stream's nodes (for a failure message).
func (h *harness) leaderView(a Assignment) string {
	l := h.leaderNode()
	if l == nil {
		return "no leader"
	}
	out := "leader " + l.Self() + ":"
	for _, n := range append([]string{a.Master}, a.Replicas...) {
		m, ok := l.mem.Member(n)
		out += fmt.Sprintf(" %s=%v/%s/%v", n, ok, m.State, time.Since(m.Since).Round(time.Millisecond))
	}
	return out + fmt.Sprintf(" epoch %d", a.Epoch)
}

func runSim(t *testing.T, n, streams int, killFrac float64, workers int) {
	h := newHarness(t, "sim-key")
	h.mem = true
	if n >= 20 {
		h.tweak = func(c *Config) {
			// 20-50 memberlists + rafts share 2 cores in one process: relax
			// the failure detector a little to avoid false positives.
			c.Gossip = membership.FastLAN()
			c.Gossip.ProbeInterval = 400 * time.Millisecond
			c.Gossip.ProbeTimeout = 200 * time.Millisecond
			c.Gossip.GossipInterval = 100 * time.Millisecond
			c.Gossip.SuspicionMult = 3
			c.Gossip.RejoinInterval = 5 * time.Second
			c.HeartbeatTimeout = 500 * time.Millisecond
			c.ElectionTimeout = 500 * time.Millisecond
			c.LeaderLeaseTimeout = 250 * time.Millisecond
			c.FenceTimeout = 2 * time.Second
		}
	}
	t0 := time.Now()
	first := h.start(h.config("n01", true))
	for i := 2; i <= n; i++ {
		h.start(h.config(fmt.Sprintf("n%02d", i), false), first.GossipAddr())
	}
	joined := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("last disagreement: %s", h.why)
			for _, c := range h.live() {
				v, nv := raftConfig(c)
				t.Logf("node %s: raft %s, leader %q, voters %v, %d nonvoters", c.Self(), c.raft.State(), c.Leader(), v, len(nv))
			}
		}
	}()
	waitFor(t, 60*time.Second, "membership + raft agreement", h.agreed)
	t.Logf("SIM %d nodes: started in %v; agreed view (leader, all alive everywhere, %d voters) %v after the last join",
		n, joined.Sub(t0), desiredVoters(n, 5), time.Since(joined))

	// Decisions: Acquire from random nodes with concurrent workers.
	nodes := h.live()
	rng := rand.New(rand.NewSource(1))
	type job struct {
		stream string
		at     *Cluster
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var lat []time.Duration
	var errs []error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				s := time.Now()
				a, err := j.at.Acquire(ctx, j.stream, j.at.Self())
				d := time.Since(s)
				cancel()
				if err == nil && j.at.Self() != a.Master {
					err = fmt.Errorf("%s acquired at %s got master %s", j.stream, j.at.Self(), a.Master)
				}
				mu.Lock()
				lat = append(lat, d)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
	ds := time.Now()
	for i := 0; i < streams; i++ {
		jobs <- job{fmt.Sprintf("live/s%04d", i), nodes[rng.Intn(len(nodes))]}
	}
	close(jobs)
	wg.Wait()
	total := time.Since(ds)
	if len(errs) > 0 {
		t.Fatalf("%d acquire errors, first: %v", len(errs), errs[0])
	}
	t.Logf("SIM %d Acquire decisions (%d concurrent callers, random nodes, ~%d%% forwarded): p50 %v p99 %v max %v, %.0f decisions/s",
		streams, workers, 100*(n-1)/n, percentile(lat, .5), percentile(lat, .99), percentile(lat, 1), float64(streams)/total.Seconds())
	// Some edges so that dead edges get cleaned up too.
	for i := 0; i < streams; i += 10 {
		at := nodes[rng.Intn(len(nodes))]
		if _, err := at.JoinEdge(context.Background(), fmt.Sprintf("live/s%04d", i), at.Self()); err != nil {
			t.Fatal(err)
		}
	}
	d := waitFor(t, 20*time.Second, "placement replicated", func() bool { ok, _ := h.placementHealthy(2); return ok })
	t.Logf("SIM all %d FSMs agree %v after the last decision", n, d)
	// Balance of masters.
	counts := nodes[0].fsm.masterCounts()
	var cs []int
	for _, c := range counts {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	t.Logf("SIM masters per node: min %d median %d max %d", cs[0], cs[len(cs)/2], cs[len(cs)-1])

	// Kill killFrac of the nodes: the leader, one more voter, the rest nonvoters
	// (killing a majority of voters would lose raft quorum by design).
	leader := h.leaderNode()
	voters, _ := raftConfig(leader)
	kill := int(float64(n)*killFrac + 0.5)
	victims := []*Cluster{leader}
	for _, c := range h.live() {
		if len(victims) >= kill {
			break
		}
		isVoter := slices.Contains(voters, c.Self())
		if c == leader || (isVoter && len(victims) >= (len(voters)-1)/2) {
			continue
		}
		victims = append(victims, c)
	}
	var names []string
	affected := 0
	for _, v := range victims {
		names = append(names, v.Self())
	}
	for _, a := range nodes[0].Streams() {
		if slices.Contains(names, a.Master) {
			affected++
		}
	}
	killedAt := time.Now()
	var kwg sync.WaitGroup
	for _, v := range victims {
		kwg.Add(1)
		go func() { defer kwg.Done(); h.kill(v) }()
	}
	kwg.Wait()

	dl := waitFor(t, 30*time.Second, "new leader", func() bool {
		l := h.live()[0].Leader()
		return l != "" && !slices.Contains(names, l)
	})
	ds2 := waitFor(t, 60*time.Second, "placement recovered", func() bool {
		ok, w := h.placementHealthy(2)

		h.why = w
		return ok
	})
	streamsAt := time.Since(killedAt)
	waitFor(t, 60*time.Second, "raft configuration recovered", func() bool {
		l := h.leaderNode()
		if l == nil {
			return false
		}
		v, nv := raftConfig(l)
		for _, x := range append(v, nv...) {
			if slices.Contains(names, x) {
				return false
			}
		}
		return len(v) == desiredVoters(len(h.live()), 5)
	})
	t.Logf("SIM killed %d of %d nodes (incl. leader, %d masters affected, %d streams): new leader after %v; all streams re-placed & FSMs agree after %v (%v after leader); raft config clean with %d voters after %v",
		len(victims), n, affected, streams, dl, streamsAt, ds2, desiredVoters(len(h.live()), 5), time.Since(killedAt))
	for _, v := range victims {
		if m, _ := h.live()[0].mem.Member(v.Self()); m.State != membership.StateDead {
			t.Fatalf("%s state %s", v.Self(), m.State)
		}
	}
	// Decisions keep working after the failure.
	lat = lat[:0]
	for i := 0; i < 50; i++ {
		at := h.live()[rng.Intn(len(h.live()))]
		s := time.Now()
		if _, err := at.Acquire(context.Background(), fmt.Sprintf("live/after%d", i), at.Self()); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(s))
	}
	t.Logf("SIM sequential decisions after failure: p50 %v p99 %v", percentile(lat, .5), percentile(lat, .99))
	_ = raft.Voter
}
