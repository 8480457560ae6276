// Package media is a node's live-stream core: the streams it holds (hub.go), their
// publishers and timelines (publisher.go, timeline.go), GOP caches (gop.go) and the
// bounded, shared-payload fan-out to players (player.go, fanout.go).
//
// It knows no output format and no cluster. Packagers (HLS today) attach to each stream
// through the Packager interface; links that carry a stream between hubs are players
// and publishers like any other, told apart only by what the core does with them
// (PlayOptions.Link and First, Source). It may import only leaf packages (media/flv,
// conf/ratelog, the standard library, zap); media/hls and the cluster import it.
package media

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"peer/conf/ratelog"
)

// ErrBusy refuses a second publisher of a live stream.
var ErrBusy = errors.New("stream is already being published")

// ErrNoStream answers a request of a viewer holding no connection (Watch) for a stream
// that is neither published here nor placed: nothing is created for it.
var ErrNoStream = errors.New("no such stream")

// ErrTooManyWaiting refuses a player of a stream nobody publishes once Config.MaxWaiting
// players wait for such streams.
var ErrTooManyWaiting = errors.New("too many players waiting for streams nobody publishes")

// Config bounds the hub's memory and its players' patience.
type Config struct {
	QueueTags    int           // tags a player may have queued before it skips to a keyframe
	MaxOverflows int           // skips tolerated before a slow player is disconnected
	GOPMaxBytes  int           // largest GOP cached for fast start
	GOPMaxTime   time.Duration // longest GOP cached (an audio-only stream keeps at most this, and at most 2 s, of audio)
	IdleTimeout  time.Duration // a stream without publisher is dropped (and its players closed) after this
	// Packagers make each new stream's packagers (HLS), in this order; none: streams are
	// not packaged (a relay's private copy).
	Packagers []NewPackager
	// MergeWrite gathers this much media per write to a player (SRS mw_latency): a large
	// audience costs fewer, larger writes, at the price of that much latency. 0 writes
	// every video frame.
	MergeWrite time.Duration
	// Budget caps streams and per-client publishes, shared by a node's hubs; nil: none.
	Budget *Budget
	// Placed reports whether the cluster has placed a stream (a node publishes it); nil
	// means every stream counts as placed. A player of a stream that is neither placed
	// nor published here waits for a publisher, and at most MaxWaiting such players wait
	// at once (0: no limit); a Watch of it gets ErrNoStream.
	Placed     func(app, name string) bool
	MaxWaiting int
	// ForApp, when set, adjusts a copy of this config for a new stream of app: per-app
	// settings. Only QueueTags, GOPMaxTime and MergeWrite are read from the copy, once,
	// when the stream is created; the rest is the hub's.
	ForApp func(app string, c *Config)
}

// streamConfig is what a stream takes from its app's config when created.
type streamConfig struct {
	queueTags  int
	gopMaxTime time.Duration
	mergeWrite time.Duration
}

// appConfig is the hub's config with app's settings applied.
func (h *Hub) appConfig(app string) Config {
	c := h.cfg
	if h.cfg.ForApp != nil {
		h.cfg.ForApp(app, &c)
		if c.GOPMaxTime <= 0 {
			c.GOPMaxTime = DefaultConfig().GOPMaxTime
		}
		if c.QueueTags <= 0 {
			c.QueueTags = h.cfg.QueueTags
		}
	}
	return c
}

// DefaultConfig suits a 2 Mbit/s stream with 2 s GOPs.
func DefaultConfig() Config {
	return Config{QueueTags: 1024, MaxOverflows: 3, GOPMaxBytes: 16 << 20, GOPMaxTime: 30 * time.Second, IdleTimeout: 30 * time.Second}
}

// Hub holds the streams of one node.
type Hub struct {
	cfg    Config
	log    *zap.Logger
	warn   *ratelog.Limiter // refusals and drops a client can cause repeatedly
	nextID atomic.Uint64

	mu      sync.Mutex
	streams map[string]*Stream

	waitMu sync.Mutex // serializes admissions of waiting players, so the cap holds

	// Drops counted where they happen (a player's overflow), read by Drops.
	tagsDropped, playersDropped atomic.Uint64
}

// Drops reports the tags discarded by players that fell behind (their backlog and the
// tags skipped up to the next keyframe) and the players closed for being too slow,
// since the hub started. Cluster links count as players here.
func (h *Hub) Drops() (tags, players uint64) {
	return h.tagsDropped.Load(), h.playersDropped.Load()
}

// NewHub makes an empty hub; Run maintains it.
func NewHub(cfg Config, log *zap.Logger) *Hub {
	if cfg.GOPMaxTime <= 0 {
		cfg.GOPMaxTime = DefaultConfig().GOPMaxTime
	}
	if cfg.Budget == nil {
		cfg.Budget = &Budget{}
	}
	return &Hub{cfg: cfg, log: log, warn: ratelog.New(log, 0), streams: map[string]*Stream{}}
}

// ValidateName checks an app or stream name from a client.
func ValidateName(s string) error {
	switch {
	case s == "":
		return errors.New("empty name")
	case len(s) > 256:
		return fmt.Errorf("name of %d bytes exceeds 256", len(s))
	case strings.Contains(s, ".."):
		return errors.New(`name contains ".."`)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`/\?#%"<>`, r) {
			return fmt.Errorf("name contains %q", r)
		}
	}
	return nil
}

func (h *Hub) stream(app, name string) (*Stream, error) {
	if err := ValidateName(app); err != nil {
		return nil, fmt.Errorf("bad app: %w", err)
	}
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("bad stream name: %w", err)
	}
	key := app + "/" + name
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.streams[key]
	if s == nil {
		if err := h.cfg.Budget.addStream(); err != nil {
			h.refused(err, key, "")
			return nil, err
		}
		log := h.log.With(zap.String("stream", key))
		cfg := h.appConfig(app)
		s = &Stream{App: app, Name: name, hub: h, log: log, created: time.Now(), vacantSince: time.Now(),
			players: map[*Player]struct{}{},
			cfg:     streamConfig{queueTags: cfg.QueueTags, gopMaxTime: cfg.GOPMaxTime, mergeWrite: cfg.MergeWrite}}
		for _, f := range h.cfg.Packagers {
			s.packagers = append(s.packagers, f(s))
		}
		h.streams[key] = s
	}
	return s, nil
}

// Lookup returns the stream if this node holds it.
func (h *Hub) Lookup(app, name string) *Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[app+"/"+name]
}

// Source says what a publisher is to its stream: how the stream places its time, and
// who decides the packaging. The cluster maps its links onto these.
type Source int

const (
	// Origin is where the stream's content enters (an encoder, or a relay of one): its
	// clock is checked and rebased on jumps, a restart starts a new timeline (a
	// discontinuity for the packagers), and the packagers decide on their own, sending
	// their control tags out to the links.
	Origin Source = iota
	// Resume is an origin that takes over a stream already carrying its content (the
	// same encoder relayed here from elsewhere): it continues the stream's timeline,
	// placed by content (its first tag is found in the GOP cache) and dropping what it
	// replays.
	Resume
	// Copy is a copy of a stream another hub holds and packages: its time is the
	// stream's time as it is (never rebased, its catch-up replay dropped), and the
	// packagers follow the control tags it carries instead of deciding.
	Copy
)

// Publish attaches the stream's source, refusing a second one with ErrBusy.
func (h *Hub) Publish(app, name, remote string, src Source) (*Publisher, error) {
	// The client's count first: a refused publish leaves no stream behind.
	ip, err := h.cfg.Budget.addPublish(remote)
	if err != nil {
		h.refused(err, app+"/"+name, remote)
		return nil, err
	}
	for {
		s, err := h.stream(app, name)
		if err != nil {
			h.cfg.Budget.removePublish(ip)
			return nil, err
		}
		p, err := s.attach(h, remote, src, ip)
		if err != errDead {
			if err != nil {
				h.cfg.Budget.removePublish(ip)
			}
			return p, err
		}
		// The idle sweep dropped the stream between the lookup and the attach: the next
		// lookup creates a fresh one.
	}
}

// errDead: the stream was dropped from the hub; look it up again.
var errDead = errors.New("stream dropped")

// attach makes a publisher of s, after any write in flight of a kicked one (wmu).
func (s *Stream) attach(h *Hub, remote string, src Source, ip netip.Addr) (*Publisher, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.dead:
		return nil, errDead
	case s.pub != nil:
		return nil, ErrBusy
	}
	p := &Publisher{ID: h.nextID.Add(1), Remote: remote, Source: src, stream: s, ip: ip,
		tl: timeline{prevLast: s.lastTime, prevHas: s.hasTime, continues: src != Origin}}
	s.pub = p
	for _, pk := range s.packagers {
		pk.Attach(src) // under wmu: packagers are single-writer
	}
	s.vacantSince = time.Time{}
	return p, nil
}

// AdmitPublish reports, without taking anything, whether Publish would refuse app/name
// from remote for the node's budget (ErrTooManyPublishes, ErrTooManyStreams): a router
// asks before it claims the stream in the cluster, so that a refused publish leaves no
// placement behind. Publish still enforces the budget.
func (h *Hub) AdmitPublish(app, name, remote string) error {
	err := h.cfg.Budget.admits(h.Lookup(app, name) == nil, remote)
	if err != nil {
		h.refused(err, app+"/"+name, remote)
	}
	return err
}

// refused logs, rate-limited, a stream or publish the budget refused.
func (h *Hub) refused(err error, key, remote string) {
	if errors.Is(err, ErrTooManyStreams) {
		h.warn.Warn("stream-budget", "stream refused: the node holds its maximum", zap.String("stream", key),
			zap.String("peer", remote), zap.Int("max_node_streams", h.cfg.Budget.MaxStreams))
		return
	}
	h.warn.Warn("publish-budget", "publish refused: too many from this client address", zap.String("stream", key),
		zap.String("peer", remote), zap.Int("max_publishes_per_ip", h.cfg.Budget.MaxPublishesPerIP))
}

// PlayOptions describe a subscriber.
type PlayOptions struct {
	Kind   string // "rtmp-play", "flv-play", "link-forward", ...
	Remote string
	// Link is a player that carries the stream on to another hub: it receives the
	// packagers' control tags (so the far end packages alike), is never held for a
	// merged write and is written before the viewers (every hub downstream waits for
	// it), does not count as a viewer, and is never refused for waiting.
	Link bool
	// First is a link written before the other links: one whose far end serves viewers,
	// where the others may have none. It implies Link.
	First bool
}

// Play subscribes a player; it receives the stream's start tags, then live tags. A
// player may arrive before the publisher and waits for it, within Config.MaxWaiting
// when no node publishes the stream.
func (h *Hub) Play(app, name string, o PlayOptions) (*Player, error) {
	if !o.Link && !o.First && !h.known(app, name) {
		h.waitMu.Lock()
		defer h.waitMu.Unlock()
		if n := h.waitingPlayers(); h.cfg.MaxWaiting > 0 && n >= h.cfg.MaxWaiting {
			h.warn.Warn("max_waiting", "player refused: too many players wait for streams nobody publishes",
				zap.String("stream", app+"/"+name), zap.String("peer", o.Remote), zap.Int("max_waiting", h.cfg.MaxWaiting))
			return nil, ErrTooManyWaiting
		}
	}
	for {
		s, err := h.stream(app, name)
		if err != nil {
			return nil, err
		}
		p := newPlayer(s, o, s.cfg.queueTags) // the stream's app may set its own queue
		p.ID = h.nextID.Add(1)
		if s.subscribe(p) {
			return p, nil
		}
		// Dropped by the idle sweep since the lookup: a player there would never be fed.
	}
}

// known reports a stream published here or placed in the cluster.
func (h *Hub) known(app, name string) bool {
	if s := h.Lookup(app, name); s != nil && s.Publishing() {
		return true
	}
	return h.cfg.Placed == nil || h.cfg.Placed(app, name)
}

// waitingPlayers counts the viewers of streams that are neither published here
// nor placed. Called with waitMu held; the streams it walks are bounded by the cap
// itself plus the real ones.
func (h *Hub) waitingPlayers() int {
	type vacant struct {
		s       *Stream
		players int
	}
	var list []vacant
	h.mu.Lock()
	for _, s := range h.streams {
		s.mu.Lock()
		if s.pub == nil && len(s.players) > 0 {
			n := 0
			for p := range s.players {
				if !p.link {
					n++
				}
			}
			list = append(list, vacant{s, n})
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()
	n := 0
	for _, v := range list { // outside the hub's lock: Placed asks the cluster
		if !h.cfg.Placed(v.s.App, v.s.Name) { // not nil: known said the stream is unknown
			n += v.players
		}
	}
	return n
}

// Watch returns the stream for a request of a viewer that holds no connection (an HLS
// playlist or segment) and notes the request (Stream.WatchedWithin, Viewers): without
// a player, this is how the hub knows the stream is wanted here. It creates the stream
// only when it is published here or placed (Config.Placed); otherwise it returns
// ErrNoStream. A packager that still serves a stream it holds notes requests with
// Stream.Watched instead.
func (h *Hub) Watch(app, name string) (*Stream, error) {
	if !h.known(app, name) {
		return nil, ErrNoStream
	}
	s := h.Lookup(app, name)
	if s == nil {
		var err error
		if s, err = h.stream(app, name); err != nil {
			return nil, err
		}
	}
	s.Watched()
	return s, nil
}

// Watched notes a request of a viewer that holds no connection (see Hub.Watch).
func (s *Stream) Watched() { s.watched.Store(time.Now().UnixNano()) }

// Kick detaches the stream's publisher if match accepts it (nil: any) and reports
// whether it did: fencing kicks a master's own publisher, a change of master kicks the
// copy the old master was forwarding, which may hang on a dead connection.
func (h *Hub) Kick(app, name string, match func(*Publisher) bool, reason error) bool {
	s := h.Lookup(app, name)
	if s == nil {
		return false
	}
	p := s.takePublisher(match)
	if p == nil {
		return false
	}
	p.releaseBudget()
	p.kick(reason)
	return true
}

// takePublisher detaches the publisher if match accepts it (nil: any). Detached now,
// not when the connection's goroutine gets round to it: the stream is free for its next
// publisher at once, whose writes wait for the kicked one's write in flight (wmu).
func (s *Stream) takePublisher(match func(*Publisher) bool) *Publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pub
	if p == nil || (match != nil && !match(p)) {
		return nil
	}
	p.detached.Store(true)
	s.pub, s.vacantSince = nil, time.Now()
	return p
}

// ErrKicked ends a client an operator disconnected.
var ErrKicked = errors.New("kicked by an operator")

// KickClient disconnects the publisher or player with this id (the API's client id),
// reporting whether there was one. A kicked player's connection ends; a kicked
// publisher's stream is free for its next publisher.
func (h *Hub) KickClient(id uint64) bool {
	for _, s := range h.Streams() {
		pub, player := s.client(id)
		switch {
		case pub:
			return h.Kick(s.App, s.Name, func(p *Publisher) bool { return p.ID == id }, ErrKicked)
		case player != nil:
			player.close(ErrKicked)
			return true
		}
	}
	return false
}

// client finds the client id of s: its publisher (true), or a player, which it
// unsubscribes.
func (s *Stream) client(id uint64) (bool, *Player) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub != nil && s.pub.ID == id {
		return true, nil
	}
	for p := range s.players {
		if p.ID == id {
			delete(s.players, p)
			return false, p
		}
	}
	return false, nil
}

// Streams lists the streams held, as "app/name" keys.
func (h *Hub) Streams() []*Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		out = append(out, s)
	}
	return out
}

// Run drops idle streams and samples bitrates until ctx ends, then closes every player.
func (h *Hub) Run(ctx context.Context) {
	const tick = 2 * time.Second
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			h.closeAll()
			return
		case now := <-t.C:
			h.maintain(now, tick)
		}
	}
}

func (h *Hub) maintain(now time.Time, tick time.Duration) {
	for _, s := range h.drop(func(s *Stream) bool {
		s.rate.sample(s.bytesIn.Load(), s.bytesOut.Load(), tick)
		return s.pub == nil && now.Sub(s.vacantSince) > h.cfg.IdleTimeout
	}) {
		s.shutdown(ErrStreamClosed)
	}
}

func (h *Hub) closeAll() {
	for _, s := range h.drop(func(*Stream) bool { return true }) {
		s.shutdown(ErrStreamClosed)
	}
}

// drop removes the streams that gone accepts (called with the stream's lock held) and
// marks them dead in the same step, under both locks: a Publish or Play that looked one
// up just before sees it dead and retries on a fresh stream. The caller shuts them
// down, outside the hub's lock.
func (h *Hub) drop(gone func(*Stream) bool) []*Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*Stream
	for key, s := range h.streams {
		if s.markDead(gone) {
			delete(h.streams, key)
			h.cfg.Budget.removeStream()
			out = append(out, s)
		}
	}
	return out
}

// markDead marks s dead if gone accepts it.
func (s *Stream) markDead(gone func(*Stream) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = gone(s)
	return s.dead
}

// StreamStats is one stream as the API shows it.
type StreamStats struct {
	App, Name   string
	Created     time.Time
	Publishing  bool
	PublisherID uint64
	Players     int
	Frames      uint64
	BytesIn     uint64
	BytesOut    uint64
	KbpsIn      float64
	KbpsOut     float64
	Info        Info
}

// ClientStats is one connection attached to a stream.
type ClientStats struct {
	ID       uint64
	App      string
	Stream   string
	Kind     string
	Remote   string
	Publish  bool
	BytesOut uint64
}

// Snapshot lists streams and their clients, sorted by stream key.
func (h *Hub) Snapshot() ([]StreamStats, []ClientStats) {
	h.mu.Lock()
	list := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		list = append(list, s)
	}
	h.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Key() < list[j].Key() })
	var streams []StreamStats
	var clients []ClientStats
	for _, s := range list {
		in, out := s.rate.kbps()
		s.mu.Lock()
		st := StreamStats{App: s.App, Name: s.Name, Created: s.created, Publishing: s.pub != nil,
			Players: len(s.players), Frames: s.frames, BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(),
			KbpsIn: in, KbpsOut: out, Info: s.info}
		if s.pub != nil {
			st.PublisherID = s.pub.ID
			clients = append(clients, ClientStats{ID: s.pub.ID, App: s.App, Stream: s.Name, Kind: "publish", Remote: s.pub.Remote, Publish: true})
		}
		players := make([]*Player, 0, len(s.players))
		for p := range s.players {
			players = append(players, p)
		}
		s.mu.Unlock()
		for _, p := range players {
			clients = append(clients, ClientStats{ID: p.ID, App: s.App, Stream: s.Name, Kind: p.Kind, Remote: p.Remote, BytesOut: p.BytesOut()})
		}
		streams = append(streams, st)
	}
	sort.Slice(clients, func(i, j int) bool { return clients[i].ID < clients[j].ID })
	return streams, clients
}

// rateMeter turns byte counters into kbit/s over the last sample period.
type rateMeter struct {
	mu              sync.Mutex
	lastIn, lastOut uint64
	in, out         float64
}

func (r *rateMeter) sample(in, out uint64, period time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sec := period.Seconds()
	r.in = float64(in-r.lastIn) * 8 / 1000 / sec
	r.out = float64(out-r.lastOut) * 8 / 1000 / sec
	r.lastIn, r.lastOut = in, out
}

func (r *rateMeter) kbps() (float64, float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.in, r.out
}
