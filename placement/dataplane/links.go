package dataplane

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"

	"peer/media"
	"peer/media/ingest"
	"peer/media/rtmp"
	"peer/membership"
	"peer/placement"
)

// errLostStream kicks a publisher off a node that is no longer the stream's master;
// errMasterMoved drops the old master's forward when the stream changes master.
var (
	errLostStream  = errors.New("this node is no longer the stream's master")
	errMasterMoved = errors.New("the stream has another master")
)

// feedFrom matches a feed received from node.
func feedFrom(node string) func(*media.Publisher) bool {
	return func(p *media.Publisher) bool { return p.Source == media.Copy && p.Remote == "node:"+node }
}

// edgeIdle is how long an edge keeps pulling a stream nobody plays here.
const edgeIdle = 30 * time.Second

// links keeps forward and pull links in line with placement and local demand.
type links struct {
	r    *Router
	wake chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	active   map[string]*link
	idleFrom map[string]time.Time // stream -> when its last local player left
	joining  map[string]bool      // JoinEdge in flight
}

type link struct {
	cancel   context.CancelFunc
	done     chan struct{}
	upstream string // the node a pull link reads from; "" while it looks for one
	mu       sync.Mutex
}

func (l *link) setUpstream(s string) { l.mu.Lock(); l.upstream = s; l.mu.Unlock() }
func (l *link) current() string      { l.mu.Lock(); defer l.mu.Unlock(); return l.upstream }

func newLinks(r *Router) *links {
	return &links{r: r, wake: make(chan struct{}, 1), active: map[string]*link{},
		idleFrom: map[string]time.Time{}, joining: map[string]bool{}}
}

func (l *links) trigger() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *links) run(ctx context.Context) {
	changes, stop := l.r.Cluster.Watch()
	defer stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	defer l.wg.Wait()
	defer l.stopAll()
	for {
		select {
		case <-ctx.Done():
			return
		case ch := <-changes:
			l.fence(ch)
		case <-tick.C:
		case <-l.wake:
		}
		l.reconcile(ctx)
	}
}

// kick fences off the local publisher of stream.
func (l *links) kick(stream string, why string) {
	app, name := splitStream(stream)
	if l.r.Hub.Kick(app, name, nil, errLostStream) {
		l.r.Log.Warn("publisher fenced off", zap.String("stream", stream), zap.String("why", why))
	}
}

// fence kicks local publishers of streams this node no longer masters. Losing the
// leader kicks nobody (degraded mode, degraded.go); when it is back, placement wins.
func (l *links) fence(ch placement.Change) {
	self := l.r.self()
	switch ch.Kind {
	case placement.ChangeContactRestore:
		l.r.reconcileMastered("")
	case placement.ChangeUpdate, placement.ChangeDelete:
		switch {
		case ch.Old == nil || ch.Old.Master != self || ch.New != nil && ch.New.Master == self:
		case ch.New == nil && l.r.masters.get(ch.Stream) != nil:
			// Dropped while this node was cut off, and its publisher is still here: claim it
			// again rather than cut a stream nobody else has.
			l.r.reconcileMastered(ch.Stream)
		default:
			l.kick(ch.Stream, "placement moved the stream")
		}
		if ch.Old != nil && ch.New != nil && ch.Old.Master != ch.New.Master {
			// The old master's forward may hang on a dead connection (a frozen or cut-off
			// node): drop it so the new master's copy is taken at once.
			app, name := splitStream(ch.Stream)
			if l.r.Hub.Kick(app, name, feedFrom(ch.Old.Master), errMasterMoved) {
				l.r.Log.Info("dropped the old master's forward", zap.String("stream", ch.Stream), zap.String("old", ch.Old.Master))
			}
		}
		if ch.Old == nil || ch.New == nil || ch.Old.Master != ch.New.Master || ch.Old.Epoch != ch.New.Epoch {
			l.r.Log.Info("placement change", zap.String("stream", ch.Stream), zap.Any("old", ch.Old), zap.Any("new", ch.New))
		}
	}
}

// reconcile starts the links placement wants and stops the others.
func (l *links) reconcile(ctx context.Context) {
	self := l.r.self()
	want := map[string]func(context.Context, *link){}
	for _, a := range l.r.Cluster.Streams() {
		app, name := splitStream(a.Stream)
		s := l.r.Hub.Lookup(app, name)
		switch {
		case a.Master == self:
			if s != nil && s.HasOrigin() {
				for _, rep := range a.Replicas {
					want["forward|"+a.Stream+"|"+rep] = l.forward(app, name, rep)
				}
			}
		case slices.Contains(a.Replicas, self):
			// Forwards come to us.
		case l.demand(a, s):
			want["pull|"+a.Stream] = l.pull(app, name)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, lk := range l.active {
		stale := false
		if up := lk.current(); up != "" && len(key) > 5 && key[:5] == "pull|" {
			a, ok := l.r.Cluster.Lookup(key[5:])
			stale = !ok || (a.Master != up && !slices.Contains(a.Replicas, up))
		}
		if _, ok := want[key]; !ok || stale {
			lk.cancel()
			delete(l.active, key)
		}
	}
	for key, run := range want {
		if _, ok := l.active[key]; ok {
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		lk := &link{cancel: cancel, done: make(chan struct{})}
		l.active[key] = lk
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer close(lk.done)
			run(lctx, lk)
		}()
	}
}

// demand reports whether this node should pull a stream it does not own: it has local
// players, or it is in the edge set and they left less than edgeIdle ago. It also joins
// and leaves the stream's edge set as players come and go.
func (l *links) demand(a placement.Assignment, s *media.Stream) bool {
	self := l.r.self()
	players := 0
	if s != nil {
		players = s.Viewers(edgeIdle)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	member := slices.Contains(a.Edges, self)
	if players > 0 {
		delete(l.idleFrom, a.Stream)
		if !member {
			l.edgeCall(a.Stream, true)
		}
		return true
	}
	if !member {
		return false
	}
	since, ok := l.idleFrom[a.Stream]
	if !ok {
		l.idleFrom[a.Stream] = time.Now()
		return true
	}
	if time.Since(since) < edgeIdle {
		return true
	}
	delete(l.idleFrom, a.Stream)
	l.edgeCall(a.Stream, false)
	return false
}

// edgeCall joins or leaves an edge set in the background; called with l.mu held.
func (l *links) edgeCall(stream string, join bool) {
	if l.joining[stream] {
		return
	}
	l.joining[stream] = true
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if join {
			_, err = l.r.Cluster.JoinEdge(ctx, stream, l.r.self())
		} else {
			err = l.r.Cluster.LeaveEdge(ctx, stream, l.r.self())
		}
		if err != nil && !errors.Is(err, placement.ErrNotFound) {
			l.r.Log.Info("edge set change failed", zap.String("stream", stream), zap.Bool("join", join), zap.Error(err))
		}
		l.mu.Lock()
		delete(l.joining, stream)
		l.mu.Unlock()
		l.trigger()
	}()
}

func (l *links) stopAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for key, lk := range l.active {
		lk.cancel()
		delete(l.active, key)
	}
}

func (l *links) alive(name string) bool { _, ok := l.member(name); return ok }

// member returns an alive member's record.
func (l *links) member(name string) (membership.Member, bool) {
	m, ok := l.r.Cluster.Membership().Member(name)
	return m, ok && m.State == membership.StateAlive && m.RTMP != ""
}

// forward returns the link that publishes this master's stream to a replica.
func (l *links) forward(app, name, replica string) func(context.Context, *link) {
	stream := app + "/" + name
	return func(ctx context.Context, lk *link) {
		log := l.r.Log.With(zap.String("stream", stream), zap.String("replica", replica))
		defer l.r.gauges.forward.run()()
		retry(ctx, log, func() error {
			m, ok := l.member(replica)
			if !ok {
				return errors.New("replica not alive")
			}
			a, ok := l.r.Cluster.Lookup(stream)
			if !ok {
				return placement.ErrNotFound
			}
			player, err := l.r.Hub.Play(app, name, media.PlayOptions{Kind: "link-forward", Remote: "node:" + replica, Link: true})
			if err != nil {
				return err
			}
			defer player.Close()
			c, err := rtmp.DialPublish(ctx, m.RTMP, app, name+l.r.auth.query(linkForward, stream, l.r.self(), replica, a.Epoch, false), l.r.DialTimeout)
			if err != nil {
				return err
			}
			defer c.Close()
			defer context.AfterFunc(ctx, func() { c.Close() })() // unblocks a write to a frozen replica
			log.Info("forward link up")
			defer l.r.gauges.forward.connected()() // deferred: retry recovers a panic in pump
			err = pump(ctx, player, remoteSink{c: c, master: replica})
			log.Info("forward link down", zap.Error(err))
			return err
		})
	}
}

// pull returns the edge link that plays the stream from its master or a replica and
// feeds it into the local hub. Edges spread over the origins by rendezvous hashing.
func (l *links) pull(app, name string) func(context.Context, *link) {
	stream := app + "/" + name
	return func(ctx context.Context, lk *link) {
		log := l.r.Log.With(zap.String("stream", stream))
		defer l.r.gauges.pull.run()()
		retry(ctx, log, func() error {
			defer lk.setUpstream("")
			a, ok := l.r.Cluster.Lookup(stream)
			if !ok {
				return placement.ErrNotFound
			}
			var lastErr error = errors.New("no live origin")
			for _, origin := range l.origins(a) {
				m, ok := l.member(origin)
				if !ok {
					continue
				}
				c, err := rtmp.DialPlay(ctx, m.RTMP, app, name+l.r.auth.query(linkPull, stream, l.r.self(), origin, a.Epoch, false), l.r.DialTimeout)
				if err != nil {
					lastErr = err
					continue
				}
				lk.setUpstream(origin)
				err = l.pullFrom(ctx, c, app, name, origin)
				c.Close()
				log.Info("edge pull down", zap.String("origin", origin), zap.Error(err))
				return err
			}
			return lastErr
		})
	}
}

func (l *links) pullFrom(ctx context.Context, c *rtmp.Client, app, name, origin string) error {
	pub, err := l.r.Hub.Publish(app, name, "node:"+origin, media.Copy)
	if err != nil {
		return err
	}
	defer pub.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	l.r.Log.Info("edge pull up", zap.String("stream", app+"/"+name), zap.String("origin", origin))
	defer l.r.gauges.pull.connected()()
	return ingest.Pump(c, pub)
}

// origins orders the stream's master and replicas for this node: a rendezvous hash
// spreads edges over origins and keeps each edge on the same one while it lives.
func (l *links) origins(a placement.Assignment) []string {
	list := append([]string{a.Master}, a.Replicas...)
	self := l.r.self()
	sort.SliceStable(list, func(i, j int) bool {
		return placement.RendezvousHash(self, list[i]) > placement.RendezvousHash(self, list[j])
	})
	return list
}

// retry runs attempt until ctx ends, with backoff between failures (reset after an
// attempt that lasted a while). A panic in an attempt is logged and retried like an error.
func retry(ctx context.Context, log *zap.Logger, attempt func() error) {
	const minBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
	backoff := minBackoff
	safe := func() {
		defer func() {
			if r := recover(); r != nil {
				log.Error("cluster link panicked", zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		attempt()
	}
	for ctx.Err() == nil {
		start := time.Now()
		safe()
		if time.Since(start) > 5*time.Second {
			backoff = minBackoff
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}
