package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// Fault kinds. The restore events (restart, thaw, heal) are measured and tabled too
// but are not counted as faults.
const (
	fKillRandom = "kill-random"
	fKillLeader = "kill-leader"
	fKillMaster = "kill-master"
	fKillEdge   = "kill-edge"
	fFreeze     = "freeze"
	fPartition  = "partition"
	fRolling    = "rolling-restart"
	fMajority   = "majority-loss"
	fWitness    = "witness"
	eRestart    = "restart"
	eThaw       = "thaw"
	eHeal       = "heal"
)

var allFaults = []string{fKillRandom, fKillLeader, fKillMaster, fKillEdge, fFreeze, fPartition, fRolling, fMajority, fWitness}

type chaosConfig struct {
	Nodes      int
	Duration   time.Duration // faults are started while this much time has not passed
	Seed       int64
	Publishers int
	Players    int
	Kinds      []string // drawn at random (seeded)...
	Script     []string // ...unless a fixed sequence is given
	PlayBound  time.Duration
	MaxRecover time.Duration
	Hold       time.Duration // SIGSTOP / partition length
	Outage     time.Duration // how long the survivors of a majority loss serve alone
	Witness    bool          // the last node is a --witness (a voter without media)
	GapBound   time.Duration // longest silence a player on a healthy node may see
	Grace      time.Duration // after thaw/heal/restart a node may hold stale state this long
	Settle     time.Duration // after the run, before goroutines/fds are compared
}

type window struct{ from, to time.Time } // to zero: ongoing

// aloneWindow: a survivor of a majority loss, degraded, is judged only on the streams it
// served alone when the others died (mastered there, published there).
type aloneWindow struct {
	window
	streams []string
}

type nodeState struct {
	name        string
	idx         int
	proc        *procs.Node
	uid         int
	extra       []string
	witness     bool
	status      string // up, killed, frozen, partitioned
	faults      []window
	alone       []aloneWindow // survivor of a majority loss
	graceUntil  time.Time
	restored    time.Time // the harness ended its last fault (thaw, heal, restart)
	inContact   time.Time // since when its polls show it in contact with a leader (zero: degraded)
	everFaulted bool
	base        nodeMetrics
}

type nodeAddr struct{ rtmp, http, gossip string }

type violation struct {
	at   time.Duration
	kind string
	msg  string
}

type recovery struct {
	kind string
	d    time.Duration
	ok   bool
}

type zombie struct {
	proc   *avtest.Proc
	node   string
	stream string
}

type harness struct {
	t     *testing.T
	cfg   chaosConfig
	rng   *rand.Rand // fault schedule only (one goroutine)
	start time.Time
	c     *procs.Cluster
	dir   string
	part  *partitioner

	mu         sync.Mutex
	nodes      []*nodeState
	streams    []string
	pubs       []*publisher
	players    []*chaosPlayer
	violations []violation
	lastViol   map[string]time.Time
	recs       []recovery
	zombies    []zombie
	faultCount int
	kicked     int // publishers dropped by a healthy ingress (fencing on leader loss)
	pending    map[string]int
	checkClean bool
	notes      []string
}

func (h *harness) logf(format string, args ...any) {
	fmt.Printf("chaos %6.1fs  %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

func (h *harness) violate(kind, key, msg string) {
	h.mu.Lock()
	k := kind + "|" + key
	if at, ok := h.lastViol[k]; ok && time.Since(at) < 30*time.Second {
		h.mu.Unlock()
		return
	}
	h.lastViol[k] = time.Now()
	h.violations = append(h.violations, violation{at: time.Since(h.start), kind: kind, msg: msg})
	h.mu.Unlock()
	h.logf("VIOLATION %s: %s", kind, msg)
}

func (h *harness) node(name string) *nodeState {
	for _, n := range h.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// nodeAddrs returns the current addresses of a node that is up.
func (h *harness) nodeAddrs(name string) (nodeAddr, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	if n == nil || n.status != "up" {
		return nodeAddr{}, false
	}
	return nodeAddr{rtmp: n.proc.RTMP, http: n.proc.HTTP, gossip: n.proc.Gossip}, true
}

// mediaUp is upNames without the witness: the nodes publishers and players may use.
func (h *harness) mediaUp(exclude ...string) []string {
	var out []string
	for _, name := range h.upNames(exclude...) {
		if !h.isWitness(name) {
			out = append(out, name)
		}
	}
	return out
}

func (h *harness) isWitness(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	return n != nil && n.witness
}

func (h *harness) isUp(name string) bool {
	_, ok := h.nodeAddrs(name)
	return ok
}

// excusedNode: was name faulted (or being restored) at any time since since?
func (h *harness) excusedNode(name string, since time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	if n == nil {
		return true
	}
	for _, w := range n.faults {
		if w.to.IsZero() || w.to.After(since) {
			return true
		}
	}
	return false
}

// excused: may a player or publisher of stream on name have been cut off since since?
// Yes when name was faulted, or when it survived a majority loss and did not serve
// stream alone (its source was on a dead node; nothing could take it over).
func (h *harness) excused(name, stream string, since time.Time) bool {
	if h.excusedNode(name, since) {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range h.node(name).alone {
		if (w.to.IsZero() || w.to.After(since)) && !contains(w.streams, stream) {
			return true
		}
	}
	return false
}

// inGrace reports a node that came back (thaw, heal, restart) so recently that it may
// still serve stale state: its players are excused.
func (h *harness) inGrace(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	return n == nil || time.Now().Before(n.graceUntil)
}

func (h *harness) upNames(exclude ...string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, n := range h.nodes {
		if n.status == "up" && !contains(exclude, n.name) {
			out = append(out, n.name)
		}
	}
	return out
}

func (h *harness) procsOf(names []string) []*procs.Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*procs.Node
	for _, name := range names {
		out = append(out, h.node(name).proc)
	}
	return out
}

// openFault marks name faulted from now (status st); closeFault ends the window at to.
func (h *harness) openFault(name, st string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	n.status = st
	n.everFaulted = true
	n.faults = append(n.faults, window{from: time.Now()})
}

func (h *harness) closeFault(name string, to time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	if k := len(n.faults); k > 0 && n.faults[k-1].to.IsZero() {
		n.faults[k-1].to = to
	}
}

func (h *harness) setStatus(name, st string, grace time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	n.status = st
	if grace > 0 {
		n.graceUntil = time.Now().Add(grace)
	}
	if st == "up" {
		n.restored = time.Now()
	}
}

// healWindow: after a heal, at most one publisher per stream within this long (the
// invariant of docs/design.md, "Fencing").
const healWindow = 2 * time.Second

// leaderConnected records what p shows of its node's contact with a leader and reports
// whether the node counts for the one-publisher invariant: in contact with a leader, for
// healWindow since both its last restore and its last degraded poll.
func (h *harness) leaderConnected(p poll, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(p.name)
	switch {
	case p.view.Degraded:
		n.inContact = time.Time{}
		return false
	case n.inContact.IsZero():
		n.inContact = now
	}
	return now.Sub(n.inContact) >= healWindow && now.Sub(n.restored) >= healWindow
}

// ---- cluster ----

func newHarness(t *testing.T, cfg chaosConfig) *harness {
	h := &harness{t: t, cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)), start: time.Now(),
		lastViol: map[string]time.Time{}, pending: map[string]int{}}
	dir, err := os.MkdirTemp("", "peer-chaos-run")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777) // nodes run under their own uids and create their data dirs here
	h.dir = dir
	h.part = newPartitioner()
	if h.part.ok {
		bin := filepath.Join(dir, "peer")
		if err := copyFile(peerBin, bin); err != nil {
			h.part.close()
			t.Fatal(err)
		}
		h.c = &procs.Cluster{Bin: bin, Key: "chaos-key", Dir: dir}
	} else {
		h.c = &procs.Cluster{Bin: peerBin, Key: "chaos-key", Dir: dir}
	}
	t.Cleanup(func() {
		h.c.StopAll()
		h.part.close()
		if t.Failed() {
			shown := map[string]bool{}
			for _, n := range h.c.Nodes {
				if !shown[n.Log] {
					shown[n.Log] = true
					t.Logf("---- log of %s (%s, last 3000 bytes):\n%s", n.Name, n.Log, tail(n.Logs(), 3000))
				}
			}
		}
		if os.Getenv("CHAOS_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			t.Logf("kept %s", dir)
		}
	})
	return h
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// newProc prepares a procs.Node for n with fresh ports, run under n's uid when
// partitions are possible.
func (h *harness) newProc(n *nodeState) *procs.Node {
	bin := h.c.Bin
	if h.part.ok {
		w, err := h.part.wrapper(h.dir, filepath.Join(h.dir, "peer"), n.uid)
		if err != nil {
			h.t.Fatal(err)
		}
		h.c.Bin = w
		defer func() { h.c.Bin = bin }()
	}
	p := h.c.NewNode(n.name, n.extra...)
	p.Data = filepath.Join(h.dir, n.name)
	return p
}

func (h *harness) startCluster() {
	if h.part.ok {
		if err := h.part.markNodes(h.cfg.Nodes); err != nil {
			h.part.ok, h.part.reason = false, "conntrack marks unavailable: "+err.Error()
		}
	}
	for i := range h.cfg.Nodes {
		n := &nodeState{name: fmt.Sprintf("n%d", i+1), idx: i, status: "up"}
		if h.part.ok {
			n.uid = h.part.uid(i)
		}
		switch {
		case i == h.cfg.Nodes-1:
			// A node that masters one stream at most: further publishes there are relayed.
			n.extra = []string{"--max-streams", "1"}
		case i == 1 && h.cfg.Witness:
			// Started second, the witness is among the first three voters (a cluster
			// under 7 servers has 3).
			n.witness, n.extra = true, []string{"--witness"}
		}
		n.proc = h.newProc(n)
		var seeds []string
		if i > 0 {
			seeds = []string{h.nodes[0].proc.Gossip}
		}
		if err := n.proc.Start(seeds...); err != nil {
			h.t.Fatal(err)
		}
		h.nodes = append(h.nodes, n)
	}
	h.waitUntil(40*time.Second, "an agreed cluster view", func() bool {
		_, ok := procs.Agreed(context.Background(), h.procsOf(h.upNames()), min(h.cfg.Nodes, 3))
		return ok
	})
}

func (h *harness) waitUntil(timeout time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// leaderView returns the view of the current leader (falling back to any node's).
func (h *harness) leaderView() (procs.View, bool) {
	var any procs.View
	found := false
	for _, name := range h.upNames() {
		v, err := h.procsOf([]string{name})[0].View(context.Background())
		if err != nil || v.Leader == "" {
			continue
		}
		if v.Self == v.Leader {
			return v, true
		}
		if !found {
			any, found = v, true
		}
	}
	return any, found
}

// ---- publishers ----

type publisher struct {
	h        *harness
	stream   string
	rng      *rand.Rand
	mu       sync.Mutex
	ingress  string
	proc     *avtest.Proc
	accepted time.Time
	starts   int
	refused  int
	done     chan struct{}
}

func (p *publisher) run(ctx context.Context, first string) {
	defer close(p.done)
	target := first
	for ctx.Err() == nil {
		if target == "" || !p.h.isUp(target) {
			up := p.h.mediaUp()
			if len(up) == 0 {
				sleepCtx(ctx, 500*time.Millisecond)
				continue
			}
			target = up[p.rng.Intn(len(up))]
		}
		addr, ok := p.h.nodeAddrs(target)
		if !ok {
			target = ""
			continue
		}
		proc, err := avtest.Publish("rtmp://"+addr.rtmp+"/"+p.stream, avtest.PublishOptions{Size: "160x120"})
		if err != nil {
			p.h.violate("harness", p.stream, "cannot start ffmpeg: "+err.Error())
			return
		}
		select {
		case <-proc.Done(): // refused (the cluster has not moved the stream yet, or a stale node)
			p.mu.Lock()
			p.refused++
			p.mu.Unlock()
			target = ""
			sleepCtx(ctx, 300*time.Millisecond)
			continue
		case <-time.After(2 * time.Second):
		case <-ctx.Done():
			proc.Stop()
			return
		}
		acceptedAt := time.Now()
		p.mu.Lock()
		p.ingress, p.proc, p.accepted = target, proc, acceptedAt
		p.starts++
		p.mu.Unlock()
		if p.starts > 1 {
			p.h.logf("publisher %s re-published at %s", p.stream, target)
		}
	watch:
		for {
			select {
			case <-ctx.Done():
				proc.Stop()
				return
			case <-proc.Done():
				if !p.h.excused(target, p.stream, acceptedAt) {
					p.h.mu.Lock()
					p.h.kicked++
					p.h.mu.Unlock()
					p.h.logf("publisher %s dropped by healthy ingress %s: %s", p.stream, target, strings.TrimSpace(lastLine(proc.Stderr.String())))
				}
				break watch
			case <-time.After(200 * time.Millisecond):
				if !p.h.isUp(target) { // the ingress was killed, frozen or cut off: publish elsewhere
					p.h.mu.Lock()
					p.h.zombies = append(p.h.zombies, zombie{proc: proc, node: target, stream: p.stream})
					p.h.mu.Unlock()
					break watch
				}
			}
		}
		p.mu.Lock()
		p.proc = nil
		p.mu.Unlock()
		target = ""
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// checkZombies judges the publishers left on a node that was frozen or cut off, once
// the node is back, by the invariant of docs/design.md ("Fencing"): a degraded node keeps
// its publishers, and after the heal placement wins within healWindow. So a publisher
// still connected the grace + healWindow after the node came back is stale only when the
// stream also has a user publisher at another node in contact with a leader (its rival:
// placement should have kicked one of them); without one it was adopted, which is
// allowed. Either way the harness then stops it (its own publisher has moved on).
func (h *harness) checkZombies(node string, restored time.Time) {
	deadline := restored.Add(h.cfg.Grace + healWindow)
	for {
		h.mu.Lock()
		var left []zombie
		var mine []zombie
		for _, z := range h.zombies {
			select {
			case <-z.proc.Done():
				continue
			default:
			}
			if z.node == node {
				mine = append(mine, z)
			} else {
				left = append(left, z)
			}
		}
		h.zombies = append(left, mine...)
		h.mu.Unlock()
		if len(mine) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			polls := h.pollAll(ctx)
			cancel()
			for _, z := range mine {
				if rivals := rivalPublishers(polls, z.stream, node); len(rivals) > 0 {
					h.violate("stale-publisher", z.stream+"@"+node, fmt.Sprintf("publisher of %s on %s still connected %v after the node came back, while %v publish it too",
						z.stream, node, time.Since(restored).Round(time.Millisecond), rivals))
				} else {
					h.logf("      publisher of %s on %s kept after the heal (adopted: no rival publisher)", z.stream, node)
				}
				z.proc.Stop()
			}
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// rivalPublishers lists the nodes other than node, in contact with a leader, that hold
// a user publisher of stream.
func rivalPublishers(polls []poll, stream, node string) []string {
	var out []string
	for _, p := range polls {
		if !p.ok || p.view.Degraded || p.name == node {
			continue
		}
		for _, c := range p.clients.Clients {
			if c.Publish && c.Stream == stream && !strings.HasPrefix(c.IP, "node:") {
				out = append(out, p.name)
				break
			}
		}
	}
	return out
}

// ---- API polling and invariants ----

type clientsResp struct {
	Clients []struct {
		Stream  string
		IP      string
		Publish bool
		Type    string
	}
}

type streamsResp struct {
	Streams []struct {
		ID      string
		Publish struct{ Active bool }
	}
}

var apiClient = &http.Client{Timeout: 2 * time.Second}

func getJSON(ctx context.Context, url string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := apiClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

type poll struct {
	name    string
	ok      bool
	view    procs.View
	clients clientsResp
	streams streamsResp
}

func (h *harness) pollAll(ctx context.Context) []poll {
	h.mu.Lock()
	var targets []poll
	var addrs []string
	for _, n := range h.nodes {
		if n.status == "up" || n.status == "partitioned" {
			targets = append(targets, poll{name: n.name})
			addrs = append(addrs, n.proc.HTTP)
		}
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for i := range targets {
		wg.Add(1)
		go func(p *poll, addr string) {
			defer wg.Done()
			base := "http://" + addr
			if getJSON(ctx, base+"/api/v1/cluster", &p.view) != nil || getJSON(ctx, base+"/api/v1/clients", &p.clients) != nil ||
				getJSON(ctx, base+"/api/v1/streams", &p.streams) != nil {
				return
			}
			p.ok = true
		}(&targets[i], addrs[i])
	}
	wg.Wait()
	return targets
}

// checker polls every node once a second and judges the invariants.
func (h *harness) checker(ctx context.Context) {
	for ctx.Err() == nil {
		round := time.Now()
		polls := h.pollAll(ctx)
		if ctx.Err() != nil {
			return
		}
		clean := true
		seen := map[string]bool{}
		flag := func(key, kind, msg string) {
			clean = false
			seen[key] = true
			h.mu.Lock()
			h.pending[key]++
			n := h.pending[key]
			h.mu.Unlock()
			if n >= 2 { // held over two rounds: not an artefact of polling nodes one after another
				h.violate(kind, key, msg)
			}
		}
		// 1. Two nodes with different masters for one stream in one epoch.
		type se struct {
			s string
			e uint64
		}
		masters := map[se]map[string][]string{}
		for _, p := range polls {
			if !p.ok {
				continue
			}
			for _, a := range p.view.Streams {
				k := se{a.Stream, a.Epoch}
				if masters[k] == nil {
					masters[k] = map[string][]string{}
				}
				masters[k][a.Master] = append(masters[k][a.Master], p.name)
			}
		}
		for k, m := range masters {
			if len(m) > 1 {
				h.violate("split-brain", fmt.Sprintf("%s@%d", k.s, k.e), fmt.Sprintf("stream %s epoch %d has different masters in different views: %v", k.s, k.e, m))
				clean = false
			}
		}
		// Among the nodes in contact with a leader (a degraded node keeps serving what it
		// has; after a heal it has healWindow to give way):
		// 2. more than one node holding a user (non-node) publisher for a stream;
		// 3. more than one node that believes it masters a stream and has a publisher.
		users := map[string][]string{}
		origins := map[string][]string{}
		for _, p := range polls {
			if !p.ok || !h.leaderConnected(p, round) {
				continue
			}
			for _, c := range p.clients.Clients {
				if c.Publish && !strings.HasPrefix(c.IP, "node:") {
					users[c.Stream] = append(users[c.Stream], p.name)
				}
			}
			for _, s := range p.streams.Streams {
				if a, ok := p.view.Stream(s.ID); ok && s.Publish.Active && a.Master == p.name {
					origins[s.ID] = append(origins[s.ID], fmt.Sprintf("%s(epoch %d)", p.name, a.Epoch))
				}
			}
		}
		for s, ns := range users {
			if len(ns) > 1 {
				flag("users|"+s, "two-publishers", fmt.Sprintf("stream %s has user publishers accepted at %v at once", s, ns))
			}
		}
		for s, ns := range origins {
			if len(ns) > 1 {
				flag("origins|"+s, "two-masters", fmt.Sprintf("stream %s is mastered with an active publisher at %v at once", s, ns))
			}
		}
		h.mu.Lock()
		for k := range h.pending {
			if !seen[k] {
				delete(h.pending, k)
			}
		}
		h.checkClean = clean
		players := h.players
		h.mu.Unlock()
		// 4. Players on healthy nodes never stall longer than the bound.
		now := time.Now()
		for _, p := range players {
			if d, start, ok := p.stalled(now); ok && d > h.cfg.GapBound && !h.excused(p.node, p.stream, start) {
				p.markStall()
				h.violate("player-stalled", p.label(), fmt.Sprintf("%s received nothing for %v on a healthy node", p.label(), d.Round(time.Millisecond)))
			}
		}
		sleepCtx(ctx, time.Second-time.Since(round))
	}
}

// ---- recovery ----

// recovered: the live nodes agree on a live leader and on each other, the checker's
// last round was clean, and every stream flows live at every live node. It returns
// since when the streams have been flowing everywhere.
func (h *harness) recovered(ctx context.Context, live []string) (bool, time.Time, string) {
	ps := h.procsOf(live)
	if leader, ok := procs.Agreed(ctx, ps, min(len(ps), 3)); !ok || !contains(live, leader) {
		return false, time.Time{}, fmt.Sprintf("nodes %v do not agree on a live leader and on each other", live)
	}
	h.mu.Lock()
	clean := h.checkClean
	h.mu.Unlock()
	if !clean {
		return false, time.Time{}, "an invariant is violated"
	}
	var bad []string
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, since := true, time.Time{}
	for _, p := range ps {
		if h.isWitness(p.Name) { // carries no media
			continue
		}
		for _, s := range h.streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				live, from := probeLive(ctx, p.HTTP, s, 3*time.Second)
				mu.Lock()
				defer mu.Unlock()
				ok = ok && live
				if !live {
					bad = append(bad, s+"@"+p.Name)
				}
				if from.After(since) {
					since = from
				}
			}()
		}
	}
	wg.Wait()
	sort.Strings(bad)
	return ok, since, fmt.Sprintf("not flowing: %v", bad)
}

// awaitRecovery measures event from t0 until recovered (live: the up nodes, minus
// exclude) or until deadline.
func (h *harness) awaitRecovery(ctx context.Context, event string, t0, deadline time.Time, exclude ...string) time.Duration {
	why := ""
	for ctx.Err() == nil && time.Now().Before(deadline) {
		ok, since, w := h.recovered(ctx, h.upNames(exclude...))
		why = w
		if ok {
			d := since.Sub(t0)
			if d < 0 {
				d = 0
			}
			h.record(event, d, true)
			return d
		}
		sleepCtx(ctx, 250*time.Millisecond)
	}
	d := time.Since(t0)
	h.record(event, d, false)
	h.violate("not-recovered", event+fmt.Sprint(time.Since(h.start).Round(time.Second)),
		fmt.Sprintf("%s: not recovered %v after the event: %s", event, d.Round(time.Millisecond), why))
	return d
}

func (h *harness) record(event string, d time.Duration, ok bool) {
	h.mu.Lock()
	h.recs = append(h.recs, recovery{kind: event, d: d, ok: ok})
	h.mu.Unlock()
	if ok && d > h.cfg.PlayBound {
		h.violate("slow-recovery", event+fmt.Sprint(time.Since(h.start).Round(time.Second)),
			fmt.Sprintf("%s: streams playable everywhere only after %v (bound %v)", event, d.Round(time.Millisecond), h.cfg.PlayBound))
	}
	h.logf("  %s recovered in %v%s", event, d.Round(time.Millisecond), map[bool]string{true: "", false: " (NOT recovered)"}[ok])
}

// ---- faults ----

func (h *harness) pickTarget(kind string) (string, string) {
	up := h.upNames()
	if len(up) == 0 {
		return "", ""
	}
	v, ok := h.leaderView()
	random := func() string { return up[h.rng.Intn(len(up))] }
	switch kind {
	case fKillLeader:
		if ok && contains(up, v.Leader) {
			return v.Leader, "raft leader"
		}
	case fKillMaster:
		if ok && len(v.Streams) > 0 {
			a := v.Streams[h.rng.Intn(len(v.Streams))]
			if contains(up, a.Master) {
				return a.Master, "master of " + a.Stream
			}
		}
	case fKillEdge:
		if ok {
			// A node that is neither master nor replica of some stream and has players of it.
			type cand struct{ node, stream string }
			var cands []cand
			h.mu.Lock()
			players := h.players
			h.mu.Unlock()
			for _, a := range v.Streams {
				for _, n := range up {
					if n == a.Master || contains(a.Replicas, n) {
						continue
					}
					for _, p := range players {
						if p.node == n && p.stream == a.Stream {
							cands = append(cands, cand{n, a.Stream})
							break
						}
					}
				}
			}
			sort.Slice(cands, func(i, j int) bool { return cands[i].node+cands[i].stream < cands[j].node+cands[j].stream })
			if len(cands) > 0 {
				c := cands[h.rng.Intn(len(cands))]
				return c.node, "edge of " + c.stream + " with players"
			}
		}
	}
	return random(), "random node"
}

func (h *harness) inject(ctx context.Context, kind string) {
	switch kind {
	case fMajority:
		h.majorityLoss(ctx)
		return
	case fWitness:
		h.witnessFault(ctx)
		return
	}
	target, why := h.pickTarget(kind)
	if target == "" {
		return
	}
	n := h.node(target)
	h.mu.Lock()
	h.faultCount++
	h.mu.Unlock()
	switch kind {
	case fKillRandom, fKillLeader, fKillMaster, fKillEdge:
		h.logf("FAULT %s: SIGKILL %s (%s)", kind, target, why)
		t0 := time.Now()
		h.openFault(target, "killed")
		n.proc.Kill()
		h.awaitRecovery(ctx, kind, t0, t0.Add(h.cfg.MaxRecover))
		sleepCtx(ctx, time.Duration(1000+h.rng.Intn(2000))*time.Millisecond)
		h.restart(ctx, n)
	case fRolling:
		// An upgrade: every node in turn gets SIGTERM (which drains it: its streams move
		// to their replicas first) and starts again on its data dir.
		h.logf("FAULT %s: every node in turn: SIGTERM (drain), restart on its data dir", kind)
		for _, name := range h.upNames() {
			n := h.node(name)
			h.logf("      SIGTERM %s", name)
			t0 := time.Now()
			h.openFault(name, "draining")
			n.proc.Stop()
			h.awaitRecovery(ctx, kind, t0, t0.Add(h.cfg.MaxRecover))
			h.restart(ctx, n)
		}
	case fFreeze:
		h.logf("FAULT %s: SIGSTOP %s (%s) for %v", kind, target, why, h.cfg.Hold)
		t0 := time.Now()
		h.openFault(target, "frozen")
		n.proc.Pause()
		h.awaitRecovery(ctx, kind, t0, t0.Add(h.cfg.Hold))
		sleepCtx(ctx, time.Until(t0.Add(h.cfg.Hold)))
		h.logf("      SIGCONT %s", target)
		t1 := time.Now()
		n.proc.Resume()
		h.setStatus(target, "up", h.cfg.Grace)
		h.awaitRecovery(ctx, eThaw, t1, t1.Add(h.cfg.MaxRecover))
		h.closeFault(target, time.Now().Add(3*time.Second))
		h.checkZombies(target, t1)
	case fPartition:
		h.logf("FAULT %s: cut %s (%s) off from the other nodes for %v", kind, target, why, h.cfg.Hold)
		t0 := time.Now()
		h.openFault(target, "partitioned")
		if err := h.part.partition(target, h.endpointOf(target), h.endpointsExcept(target)); err != nil {
			h.violate("harness", "partition", err.Error())
		}
		h.awaitRecovery(ctx, kind, t0, t0.Add(h.cfg.Hold), target)
		sleepCtx(ctx, time.Until(t0.Add(h.cfg.Hold)))
		h.logf("      heal %s", target)
		t1 := time.Now()
		h.part.heal()
		h.setStatus(target, "up", h.cfg.Grace)
		h.awaitRecovery(ctx, eHeal, t1, t1.Add(h.cfg.MaxRecover))
		h.closeFault(target, time.Now().Add(3*time.Second))
		h.checkZombies(target, t1)
	}
}

// voters lists the up nodes the leader's view shows as Raft voters.
func (h *harness) voters() []string {
	v, ok := h.leaderView()
	if !ok {
		return nil
	}
	up := h.upNames()
	var out []string
	for _, m := range v.Members {
		if (m.Raft == "leader" || m.Raft == "voter") && contains(up, m.Name) {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out
}

// servedAlone maps each up media node to the streams it masters with the user's
// publisher connected there: what it can go on serving with every other node gone.
func (h *harness) servedAlone(ctx context.Context) map[string][]string {
	out := map[string][]string{}
	for _, p := range h.pollAll(ctx) {
		if !p.ok || h.isWitness(p.name) {
			continue
		}
		for _, c := range p.clients.Clients {
			if a, ok := p.view.Stream(c.Stream); ok && c.Publish && !strings.HasPrefix(c.IP, "node:") && a.Master == p.name {
				out[p.name] = append(out[p.name], c.Stream)
			}
		}
	}
	return out
}

// majorityLoss SIGKILLs a majority of the voters at once (sparing, when there is one, a
// node serving a stream alone), lets the survivors run degraded for cfg.Outage, judges
// them on what they serve alone (their publishers stay connected, their players keep
// playing; everything else on them is excused), then restarts the killed nodes on their
// data dirs and measures the recovery from the restart. The checker judges the heal:
// two publishers of one stream among nodes in contact with a leader only within
// healWindow.
func (h *harness) majorityLoss(ctx context.Context) {
	voters := h.voters()
	alone := h.servedAlone(ctx)
	var cands []string
	for name := range alone {
		cands = append(cands, name)
	}
	sort.Strings(cands)
	spared := ""
	if len(cands) > 0 {
		spared = cands[h.rng.Intn(len(cands))]
	}
	var pool []string
	for _, v := range voters {
		if v != spared {
			pool = append(pool, v)
		}
	}
	need := len(voters)/2 + 1
	if len(voters) < 3 || len(pool) < need {
		h.logf("FAULT %s skipped: voters %v", fMajority, voters)
		return
	}
	h.rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	killed := pool[:need]
	sort.Strings(killed)
	survivors := h.upNames(killed...)
	h.mu.Lock()
	h.faultCount++
	h.mu.Unlock()
	h.logf("FAULT %s: SIGKILL %v of voters %v at once; survivors %v serve alone %v for %v", fMajority, killed, voters, survivors, alone, h.cfg.Outage)
	// What the survivors serve alone, and by which publisher process.
	type held struct {
		node, stream string
		proc         *avtest.Proc
	}
	var kept []held
	// ...and their players connected now, by session start.
	judged := map[*chaosPlayer]time.Time{}
	t0 := time.Now()
	h.mu.Lock()
	for _, p := range h.players {
		p.mu.Lock()
		if contains(survivors, p.node) && contains(alone[p.node], p.stream) && p.connected {
			judged[p] = p.sessStart
		}
		p.mu.Unlock()
	}
	for _, name := range survivors {
		n := h.node(name)
		n.alone = append(n.alone, aloneWindow{window: window{from: t0}, streams: alone[name]})
		for _, s := range alone[name] {
			for _, p := range h.pubs {
				p.mu.Lock()
				if p.stream == s && p.ingress == name && p.proc != nil {
					kept = append(kept, held{name, s, p.proc})
				}
				p.mu.Unlock()
			}
		}
	}
	h.mu.Unlock()
	for _, name := range killed {
		h.openFault(name, "killed")
		h.node(name).proc.Kill()
	}
	degraded := map[string]bool{}
	for end := t0.Add(h.cfg.Outage); ctx.Err() == nil && time.Now().Before(end); sleepCtx(ctx, 500*time.Millisecond) {
		for _, p := range h.pollAll(ctx) {
			if p.ok && p.view.Degraded {
				degraded[p.name] = true
			}
		}
	}
	if ctx.Err() != nil {
		return
	}
	for _, name := range survivors {
		if !degraded[name] {
			h.violate("not-degraded", name, fmt.Sprintf("%s never reported degraded while a majority %v was dead", name, killed))
		}
	}
	dropped := 0
	for _, k := range kept {
		select {
		case <-k.proc.Done():
			dropped++
			h.violate("degraded-dropped", k.stream+"@"+k.node, fmt.Sprintf("the publisher of %s on %s, which it served alone, was dropped during the majority loss", k.stream, k.node))
		default:
		}
	}
	playing := 0
	for p, start := range judged {
		p.mu.Lock()
		if p.connected && p.sessStart.Equal(start) && time.Since(p.lastData) < h.cfg.GapBound {
			playing++
		} else {
			h.violate("degraded-player", p.label(), fmt.Sprintf("%s, of a stream its node served alone, stopped playing during the majority loss", p.label()))
		}
		p.mu.Unlock()
	}
	h.logf("      survivors degraded %v; publishers served alone kept %d of %d; their players playing on one session %d of %d",
		degraded, len(kept)-dropped, len(kept), playing, len(judged))
	t1 := time.Now()
	for _, name := range killed {
		h.relaunch(h.node(name))
	}
	h.awaitRecovery(ctx, fMajority, t1, t1.Add(h.cfg.MaxRecover))
	to := time.Now().Add(3 * time.Second)
	for _, name := range killed {
		h.closeFault(name, to)
	}
	h.mu.Lock()
	for _, name := range survivors {
		n := h.node(name)
		n.alone[len(n.alone)-1].to = to
	}
	h.mu.Unlock()
}

// witnessFault SIGKILLs the witness; while it is down it also SIGKILLs a media node
// (a stream's master when one will do) whose loss leaves the voters a quorum, then
// restarts both.
func (h *harness) witnessFault(ctx context.Context) {
	w := ""
	for _, name := range h.upNames() {
		if h.isWitness(name) {
			w = name
		}
	}
	if w == "" {
		h.logf("FAULT %s skipped: no witness up", fWitness)
		return
	}
	voters := h.voters()
	h.mu.Lock()
	h.faultCount++
	h.mu.Unlock()
	h.logf("FAULT %s: SIGKILL the witness %s (voters %v)", fWitness, w, voters)
	if !contains(voters, w) {
		h.logf("      the witness is not a voter now (it lost its seat while down before)")
	}
	t0 := time.Now()
	h.openFault(w, "killed")
	h.node(w).proc.Kill()
	h.awaitRecovery(ctx, fWitness, t0, t0.Add(h.cfg.MaxRecover))
	// A stream's master whose loss leaves a quorum (a non-voter when the witness's
	// death already took the margin), else any media node whose loss does.
	left := func(target string) int {
		k := 0
		for _, v := range voters {
			if v != w && v != target {
				k++
			}
		}
		return k
	}
	target, why := "", ""
	if v, ok := h.leaderView(); ok {
		for _, a := range v.Streams {
			if h.isUp(a.Master) && 2*left(a.Master) > len(voters) && (target == "" || a.Master < target) {
				target, why = a.Master, "master of "+a.Stream
			}
		}
	}
	if target == "" {
		for _, name := range h.mediaUp() {
			if 2*left(name) > len(voters) {
				target, why = name, "media node"
				break
			}
		}
	}
	if target != "" {
		h.logf("      SIGKILL %s (%s) while the witness is down: %d of %d voters left", target, why, left(target), len(voters))
		t1 := time.Now()
		n := h.node(target)
		h.openFault(target, "killed")
		n.proc.Kill()
		h.awaitRecovery(ctx, fWitness, t1, t1.Add(h.cfg.MaxRecover))
		sleepCtx(ctx, time.Duration(1000+h.rng.Intn(2000))*time.Millisecond)
		h.restart(ctx, n)
	} else {
		h.logf("      no media node killed while the witness is down: none leaves a quorum of voters %v", voters)
	}
	sleepCtx(ctx, time.Duration(1000+h.rng.Intn(2000))*time.Millisecond)
	h.restart(ctx, h.node(w))
}

func (h *harness) endpointOf(name string) endpoint {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.node(name)
	return endpoint{idx: n.idx, uid: n.uid, ports: portsOf(n.proc.RTMP, n.proc.HTTP, n.proc.Gossip, n.proc.Raft)}
}

func (h *harness) endpointsExcept(name string) []endpoint {
	var out []endpoint
	for _, n := range h.nodes {
		if n.name != name {
			out = append(out, h.endpointOf(n.name))
		}
	}
	return out
}

// restart brings a killed node back with its data dir (relaunch) and measures the
// recovery.
func (h *harness) restart(ctx context.Context, n *nodeState) {
	t1 := time.Now()
	if !h.relaunch(n) {
		return
	}
	h.awaitRecovery(ctx, eRestart, t1, t1.Add(h.cfg.MaxRecover))
	h.closeFault(n.name, time.Now().Add(3*time.Second))
}

// relaunch starts a killed node again with its data dir: `peer join <live gossip>`, on
// the same ports or new ones (seeded choice).
func (h *harness) relaunch(n *nodeState) bool {
	live := h.upNames()
	if len(live) == 0 {
		h.violate("harness", "restart", "no live node to join through")
		return false
	}
	seed, _ := h.nodeAddrs(live[h.rng.Intn(len(live))])
	same := h.rng.Intn(2) == 0
	proc := n.proc
	if !same {
		proc = h.newProc(n)
	}
	h.logf("      restart %s (%s ports) joining %s", n.name, map[bool]string{true: "same", false: "new"}[same], seed.gossip)
	if err := proc.Start(seed.gossip); err != nil {
		h.violate("harness", "restart", err.Error())
		return false
	}
	h.mu.Lock()
	n.proc = proc
	h.mu.Unlock()
	h.setStatus(n.name, "up", h.cfg.Grace)
	return true
}

// ---- metrics ----

type nodeMetrics struct {
	goroutines, fds float64
	ok              bool
}

func fetchMetrics(httpAddr string) nodeMetrics {
	resp, err := apiClient.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return nodeMetrics{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	var m nodeMetrics
	got := 0
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_goroutines":
			m.goroutines = v
			got++
		case "process_open_fds":
			m.fds = v
			got++
		}
	}
	m.ok = got == 2
	return m
}

// ---- the run ----

func runChaos(t *testing.T, cfg chaosConfig) {
	avtest.RequireTools(t)
	cfg.Witness = contains(cfg.Kinds, fWitness) || contains(cfg.Script, fWitness)
	h := newHarness(t, cfg)
	kinds := cfg.Kinds
	if !h.part.ok {
		var k2 []string
		for _, k := range kinds {
			if k != fPartition {
				k2 = append(k2, k)
			}
		}
		if len(k2) != len(kinds) || contains(cfg.Script, fPartition) {
			h.notes = append(h.notes, "partition faults skipped: "+h.part.reason)
			h.logf("partition faults skipped: %s", h.part.reason)
		}
		kinds = k2
	} else {
		h.logf("partitions: iptables owner match, nodes run as uids %d..%d (chain %s)", h.part.uid(0), h.part.uid(cfg.Nodes-1), h.part.chain)
	}
	h.logf("seed %d, %d nodes (witness: %v), %d publishers, %d players, faults for %v", cfg.Seed, cfg.Nodes, cfg.Witness, cfg.Publishers, cfg.Players, cfg.Duration)
	h.startCluster()
	h.logf("cluster of %d agreed", cfg.Nodes)
	// Baseline before any load.
	time.Sleep(time.Second)
	for _, n := range h.nodes {
		n.base = fetchMetrics(n.proc.HTTP)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopAll := func() {
		cancel()
		wg.Wait()
		h.mu.Lock()
		zs := h.zombies
		h.mu.Unlock()
		for _, z := range zs {
			z.proc.Stop()
		}
	}
	t.Cleanup(stopAll)

	// Publishers: the first at the --max-streams 1 node (it masters it), the second at the
	// same node (relayed elsewhere), the rest at random nodes.
	media := h.mediaUp()
	last := media[len(media)-1]
	prng := rand.New(rand.NewSource(cfg.Seed + 1))
	for i := range cfg.Publishers {
		s := fmt.Sprintf("live/s%d", i+1)
		first := last
		if i >= 2 {
			first = media[prng.Intn(len(media)-1)]
		}
		p := &publisher{h: h, stream: s, rng: rand.New(rand.NewSource(cfg.Seed + 10 + int64(i))), done: make(chan struct{})}
		h.streams = append(h.streams, s)
		h.pubs = append(h.pubs, p)
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx, first) }()
		h.waitUntil(20*time.Second, s+" placed with replicas", func() bool {
			v, ok := h.leaderView()
			a, ok2 := v.Stream(s)
			return ok && ok2 && len(a.Replicas) > 0
		})
	}
	if v, ok := h.leaderView(); ok {
		for _, a := range v.Streams {
			h.logf("placed %s: master %s replicas %v", a.Stream, a.Master, a.Replicas)
		}
	}
	// Players: spread over nodes, streams and protocols.
	protos := []string{"flv", "rtmp", "hls"}
	for i := range cfg.Players {
		p := &chaosPlayer{h: h, id: i + 1, node: media[i%len(media)], stream: h.streams[(i/len(media))%len(h.streams)],
			proto: protos[i%len(protos)], lastSeq: -1}
		h.players = append(h.players, p)
		wg.Add(1)
		go func() { defer wg.Done(); p.run(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); h.checker(ctx) }()
	h.awaitRecovery(ctx, "warm-up", time.Now(), time.Now().Add(30*time.Second))
	h.mu.Lock()
	h.recs = h.recs[:0] // the warm-up is not a fault
	h.mu.Unlock()

	// The fault schedule.
	end := time.Now().Add(cfg.Duration)
	for i := 0; time.Now().Before(end) && i < 1000; i++ {
		var kind string
		if len(cfg.Script) > 0 {
			if i >= len(cfg.Script) {
				break
			}
			kind = cfg.Script[i]
			if kind == fPartition && !h.part.ok {
				continue
			}
		} else {
			kind = kinds[h.rng.Intn(len(kinds))]
		}
		h.inject(ctx, kind)
		sleepCtx(ctx, time.Duration(1000+h.rng.Intn(2000))*time.Millisecond)
	}

	// Let players run a little on the healed cluster, then stop the load.
	time.Sleep(2 * time.Second)
	stopAll()
	h.checkLeaks()
	h.report()
}

// checkLeaks compares goroutines and open fds of never-faulted nodes with their
// baseline before load, after a settle period.
func (h *harness) checkLeaks() {
	deadline := time.Now().Add(h.cfg.Settle)
	type row struct {
		name          string
		base, now     nodeMetrics
		gLimit, fLimt float64
	}
	var rows []row
	for {
		rows = rows[:0]
		ok := true
		for _, n := range h.nodes {
			if n.everFaulted || !n.base.ok {
				continue
			}
			m := fetchMetrics(n.proc.HTTP)
			r := row{name: n.name, base: n.base, now: m, gLimit: n.base.goroutines*1.25 + 30, fLimt: n.base.fds + 20}
			rows = append(rows, r)
			if !m.ok || m.goroutines > r.gLimit || m.fds > r.fLimt {
				ok = false
			}
		}
		if ok || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	if len(rows) == 0 {
		h.logf("leak check: every node was faulted; nothing to compare")
	}
	for _, r := range rows {
		h.logf("leak check %s: goroutines %.0f -> %.0f (limit %.0f), open fds %.0f -> %.0f (limit %.0f)",
			r.name, r.base.goroutines, r.now.goroutines, r.gLimit, r.base.fds, r.now.fds, r.fLimt)
		if !r.now.ok {
			h.violate("leak", r.name, r.name+": /metrics unreadable after the run")
		} else if r.now.goroutines > r.gLimit {
			h.violate("leak", r.name+"g", fmt.Sprintf("%s: goroutines grew %.0f -> %.0f after the run and %v settle", r.name, r.base.goroutines, r.now.goroutines, h.cfg.Settle))
		} else if r.now.fds > r.fLimt {
			h.violate("leak", r.name+"f", fmt.Sprintf("%s: open fds grew %.0f -> %.0f after the run and %v settle", r.name, r.base.fds, r.now.fds, h.cfg.Settle))
		}
	}
}

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) int64 { return d.Milliseconds() }

func (h *harness) report() {
	h.mu.Lock()
	defer h.mu.Unlock()
	by := map[string][]time.Duration{}
	failed := map[string]int{}
	var all []time.Duration
	for _, r := range h.recs {
		by[r.kind] = append(by[r.kind], r.d)
		all = append(all, r.d)
		if !r.ok {
			failed[r.kind]++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-12s %5s %9s %9s %9s %s\n", "fault", "count", "p50 ms", "p95 ms", "max ms", "not recovered")
	for _, k := range append(append([]string{}, allFaults...), eRestart, eThaw, eHeal) {
		ds := by[k]
		if len(ds) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%-12s %5d %9d %9d %9d %d\n", k, len(ds), ms(pct(ds, .5)), ms(pct(ds, .95)), ms(pct(ds, 1)), failed[k])
	}
	// Players.
	type agg struct {
		n, sessions, excused, skips int
		maxGap                      time.Duration
		bytes                       int64
	}
	pa := map[string]*agg{}
	for _, p := range h.players {
		p.mu.Lock()
		a := pa[p.proto]
		if a == nil {
			a = &agg{}
			pa[p.proto] = a
		}
		a.n++
		a.sessions += p.sessions + 1
		a.excused += p.excused
		a.skips += p.skips
		a.bytes += p.bytes
		a.maxGap = max(a.maxGap, p.maxGap)
		p.mu.Unlock()
	}
	fmt.Fprintf(&b, "\n%-6s %7s %8s %8s %9s %10s %6s\n", "player", "players", "sessions", "excused", "max gap", "MiB", "ts>1s")
	for _, k := range []string{"flv", "rtmp", "hls"} {
		if a := pa[k]; a != nil {
			fmt.Fprintf(&b, "%-6s %7d %8d %8d %9v %10.1f %6d\n", k, a.n, a.sessions, a.excused, a.maxGap.Round(time.Millisecond), float64(a.bytes)/(1<<20), a.skips)
		}
	}
	fmt.Fprintf(&b, "\npublishers:")
	for _, p := range h.pubs {
		p.mu.Lock()
		fmt.Fprintf(&b, " %s %d start(s) %d refused;", p.stream, p.starts, p.refused)
		p.mu.Unlock()
	}
	fmt.Fprintf(&b, " dropped by a healthy ingress: %d\n", h.kicked)
	for _, n := range h.notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if len(h.violations) > 0 {
		fmt.Fprintf(&b, "\nviolations:\n")
		for _, v := range h.violations {
			fmt.Fprintf(&b, "  %7.1fs %-20s %s\n", v.at.Seconds(), v.kind, v.msg)
		}
	}
	fmt.Print(b.String())
	fmt.Printf("chaos: %d faults, %d violations, recovery p50 %d ms p95 %d ms max %d ms\n",
		h.faultCount, len(h.violations), ms(pct(all, .5)), ms(pct(all, .95)), ms(pct(all, 1)))
	if len(h.violations) > 0 {
		h.t.Errorf("%d invariant violations (see above)", len(h.violations))
	}
}
