package placement

import (
	"context"
	"errors"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/membership"
)

var errNotLeader = errors.New("not leader")

// apply a command through raft (leader only) and return the FSM's result.
func (c *Cluster) apply(cmd command) (applyResult, error) {
	b, err := encodeCommand(cmd)
	if err != nil {
		return applyResult{}, err
	}
	start := time.Now()
	f := c.raft.Apply(b, c.cfg.RPCTimeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
			errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return applyResult{}, errNotLeader
		}
		return applyResult{}, err
	}
	c.applyLatency.observe(time.Since(start))
	select {
	case c.commits <- struct{}{}:
	default:
	}
	res, _ := f.Response().(applyResult)
	return res, res.Err
}

func respErr(err error) rpcResp {
	if errors.Is(err, errNotLeader) {
		return rpcResp{Code: codeNotLeader}
	}
	return rpcResp{Code: codeError, Err: err.Error()}
}

// handle runs a request on the leader.
func (c *Cluster) handle(ctx context.Context, req rpcReq) rpcResp {
	if c.raft.State() != raft.Leader {
		return rpcResp{Code: codeNotLeader}
	}
	switch req.Op {
	case "acquire":
		return c.doAcquire(req.Stream, req.Node, req.Adopt)
	case "release":
		res, err := c.apply(command{Op: opCAS, Updates: []update{{Stream: req.Stream, Expect: req.Epoch, ExpectEpoch: true, Delete: true}}})
		if err != nil {
			return respErr(err)
		}
		if res.Applied == 0 {
			if res.Current == nil {
				return rpcResp{} // already gone
			}
			return rpcResp{Code: codeStale, Assignment: res.Current}
		}
		c.log.Info("placement: stream released", zap.String("stream", req.Stream), zap.String("node", req.Node), zap.Uint64("epoch", req.Epoch))
		return rpcResp{}
	case "edge":
		res, err := c.apply(command{Op: opEdge, Stream: req.Stream, Node: req.Node, Join: req.Join})
		if err != nil {
			return respErr(err)
		}
		if res.Current == nil {
			return rpcResp{Code: codeNotFound}
		}
		if res.Applied > 0 {
			c.log.Info("placement: edge changed", zap.String("stream", req.Stream), zap.String("node", req.Node), zap.Bool("join", req.Join))
		}
		return rpcResp{Assignment: res.Current}
	case "verify":
		if err := c.raft.Barrier(c.cfg.RPCTimeout).Error(); err != nil {
			return respErr(errNotLeader)
		}
		a := c.fsm.get(req.Stream)
		if a == nil || a.Master != req.Node || a.Epoch != req.Epoch {
			return rpcResp{Code: codeStale, Assignment: a}
		}
		return rpcResp{Assignment: a}
	case "drain":
		return c.doDrain(req.Node)
	case "remove":
		if err := c.raft.RemoveServer(raft.ServerID(req.Node), 0, c.cfg.RPCTimeout).Error(); err != nil {
			return respErr(err)
		}
		c.log.Info("raft: removed leaving server", zap.String("server", req.Node))
		return rpcResp{}
	}
	return rpcResp{Code: codeError, Err: "unknown op " + req.Op}
}

// liveness is the leader's snapshot of who can hold streams.
type liveness struct {
	now     time.Time
	members map[string]membership.Member
	counts  map[string]int // streams mastered
	fsm     *FSM
	cfg     *Config
}

func (c *Cluster) snapshotLiveness() *liveness {
	l := &liveness{now: time.Now(), members: map[string]membership.Member{}, counts: c.fsm.masterCounts(), fsm: c.fsm, cfg: &c.cfg}
	for _, m := range c.mem.Members() {
		l.members[m.Name] = m
	}
	return l
}

func (l *liveness) leaving(name string) bool {
	m, ok := l.members[name]
	if ok && m.Leaving {
		return true
	}
	r, rok := l.fsm.member(name)
	return rok && r.State == "leaving" && (!ok || r.Incarnation == m.Incarnation)
}

// serving: alive and not leaving: fit for Raft (a voter or a nonvoter).
func (l *liveness) serving(name string) bool {
	m, ok := l.members[name]
	return ok && m.State == membership.StateAlive && !l.leaving(name)
}

// eligible: may take a stream (master or replica): serving and not a witness.
func (l *liveness) eligible(name string) bool {
	return l.serving(name) && !l.members[name].Witness
}

// gone: the node must not keep a role (dead past grace, left, or leaving).
func (l *liveness) gone(name string, grace time.Duration) bool {
	m, ok := l.members[name]
	if !ok {
		// Unknown to gossip yet: don't act, unless the member table says it left
		// (`peer recover` records so the nodes lost with the majority).
		r, rok := l.fsm.member(name)
		return rok && r.State == string(membership.StateLeft)
	}
	switch m.State {
	case membership.StateLeft:
		return true
	case membership.StateDead:
		return l.now.Sub(m.Since) >= grace
	}
	return l.leaving(name)
}

func (l *liveness) overloaded(name string) bool {
	m := l.members[name]
	if l.cfg.Overloaded != nil {
		return l.cfg.Overloaded(m, l.counts[name])
	}
	if m.Load.CPU >= 0.9 || (m.Load.MaxStreams > 0 && l.counts[name] >= m.Load.MaxStreams) {
		return true
	}
	return l.cfg.MaxStreamsPerNode > 0 && l.counts[name] >= l.cfg.MaxStreamsPerNode
}

func (l *liveness) loadScore(name string) float64 {
	m := l.members[name]
	return float64(l.counts[name]) + 10*m.Load.CPU + float64(m.Load.Players)/100 + m.Load.EgressMbps/100
}

// candidates: eligible nodes, not overloaded first.
func (l *liveness) candidates() (ok, over []string) {
	for name := range l.members {
		if !l.eligible(name) {
			continue
		}
		if l.overloaded(name) {
			over = append(over, name)
		} else {
			ok = append(ok, name)
		}
	}
	sort.Strings(ok)
	sort.Strings(over)
	return ok, over
}

func (l *liveness) leastLoaded() string {
	ok, over := l.candidates()
	pool := ok
	if len(pool) == 0 {
		pool = over
	}
	best, bs := "", math.Inf(1)
	for _, n := range pool {
		if s := l.loadScore(n); s < bs {
			best, bs = n, s
		}
	}
	return best
}

// rendezvousScore: highest-random-weight hashing (RendezvousHash), weighted by load.
func rendezvousScore(stream, node string, weight float64) float64 {
	u := (float64(RendezvousHash(stream, node)>>11) + 0.5) / (1 << 53)
	return -weight / math.Log(u)
}

// pickReplicas keeps the existing good replicas and fills up to n by
// rendezvous order over non-overloaded eligible nodes (overloaded ones only
// if needed), excluding master and the given nodes.
func (l *liveness) pickReplicas(stream, master string, keep []string, n int) []string {
	out := make([]string, 0, n)
	for _, r := range keep {
		if len(out) < n && r != master && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) >= n {
		return out
	}
	ok, over := l.candidates()
	for _, pool := range [][]string{ok, over} {
		type sc struct {
			n string
			s float64
		}
		var ranked []sc
		for _, cand := range pool {
			if cand == master || slices.Contains(out, cand) {
				continue
			}
			w := 1 / (1 + l.loadScore(cand)/20)
			ranked = append(ranked, sc{cand, rendezvousScore(stream, cand, w)})
		}
		sort.Slice(ranked, func(i, j int) bool { return ranked[i].s > ranked[j].s })
		for _, r := range ranked {
			if len(out) >= n {
				return out
			}
			out = append(out, r.n)
		}
	}
	return out
}

// doAcquire places stream for a publish at node; adopt: see rpcReq.Adopt.
func (c *Cluster) doAcquire(stream, node string, adopt bool) rpcResp {
	for attempt := 0; attempt < 8; attempt++ {
		l := c.snapshotLiveness()
		cur := c.fsm.get(stream)
		if cur != nil && (cur.Master == node || !l.gone(cur.Master, 0) && l.members[cur.Master].State == membership.StateAlive) {
			return rpcResp{Assignment: cur}
		}
		master := node
		switch {
		case adopt && l.leaving(node):
			return rpcResp{Assignment: cur} // a leaving node keeps nothing (cur may be nil)
		case adopt && !l.eligible(node):
			// Back from a partition, it reached Raft before gossip: the caller retries.
			return rpcResp{Code: codeError, Err: "adopt: " + node + " is not alive in the leader's gossip view yet"}
		}
		if !adopt && (!l.eligible(node) || l.overloaded(node)) {
			if alt := l.leastLoaded(); alt != "" {
				master = alt
			}
		}
		u := update{Stream: stream, Master: master, NewEpoch: true}
		if cur != nil {
			u.Expect = cur.ModifyIndex
			u.Edges = cur.Edges
			var keep []string
			for _, r := range cur.Replicas {
				if l.eligible(r) {
					keep = append(keep, r)
				}
			}
			u.Replicas = l.pickReplicas(stream, master, keep, c.cfg.Replicas)
		} else {
			u.Replicas = l.pickReplicas(stream, master, nil, c.cfg.Replicas)
		}
		res, err := c.apply(command{Op: opCAS, Updates: []update{u}})
		if err != nil {
			return respErr(err)
		}
		if res.Applied == 1 {
			c.log.Info("placement: stream assigned", zap.String("stream", stream), zap.String("master", master),
				zap.Strings("replicas", res.Current.Replicas), zap.Uint64("epoch", res.Current.Epoch), zap.String("publisher_at", node))
			return rpcResp{Assignment: res.Current}
		}
	}
	return rpcResp{Code: codeError, Err: "acquire: too much contention"}
}

func (c *Cluster) doDrain(node string) rpcResp {
	m, _ := c.mem.Member(node)
	rec, ok := c.fsm.member(node)
	if !ok {
		rec = MemberRecord{Name: node, RTMP: m.RTMP, HTTP: m.HTTP, Raft: m.Raft, Key: m.Key}
	}
	rec.State = "leaving"
	rec.Incarnation = m.Incarnation
	if _, err := c.apply(command{Op: opMembers, Members: []MemberRecord{rec}}); err != nil {
		return respErr(err)
	}
	c.log.Info("placement: draining node", zap.String("node", node))
	for i := 0; i < 5; i++ {
		if err := c.reconcileStreams(); err != nil {
			return respErr(err)
		}
		busy := false
		for _, a := range c.fsm.all() {
			if a.Master == node || slices.Contains(a.Replicas, node) {
				busy = true
			}
		}
		if !busy {
			return rpcResp{}
		}
	}
	return rpcResp{}
}

// reconcileLoop: the leader's periodic and event-driven work.
func (c *Cluster) reconcileLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
		if c.raft.State() != raft.Leader {
			continue
		}
		if err := c.reconcileStreams(); err != nil && !errors.Is(err, errNotLeader) {
			c.log.Warn("stream reconcile", zap.Error(err))
		}
		for i := 0; i < 4 && c.ctx.Err() == nil; i++ { // a few config changes per round
			changed, err := c.reconcileServers()
			if err != nil {
				c.log.Warn("raft reconcile", zap.Error(err))
				break
			}
			if !changed {
				break
			}
		}
		if err := c.syncMembers(); err != nil && !errors.Is(err, errNotLeader) {
			c.log.Warn("member sync", zap.Error(err))
		}
	}
}

// reconcileStreams moves masters off gone nodes (promoting a live replica,
// new epoch), replaces gone replicas and drops gone edges.
func (c *Cluster) reconcileStreams() error {
	l := c.snapshotLiveness()
	grace := c.cfg.FailoverGrace
	var ups []update
	for _, a := range c.fsm.all() {
		master := a.Master
		newEpoch := false
		var reps []string
		for _, r := range a.Replicas {
			if !l.gone(r, grace) && r != master {
				reps = append(reps, r)
			}
		}
		if l.gone(master, grace) {
			newEpoch = true
			master = ""
			for i, r := range reps {
				if l.eligible(r) {
					master = r
					reps = slices.Delete(slices.Clone(reps), i, i+1)
					break
				}
			}
			if master == "" {
				// No replica can take over: the stream is lost until its
				// publisher reconnects (Acquire recreates it).
				ups = append(ups, update{Stream: a.Stream, Expect: a.ModifyIndex, Delete: true})
				c.log.Info("placement: stream dropped, no live replica", zap.String("stream", a.Stream), zap.String("old_master", a.Master))
				continue
			}
		}
		var keep []string
		for _, r := range reps {
			if l.eligible(r) || l.members[r].State == membership.StateDead { // dead within grace: keep for now
				keep = append(keep, r)
			}
		}
		if len(keep) < c.cfg.Replicas {
			keep = l.pickReplicas(a.Stream, master, keep, c.cfg.Replicas)
		}
		edges := slices.DeleteFunc(slices.Clone(a.Edges), func(e string) bool { return l.gone(e, grace) })
		if master == a.Master && slices.Equal(keep, a.Replicas) && slices.Equal(edges, a.Edges) {
			continue
		}
		ups = append(ups, update{Stream: a.Stream, Expect: a.ModifyIndex, Master: master, Replicas: keep, Edges: edges, NewEpoch: newEpoch})
		if newEpoch {
			c.log.Info("placement: master moved", zap.String("stream", a.Stream), zap.String("from", a.Master),
				zap.String("to", master), zap.Strings("replicas", keep))
		}
		// Account the move so the next streams in this round spread out.
		if master != a.Master {
			l.counts[a.Master]--
			l.counts[master]++
		}
	}
	for len(ups) > 0 {
		n := min(len(ups), 256)
		if _, err := c.apply(command{Op: opCAS, Updates: ups[:n]}); err != nil {
			return err
		}
		ups = ups[n:]
	}
	return nil
}

// syncMembers writes the gossip view (addresses and state) into the FSM.
func (c *Cluster) syncMembers() error {
	var recs []MemberRecord
	for _, m := range c.mem.Members() {
		st := string(m.State)
		if m.Leaving && m.State == membership.StateAlive {
			st = "leaving"
		}
		old, ok := c.fsm.member(m.Name)
		if ok && old.State == "leaving" && old.Incarnation == m.Incarnation && m.State == membership.StateAlive {
			st = "leaving"
		}
		r := MemberRecord{Name: m.Name, RTMP: m.RTMP, HTTP: m.HTTP, Raft: m.Raft, State: st, Incarnation: m.Incarnation, Key: m.Key}
		if !ok || old != r {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return nil
	}
	_, err := c.apply(command{Op: opMembers, Members: recs})
	return err
}

// promotionSafe: may a nonvoter become a voter, given the configuration's voters, how
// many of them are healthy now, and the desired voter count? A promotion enlarges the
// quorum at once, and both the candidate and a "healthy" voter may be dead without
// gossip knowing yet (killed a moment ago). make sim showed it: with 1 or 2 of 5 voters
// dead, the leader promoted a just-killed nonvoter, leaving 3 live voters of 6 and no
// leader ever again. So a promotion (a) only fills the voter set up to the desired
// count: a dead voter is removed first (step 5), not outvoted, and (b) the healthy voters
// alone must form the new quorum. The exception is a configuration whose failed voters
// cannot be removed (fewer than minQuorum healthy voters: step 5 waits): there
// promoting is the only way back to redundancy, and the candidate is counted.
func promotionSafe(voters, healthyVoters, desired, minQuorum int) bool {
	quorum := (voters+1)/2 + 1
	if healthyVoters < minQuorum {
		return healthyVoters+1 >= quorum
	}
	return voters < desired && healthyVoters >= quorum
}

// reconcileServers makes at most one raft configuration change; it returns
// whether it changed something. Order: fix addresses, add newcomers as
// nonvoters, promote healthy nonvoters up to the desired odd voter count,
// remove failed nonvoters, remove failed voters (only while at least
// MinQuorum healthy voters remain: protects against false positives of the
// fast failure detector), demote surplus voters.
func (c *Cluster) reconcileServers() (bool, error) {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return false, err
	}
	conf := cf.Configuration()
	l := c.snapshotLiveness()
	now := l.now
	self := raft.ServerID(c.name)
	c.lmu.Lock()
	leaderSince := c.leaderSince
	c.lmu.Unlock()

	byAddr := map[raft.ServerAddress]raft.Server{}
	inConf := map[raft.ServerID]raft.Server{}
	for _, s := range conf.Servers {
		byAddr[s.Address] = s
		inConf[s.ID] = s
	}
	healthy := func(s raft.Server) bool { return s.ID == self || l.serving(string(s.ID)) }
	failed := func(s raft.Server) bool {
		if s.ID == self {
			return false
		}
		m, ok := l.members[string(s.ID)]
		if !ok {
			// Never seen in gossip since we lead: give it time to show up.
			return now.Sub(leaderSince) >= 3*c.cfg.DeadServerGrace
		}
		return m.State == membership.StateLeft ||
			(m.State == membership.StateDead && now.Sub(m.Since) >= c.cfg.DeadServerGrace)
	}
	timeout := c.cfg.RPCTimeout
	do := func(what string, id raft.ServerID, f raft.IndexFuture) (bool, error) {
		if err := f.Error(); err != nil {
			return false, err
		}
		c.log.Info("raft: "+what, zap.String("server", string(id)))
		return true, nil
	}
	// freeAddr removes a failed/unhealthy server squatting addr.
	freeAddr := func(addr raft.ServerAddress, id raft.ServerID) (bool, bool, error) {
		o, taken := byAddr[addr]
		if !taken || o.ID == id {
			return false, true, nil
		}
		if healthy(o) {
			c.log.Warn("raft: address claimed by two live servers", zap.String("addr", string(addr)),
				zap.String("a", string(o.ID)), zap.String("b", string(id)))
			return false, false, nil
		}
		ch, err := do("removed server holding a reused address", o.ID, c.raft.RemoveServer(o.ID, 0, timeout))
		return ch, false, err
	}

	// 1. address changes of known servers (restart at a new address)
	for _, s := range conf.Servers {
		m, ok := l.members[string(s.ID)]
		if s.ID == self || !ok || m.State != membership.StateAlive || m.Raft == "" || raft.ServerAddress(m.Raft) == s.Address {
			continue
		}
		if ch, free, err := freeAddr(raft.ServerAddress(m.Raft), s.ID); ch || err != nil || !free {
			if ch || err != nil {
				return ch, err
			}
			continue
		}
		// AddNonvoter on an existing server only updates its address.
		return do("updated address to "+m.Raft, s.ID, c.raft.AddNonvoter(s.ID, raft.ServerAddress(m.Raft), 0, timeout))
	}
	// 2. newcomers
	var names []string
	for n := range l.members {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := l.members[n]
		id := raft.ServerID(n)
		if _, ok := inConf[id]; ok || !l.serving(n) || m.Raft == "" {
			continue
		}
		if ch, free, err := freeAddr(raft.ServerAddress(m.Raft), id); ch || err != nil || !free {
			if ch || err != nil {
				return ch, err
			}
			continue
		}
		c.lmu.Lock()
		c.nonvoterSince[id] = now
		c.lmu.Unlock()
		return do("added nonvoter", id, c.raft.AddNonvoter(id, raft.ServerAddress(m.Raft), 0, timeout))
	}
	// classify
	var hv, fv, hnv, fnv []raft.Server
	for _, s := range conf.Servers {
		switch {
		case s.Suffrage == raft.Voter && healthy(s):
			hv = append(hv, s)
		case s.Suffrage == raft.Voter && failed(s):
			fv = append(fv, s)
		case s.Suffrage != raft.Voter && healthy(s):
			hnv = append(hnv, s)
		case s.Suffrage != raft.Voter && failed(s):
			fnv = append(fnv, s)
		}
	}
	desired := desiredVoters(len(hv)+len(hnv), c.cfg.MaxVoters)
	voters := 0
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	// 3. promote
	if len(hv) < desired && promotionSafe(voters, len(hv), desired, c.cfg.MinQuorum) {
		sort.Slice(hnv, func(i, j int) bool { return hnv[i].ID < hnv[j].ID })
		for _, s := range hnv {
			c.lmu.Lock()
			since, ok := c.nonvoterSince[s.ID]
			if !ok {
				c.nonvoterSince[s.ID] = now
				since = now
			}
			c.lmu.Unlock()
			if now.Sub(since) < c.cfg.PromoteAfter {
				continue
			}
			return do("promoted to voter", s.ID, c.raft.AddVoter(s.ID, s.Address, 0, timeout))
		}
	}
	// 4. failed nonvoters
	for _, s := range fnv {
		return do("removed failed nonvoter", s.ID, c.raft.RemoveServer(s.ID, 0, timeout))
	}
	// 5. failed voters, MinQuorum-protected
	if len(fv) > 0 && len(hv) >= c.cfg.MinQuorum {
		return do("removed failed voter", fv[0].ID, c.raft.RemoveServer(fv[0].ID, 0, timeout))
	}
	// 6. surplus voters (only when no voter is failed or pending removal)
	nonHealthyVoters := 0
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter && !healthy(s) {
			nonHealthyVoters++
		}
	}
	if nonHealthyVoters == 0 && len(hv) > desired {
		sort.Slice(hv, func(i, j int) bool { return hv[i].ID > hv[j].ID })
		for _, s := range hv {
			if s.ID != self {
				c.lmu.Lock()
				c.nonvoterSince[s.ID] = now
				c.lmu.Unlock()
				return do("demoted surplus voter", s.ID, c.raft.DemoteVoter(s.ID, 0, timeout))
			}
		}
	}
	return false, nil
}
