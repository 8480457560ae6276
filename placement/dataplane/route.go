// Package dataplane is the cluster's data plane. It decides, on every node, where a publish or a player goes and keeps the
// node-to-node links the placement asks for: relays from an ingress to a stream's
// master, forwards from the master to its replicas, and edge pulls. It is what replaces
// the seed's haproxy/nginx tier and its hand-written forward/edge configuration.
//
// It may import placement, membership, the media core, media/ingest and media/rtmp (the
// RTMP client its links dial with), and leaves; never ingress/*.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/media"
	"peer/placement"
)

// Publish refusals the Router wraps (%w) so that a server tells its client why (the RTMP
// server's onStatus codes).
var (
	// ErrNotAuthorized: the publish's credentials (a link's signature) do not hold.
	ErrNotAuthorized = errors.New("not authorized")
	// ErrUnavailable: the stream cannot be placed (no placement leader, not placed).
	ErrUnavailable = errors.New("cluster unavailable")
)

// ErrLinkRefused refuses a node-to-node link whose signature or role does not hold; the
// RTMP client gets NetStream.Publish.Denied.
var ErrLinkRefused = fmt.Errorf("cluster link refused: %w", ErrNotAuthorized)

// Router routes one node's publishes and players over the cluster.
type Router struct {
	Hub      *media.Hub
	RelayHub *media.Hub // private copies of publishes relayed to another master
	Cluster  *placement.Cluster
	Key      string
	Log      *zap.Logger
	// DialTimeout bounds one node-to-node connection attempt.
	DialTimeout time.Duration
	// MaxPlayers: past this many local players, new HTTP players are redirected.
	MaxPlayers int
	// Pull, when set, is where the streams of an app that no node publishes are pulled
	// from (pull.go).
	Pull func(app string) PullConfig

	auth      *linkAuth
	refused   *ratelog.Limiter // refused links, logged at a bounded rate
	links     *links
	upstreams *upstreams
	masters   masters    // user publishers mastered here (degraded.go)
	gauges    linkGauges // links by kind and state, read by LinkStats
	once      sync.Once
}

func (r *Router) init() {
	r.once.Do(func() {
		r.auth = newLinkAuth(r.Key)
		r.refused = ratelog.New(r.Log, 0)
		if r.DialTimeout == 0 {
			r.DialTimeout = 3 * time.Second
		}
		r.links = newLinks(r)
		r.upstreams = &upstreams{running: map[string]bool{}}
	})
}

// Run keeps the links in line with placement until ctx ends.
func (r *Router) Run(ctx context.Context) {
	r.init()
	r.upstreams.mu.Lock()
	r.upstreams.ctx = ctx
	r.upstreams.mu.Unlock()
	r.links.run(ctx)
	r.upstreams.wg.Wait()
}

func (r *Router) self() string { return r.Cluster.Self() }

// runCtx is Run's context (context.Background() before Run): what the router starts in
// the background ends with it.
func (r *Router) runCtx() context.Context {
	r.init()
	r.upstreams.mu.Lock()
	defer r.upstreams.mu.Unlock()
	if r.upstreams.ctx == nil {
		return context.Background()
	}
	return r.upstreams.ctx
}

// Publish routes a publish of app/name arriving here. It returns the publisher the
// session writes into and a finish func to call when the session ends.
func (r *Router) Publish(ctx context.Context, app, name, query, remote string) (*media.Publisher, func(), error) {
	r.init()
	stream := app + "/" + name
	if claim, ok := r.auth.parse(stream, query, r.self(), time.Now()); ok {
		pub, finish, err := r.acceptLink(app, name, remote, claim)
		if errors.Is(err, ErrLinkRefused) {
			r.refuseLink(stream, remote, claim, err)
		}
		return pub, finish, err
	}
	// Before placement: a publish the node's budget refuses must not leave the stream
	// assigned here.
	if err := r.Hub.AdmitPublish(app, name, remote); err != nil {
		return nil, nil, err
	}
	a, err := r.acquire(ctx, stream)
	if errors.Is(err, errDegraded) {
		a, err = r.degradedAssignment(stream), nil
	}
	if err != nil {
		return nil, nil, err
	}
	if a.Master == r.self() {
		pub, err := r.Hub.Publish(app, name, remote, media.Origin)
		if err != nil {
			return nil, nil, err
		}
		m := &mastered{stream: stream, pub: pub, epoch: a.Epoch}
		r.masters.add(m)
		if a.Epoch == 0 {
			r.Log.Warn("publish accepted without placement: degraded, no reachable node masters the stream", zap.String("stream", stream))
		} else {
			r.Log.Info("publish accepted as master", zap.String("stream", stream), zap.Uint64("epoch", a.Epoch))
		}
		r.links.trigger()
		return pub, func() {
			pub.Close()
			r.masters.remove(m)
			if e := m.current(); e != 0 {
				r.release(stream, e)
			}
		}, nil
	}
	return r.relay(ctx, app, name, remote, a)
}

// acquire asks placement for the stream's master, retrying briefly through a leader
// election. A degraded node does not wait: errDegraded.
func (r *Router) acquire(ctx context.Context, stream string) (placement.Assignment, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		if r.Cluster.Degraded() {
			return placement.Assignment{}, errDegraded
		}
		// One attempt waits for a leader no longer than it takes to tell it is gone.
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		a, err := r.Cluster.Acquire(actx, stream, r.self())
		acancel()
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return a, fmt.Errorf("%w: placement: %w", ErrUnavailable, err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, time.Second)
	}
}

func (r *Router) release(stream string, epoch uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Cluster.Release(ctx, stream, r.self(), epoch); err != nil && !errors.Is(err, placement.ErrStale) {
		r.Log.Info("release of a stream failed", zap.String("stream", stream), zap.Error(err))
	}
}

// acceptLink checks a node-to-node publish: a relay only reaches the current master, a
// forward only a replica, from the current master, and neither for an older epoch than
// this node's view (a ticket captured before the stream changed master).
func (r *Router) acceptLink(app, name, remote string, c linkClaim) (*media.Publisher, func(), error) {
	stream := app + "/" + name
	if c.err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s from %q: %v", ErrLinkRefused, c.kind, stream, c.from, c.err)
	}
	a, ok := r.Cluster.Lookup(stream)
	self := r.self()
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("%w: %s is not placed", ErrLinkRefused, stream)
	case c.epoch < a.Epoch:
		return nil, nil, fmt.Errorf("%w: %s from %s for epoch %d, the stream is at %d", ErrLinkRefused, c.kind, c.from, c.epoch, a.Epoch)
	case c.kind == linkRelay && a.Master != self:
		return nil, nil, fmt.Errorf("%w: relay from %s but the master is %s", ErrLinkRefused, c.from, a.Master)
	case c.kind == linkForward && (a.Master != c.from || !slices.Contains(a.Replicas, self)):
		return nil, nil, fmt.Errorf("%w: forward from %s, master %s, replicas %v", ErrLinkRefused, c.from, a.Master, a.Replicas)
	case c.kind != linkRelay && c.kind != linkForward:
		return nil, nil, fmt.Errorf("%w: %q is not a publishing link", ErrLinkRefused, c.kind)
	}
	// A forward is a copy of the master's stream; a relay carries the user's publish
	// (the origin), and one re-pointed here after a change of master resumes it.
	src := media.Origin
	switch {
	case c.kind == linkForward:
		src = media.Copy
	case c.cont:
		src = media.Resume
	}
	pub, err := r.Hub.Publish(app, name, "node:"+c.from, src)
	if errors.Is(err, media.ErrBusy) && r.Hub.Kick(app, name, staleFeed(c.from), errMasterMoved) {
		pub, err = r.Hub.Publish(app, name, "node:"+c.from, src)
	}
	if err != nil {
		return nil, nil, err
	}
	r.links.trigger()
	return pub, pub.Close, nil
}

// Play prepares this node to serve app/name: a stream it does not hold makes it join the
// stream's edge set and pull it; a stream no node publishes, of an app with an upstream
// (Pull), is pulled from there. Players are always served locally (they wait for the
// pull or the publisher). internal marks another node's edge pull, which also gets HLS
// cut markers.
func (r *Router) Play(app, name, query string) (internal bool, err error) {
	r.init()
	stream := app + "/" + name
	if claim, ok := r.auth.parse(stream, query, r.self(), time.Now()); ok {
		err := claim.err
		switch a, placed := r.Cluster.Lookup(stream); {
		case err != nil:
		case claim.kind != linkPull:
			err = fmt.Errorf("%q is not a playing link", claim.kind)
		case placed && claim.epoch < a.Epoch:
			err = fmt.Errorf("for epoch %d, the stream is at %d", claim.epoch, a.Epoch)
		}
		if err != nil {
			err = fmt.Errorf("%w: pull of %s from %q: %v", ErrLinkRefused, stream, claim.from, err)
			r.refuseLink(stream, "", claim, err)
			return false, err
		}
		return true, nil
	}
	r.links.trigger()
	r.pullUpstream(app, name)
	return false, nil
}

// IsLink reports whether a stream query carries a cluster link's claim. Publish and Play
// check such a claim's signature themselves; the servers skip client admission (tokens,
// hooks) for it, so a client that forges one is refused here, never admitted there.
func (r *Router) IsLink(query string) bool { return isLinkQuery(query) }

// refuseLink logs a refused link at a bounded rate: a forger or a replayer can repeat
// them as fast as it connects.
func (r *Router) refuseLink(stream, remote string, c linkClaim, err error) {
	r.refused.Warn("link refused", "refused a cluster link", zap.String("stream", stream), zap.String("kind", c.kind),
		zap.String("claimed_from", c.from), zap.String("remote", remote), zap.Error(err))
}

// Placed reports whether the cluster has placed app/name: some node publishes it. This
// is how a player's stream is resolved against the cluster view: a stream nobody
// publishes gets no state (HLS answers 404 at once) or a capped wait (media.Config).
func (r *Router) Placed(app, name string) bool {
	_, ok := r.Cluster.Lookup(app + "/" + name)
	return ok
}

// splitStream splits "app/name".
func splitStream(stream string) (string, string) {
	app, name, _ := strings.Cut(stream, "/")
	return app, name
}

// Redirect picks another node for an HTTP player when this one serves MaxPlayers
// already: one of the stream's master, replicas and edges, by rendezvous hash of the
// client's IP so a client keeps landing on the same node (nginx's ip_hash, without
// nginx). It returns that node's HTTP address.
func (r *Router) Redirect(app, name, clientIP string) (string, bool) {
	r.init()
	if r.MaxPlayers <= 0 || r.userPlayers() < r.MaxPlayers {
		return "", false
	}
	a, ok := r.Cluster.Lookup(app + "/" + name)
	if !ok {
		return "", false
	}
	self := r.self()
	best, bestScore := "", uint64(0)
	for _, n := range append(append([]string{a.Master}, a.Replicas...), a.Edges...) {
		m, alive := r.links.member(n)
		if n == self || !alive || m.HTTP == "" {
			continue
		}
		if s := placement.RendezvousHash(clientIP, n); best == "" || s > bestScore {
			best, bestScore = m.HTTP, s
		}
	}
	return best, best != ""
}

func (r *Router) userPlayers() int {
	n := 0
	for _, s := range r.Hub.Streams() {
		n += s.Viewers(0)
	}
	return n
}

// staleFeed matches a feed that a checked link from node supersedes: any copy this
// node holds from elsewhere (an old master's forward, an edge pull of a node that just
// became a replica or the master).
func staleFeed(node string) func(*media.Publisher) bool {
	return func(p *media.Publisher) bool { return p.Source == media.Copy && p.Remote != "node:"+node }
}
