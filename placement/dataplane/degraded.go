package dataplane

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/placement"
)

// Degraded mode in the data plane (placement.Cluster.Degraded: no leader for
// FenceTimeout). The node keeps its publishers, players and links. A new publish goes to
// the stream's last known master if that node is a live member, else it is taken here
// with no epoch, as a lone SRS would. When a leader is back, Raft's placement wins:
// reconcileMastered claims, through the leader (placement.Cluster.Adopt), every stream
// it took meanwhile that placement does not give to this node: the publisher stays,
// uninterrupted, unless the leader answers that the stream has another live master.

// errDegraded: the node turned degraded while it waited for the leader.
var errDegraded = errors.New("no contact with a raft leader")

// errRival kicks a degraded publisher whose stream placement gives to another node.
var errRival = errors.New("the stream is published at its master elsewhere")

// mastered is a user publisher this node accepted as the stream's master; epoch is
// the placement epoch it holds the stream at, 0 for a publish taken while degraded and
// not (yet) claimed.
type mastered struct {
	stream string
	pub    *media.Publisher
	mu     sync.Mutex
	epoch  uint64
	claim  bool // a claim through the leader is in flight
}

func (m *mastered) current() uint64 { m.mu.Lock(); defer m.mu.Unlock(); return m.epoch }

// masters indexes the mastered publishers by stream.
type masters struct {
	mu sync.Mutex
	m  map[string]*mastered
}

func (ms *masters) add(m *mastered) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m == nil {
		ms.m = map[string]*mastered{}
	}
	ms.m[m.stream] = m
}

func (ms *masters) remove(m *mastered) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if ms.m[m.stream] == m {
		delete(ms.m, m.stream)
	}
}

func (ms *masters) get(stream string) *mastered {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return ms.m[stream]
}

func (ms *masters) list() []*mastered {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return slices.Collect(maps.Values(ms.m))
}

// degradedAssignment decides a publish while degraded: relay to the last known master
// when gossip has it alive, else master it here with no epoch.
func (r *Router) degradedAssignment(stream string) placement.Assignment {
	self := r.self()
	if a, ok := r.Cluster.Lookup(stream); ok && (a.Master == self || r.links.alive(a.Master)) {
		return a
	}
	return placement.Assignment{Stream: stream, Master: self}
}

// UnplacedStreams lists the streams this node masters without placement: taken while
// degraded and not yet claimed through a leader (for the cluster view).
func (r *Router) UnplacedStreams() []string {
	r.init()
	var out []string
	for _, m := range r.masters.list() {
		if m.current() == 0 {
			out = append(out, m.stream)
		}
	}
	return out
}

// reconcileMastered makes Raft's placement win over what this node took while it was
// degraded; called when contact with a leader is back, and for one stream when
// placement deleted a stream mastered here (the majority dropped it while this node
// was cut off).
func (r *Router) reconcileMastered(only string) {
	self := r.self()
	for _, m := range r.masters.list() {
		if only != "" && m.stream != only {
			continue
		}
		a, placed := r.Cluster.Lookup(m.stream)
		switch {
		case placed && a.Master == self:
			m.mu.Lock()
			m.epoch = a.Epoch
			m.mu.Unlock()
		default:
			// Placed elsewhere or not at all: the leader decides. Its master may have
			// restarted since without the publisher it had (the claim goes through),
			// or it may publish the stream (the claim returns it: the publisher here
			// gives way).
			r.claim(m)
		}
	}
}

// claim adopts m's stream through the leader in the background: the publisher stays if
// the stream becomes this node's, and is kicked if it has another live master.
func (r *Router) claim(m *mastered) {
	m.mu.Lock()
	if m.claim {
		m.mu.Unlock()
		return
	}
	m.claim = true
	m.mu.Unlock()
	r.links.wg.Add(1)
	go func() {
		defer r.links.wg.Done()
		// The leader may not see this node alive yet (gossip heals after Raft): retry
		// while the node stays in contact; the next heal claims again otherwise.
		// The node's end ends it too: a node that leaves saw its streams dropped, and its
		// stop waited out the 30 s of retries (a leave's test, CI).
		ctx, cancel := context.WithTimeout(r.runCtx(), 30*time.Second)
		defer cancel()
		a, err := r.Cluster.Adopt(ctx, m.stream, r.self())
		for err != nil && ctx.Err() == nil && !r.Cluster.Degraded() {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
				a, err = r.Cluster.Adopt(ctx, m.stream, r.self())
			}
		}
		m.mu.Lock()
		m.claim = false
		if err == nil && a.Master == r.self() {
			m.epoch = a.Epoch
		}
		m.mu.Unlock()
		switch {
		case err != nil:
			// No leader after all: it stays as it is until contact is back again.
			r.Log.Info("claim of a stream taken while degraded failed", zap.String("stream", m.stream), zap.Error(err))
		case a.Master == r.self():
			r.Log.Info("stream taken while degraded adopted by placement", zap.String("stream", m.stream), zap.Uint64("epoch", a.Epoch))
			r.links.trigger()
		default:
			r.kickMastered(m, "placement gives the stream to "+a.Master)
		}
	}()
}

func (r *Router) kickMastered(m *mastered, why string) {
	app, name := splitStream(m.stream)
	if r.Hub.Kick(app, name, func(p *media.Publisher) bool { return p == m.pub }, errRival) {
		r.Log.Warn("publisher fenced off", zap.String("stream", m.stream), zap.String("why", why))
	}
	r.masters.remove(m)
}
