package placement

import (
	"math"
	"slices"
	"sort"
	"time"

	"peer/membership"
)

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

// restarted: a's master has started again since it took the stream (its incarnation
// differs from the one recorded then): it lost the publisher it had, and holds the
// stream no more until a publish there acquires it again.
func (l *liveness) restarted(a *Assignment) bool {
	m, ok := l.members[a.Master]
	return ok && a.MasterInc != 0 && m.Incarnation != a.MasterInc
}

// holds: a's master is alive and has not restarted since it took the stream (or the
// assignment predates MasterInc): a rival of a publish elsewhere.
func (l *liveness) holds(a *Assignment) bool {
	return !l.gone(a.Master, 0) && l.members[a.Master].State == membership.StateAlive && !l.restarted(a)
}

func (l *liveness) overloaded(name string) bool {
	m := l.members[name]
	if l.cfg.Overloaded != nil {
		return l.cfg.Overloaded(m, l.counts[name])
	}
	return m.Load.CPU >= 0.9 || (m.Load.MaxStreams > 0 && l.counts[name] >= m.Load.MaxStreams)
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
