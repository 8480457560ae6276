// Package membership wraps hashicorp/memberlist for the peer cluster: gossip
// membership with encrypted traffic, node metadata (addresses, version,
// incarnation, load), stable node identities across restarts and a member
// table that keeps dead and left nodes visible.
//
// Identity: memberlist refuses a known name that reappears at a new address
// ("Conflicting address", memberlist issue #157) for tens of seconds. Each
// process start therefore gossips under a per-start name "<name>-<nonce>" and
// carries the stable node name in its metadata; the member table folds all
// incarnations of one stable name into one Member, preferring the newest start
// time. A restarted node is visible again within about 100 ms.
//
// Advertise is the one function that turns a listen address into the address a node
// announces. Events reach subscribers through membership/bus. The package imports
// memberlist, conf/ratelog and membership/bus: nothing of the placement or media layers.
package membership

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/membership/bus"
)

// State of a member as seen by this node.
type State string

// Member states. memberlist v0.6.0 does not expose its internal "suspect" state
// through any public API (Node.State of returned nodes is never updated), so a
// suspected member is reported alive until it is declared dead.
const (
	StateAlive State = "alive"
	StateDead  State = "dead"
	StateLeft  State = "left"
)

// Load is the gossiped load of a node.
type Load struct {
	Streams    int     `json:"s,omitempty"`
	Players    int     `json:"p,omitempty"`
	EgressMbps float64 `json:"e,omitempty"`
	CPU        float64 `json:"c,omitempty"`
	// MaxStreams is the node's own limit on the streams it masters (--max-streams);
	// at the limit the leader places new streams elsewhere.
	MaxStreams int `json:"m,omitempty"`
}

// Meta is what a node gossips about itself. It must stay under 512 bytes.
type Meta struct {
	Name    string `json:"n"`
	RTMP    string `json:"r,omitempty"`
	HTTP    string `json:"h,omitempty"`
	Raft    string `json:"f,omitempty"`
	Version string `json:"v,omitempty"`
	// Incarnation grows with every start of the node (NextIncarnation; the wall clock
	// in unix nanoseconds if the caller sets none); newer wins.
	Incarnation int64 `json:"i"`
	Leaving     bool  `json:"x,omitempty"`
	Witness     bool  `json:"w,omitempty"` // a Raft voter that carries no media
	Load        Load  `json:"l"`
	// Key is the fingerprint of the node's identity key (placement's raft-port
	// certificate), which stays with its data dir across restarts.
	Key string `json:"k,omitempty"`
	// ProtoMin and ProtoMax are the placement protocol versions the node works with
	// (Protocol; 0: it predates the announcement, LegacyProtocol).
	ProtoMin int `json:"pn,omitempty"`
	ProtoMax int `json:"px,omitempty"`
}

// Protocol is the range of placement protocol versions (the replicated state's command
// versions) a node works with: it reads every version up to Max, and writes any from Min
// to Max, the highest every member reads. Two nodes work together when their ranges
// overlap: a release that adds version n+1 announces n..n+1, so that it mixes with the
// release before it (a rolling upgrade, one version at a time).
type Protocol struct{ Min, Max int }

// LegacyProtocol is what a node that announces no protocol speaks: it predates the
// announcement, and wrote and read command version 2.
var LegacyProtocol = Protocol{Min: 2, Max: 2}

func (p Protocol) String() string {
	if p.Min == p.Max {
		return strconv.Itoa(p.Max)
	}
	return strconv.Itoa(p.Min) + "-" + strconv.Itoa(p.Max)
}

// Protocol is the range the node announces.
func (m Meta) Protocol() Protocol {
	if m.ProtoMax == 0 {
		return LegacyProtocol
	}
	return Protocol{Min: m.ProtoMin, Max: m.ProtoMax}
}

// ErrIncompatible: a node speaks no placement protocol version in common with this one.
// It is refused at join (either side) and in gossip; retrying does not help.
var ErrIncompatible = errors.New("membership: no placement protocol version in common")

// Compatible says whether the node announcing other may be a member beside the node
// announcing self; the error names both nodes, their software and protocol versions,
// and which side is too new.
func Compatible(self, other Meta) error {
	a, b := self.Protocol(), other.Protocol()
	if b.Min <= a.Max && a.Min <= b.Max {
		return nil
	}
	newer, older := other, self
	if b.Max < a.Min {
		newer, older = self, other
	}
	return fmt.Errorf("%w: %s (peer %s) speaks placement protocol %s, %s (peer %s) speaks %s: %s is too new for %s; upgrade one version at a time",
		ErrIncompatible, self.Name, self.Version, a, other.Name, other.Version, b, newer.Name, older.Name)
}

// Member is one stable node as seen by this node.
type Member struct {
	Name        string    `json:"name"`
	GossipName  string    `json:"gossip_name"` // per-start memberlist name
	State       State     `json:"state"`
	Gossip      string    `json:"gossip"` // gossip host:port
	RTMP        string    `json:"rtmp"`
	HTTP        string    `json:"http"`
	Raft        string    `json:"raft"`
	Version     string    `json:"version"`
	Incarnation int64     `json:"incarnation"`
	Key         string    `json:"key,omitempty"` // identity key fingerprint (Meta.Key)
	Leaving     bool      `json:"leaving"`
	Witness     bool      `json:"witness,omitempty"` // carries no media (Meta.Witness)
	Protocol    Protocol  `json:"protocol"`          // placement protocol versions (Meta.Protocol)
	Load        Load      `json:"load"`
	Since       time.Time `json:"since"` // local time of the last state change
}

// EventType of a membership event.
type EventType int

// Event types.
const (
	EventJoin EventType = iota
	EventUpdate
	EventLeave // graceful leave
	EventFail  // declared dead
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventLeave:
		return "leave"
	case EventFail:
		return "fail"
	}
	return strconv.Itoa(int(t))
}

// Event is delivered to subscribers in order, from one goroutine.
type Event struct {
	Type   EventType
	Member Member
}

// Timing holds the gossip failure-detector knobs.
type Timing struct {
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	GossipInterval          time.Duration
	PushPullInterval        time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	TCPTimeout              time.Duration
	// RejoinInterval: how often dead (not left) members' last addresses are
	// dialled again to heal a split after a partition. 0 disables.
	RejoinInterval time.Duration
}

// FastLAN is the default profile, measured on loopback (LIBRARIES.md §4):
// a crashed node is declared dead in ~0.7 s (0.64–1.2 s). The trade-off is
// more false positives under CPU starvation or packet loss (a paused or
// overloaded process is declared dead after ~1 s); placement protects against
// that with a dead-node grace and MinQuorum-style rules. Use LAN() for
// real networks (~6 s detection).
func FastLAN() Timing {
	return Timing{
		ProbeInterval:  200 * time.Millisecond,
		ProbeTimeout:   100 * time.Millisecond,
		GossipInterval: 50 * time.Millisecond,
		// Full state sync every second: a node that missed an alive
		// broadcast (UDP) catches up within ~1 s instead of 5-30 s.
		PushPullInterval:        time.Second,
		SuspicionMult:           2,
		SuspicionMaxTimeoutMult: 2,
		TCPTimeout:              time.Second,
		RejoinInterval:          3 * time.Second,
	}
}

// LAN is memberlist's conservative LAN profile.
func LAN() Timing {
	return Timing{
		ProbeInterval:           time.Second,
		ProbeTimeout:            500 * time.Millisecond,
		GossipInterval:          200 * time.Millisecond,
		PushPullInterval:        30 * time.Second,
		SuspicionMult:           4,
		SuspicionMaxTimeoutMult: 6,
		TCPTimeout:              10 * time.Second,
		RejoinInterval:          15 * time.Second,
	}
}

// Config of a Membership.
type Config struct {
	Name          string // stable node name (also the raft ID)
	BindAddr      string // gossip host:port (port 0 = pick one)
	AdvertiseAddr string // host[:port] others use; default: bind address
	ClusterKey    string // shared secret; empty = no encryption
	Meta          Meta   // Name and Incarnation are filled in if empty
	Timing        Timing // zero = FastLAN()
	// Trust reports whether a node gossiping as name with identity key (Meta.Key) may
	// hold that name. A node it refuses is left out of Members and its events, and
	// logged: a second node claiming a live member's name does not take its place.
	// nil trusts every node.
	Trust func(name, key string) bool
	// Transport, when set, wraps the gossip transport: tests inject faults through it.
	// nil (production) uses memberlist's network transport as it is.
	Transport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// Membership is a running gossip member.
type Membership struct {
	cfg   Config
	log   *zap.Logger
	ml    *memberlist.Memberlist
	trans memberlist.NodeAwareTransport
	self  string           // this start's memberlist name
	dups  *ratelog.Limiter // refused claims of a member's name
	// incompat is the last refusal of a node without a protocol version in common
	// (Join reports it); refusals are logged at a bounded rate.
	incompat    error
	incompatLog *ratelog.Limiter

	mu      sync.Mutex
	meta    Meta
	nodes   map[string]*entry // by memberlist (per-start) name
	leaving map[string]bool   // per-start names that announced a graceful leave
	events  bus.Bus[Event]

	stopCh chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

type entry struct {
	gossipName string
	addr       string
	meta       Meta
	state      State
	since      time.Time
}

// DeriveKey turns a cluster key string into a 32-byte AES-256 key.
func DeriveKey(clusterKey string) []byte {
	sum := sha256.Sum256([]byte("peer-gossip\x00" + clusterKey))
	return sum[:]
}

// New starts gossip (without joining anybody).
func New(cfg Config, logger *zap.Logger) (*Membership, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	if cfg.Name == "" {
		return nil, errors.New("membership: empty Name")
	}
	if cfg.Timing.ProbeInterval == 0 {
		cfg.Timing = FastLAN()
	}
	host, portS, err := net.SplitHostPort(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("membership: bind address %q: %w", cfg.BindAddr, err)
	}
	port, _ := strconv.Atoi(portS)
	if cfg.Meta.Incarnation == 0 {
		cfg.Meta.Incarnation = time.Now().UnixNano()
	}
	cfg.Meta.Name = cfg.Name
	m := &Membership{
		cfg:     cfg,
		log:     logger.Named("membership"),
		meta:    cfg.Meta,
		nodes:   map[string]*entry{},
		leaving: map[string]bool{},
		stopCh:  make(chan struct{}),
	}
	m.dups = ratelog.New(m.log, 0)
	m.incompatLog = ratelog.New(m.log, 0)

	mlLog := log.New(&logWriter{log: m.log, refused: ratelog.New(m.log, 0)}, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    mlLog,
	})
	if err != nil {
		return nil, fmt.Errorf("membership: listen %s: %w", cfg.BindAddr, err)
	}
	m.trans = nt
	if cfg.Transport != nil {
		m.trans = cfg.Transport(nt)
	}

	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	mc := m.memberlistConfig(cfg.Name+"-"+hex.EncodeToString(nonce[:]), mlLog, host, nt.GetAutoBindPort())
	m.self = mc.Name
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = m.trans.Shutdown()
		return nil, fmt.Errorf("membership: %w", err)
	}
	m.ml = ml
	if cfg.Timing.RejoinInterval > 0 {
		m.wg.Add(1)
		go m.rejoinLoop()
	}
	m.log.Info("gossip started", zap.String("name", cfg.Name), zap.String("gossip_name", mc.Name),
		zap.String("addr", m.Addr()), zap.Bool("encrypted", cfg.ClusterKey != ""))
	return m, nil
}

// memberlistConfig is memberlist's configuration for this start's gossip name, bound on
// host (port: the one bound), with the timings, advertise address and key of m.cfg.
func (m *Membership) memberlistConfig(name string, mlLog *log.Logger, host string, bound int) *memberlist.Config {
	cfg := m.cfg
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.Transport = m.trans
	mc.Logger = mlLog
	mc.Delegate = &delegate{m: m}
	mc.Alive = &delegate{m: m}
	mc.Merge = &delegate{m: m}
	mc.Events = &events{m: m}
	mc.ProbeInterval = cfg.Timing.ProbeInterval
	mc.ProbeTimeout = cfg.Timing.ProbeTimeout
	mc.GossipInterval = cfg.Timing.GossipInterval
	mc.PushPullInterval = cfg.Timing.PushPullInterval
	mc.SuspicionMult = cfg.Timing.SuspicionMult
	mc.SuspicionMaxTimeoutMult = cfg.Timing.SuspicionMaxTimeoutMult
	mc.TCPTimeout = cfg.Timing.TCPTimeout
	mc.DeadNodeReclaimTime = time.Second
	// Gossip messages are a few hundred bytes: LZW saves nothing on them, and its tables
	// (allocated per message) were a third of what an idle node allocated.
	mc.EnableCompression = false
	advHost, advPortS, _ := net.SplitHostPort(Advertise(cfg.AdvertiseAddr, net.JoinHostPort(host, strconv.Itoa(bound))))
	advPort, _ := strconv.Atoi(advPortS)
	mc.AdvertiseAddr = advHost
	mc.AdvertisePort = advPort
	mc.BindAddr = host
	mc.BindPort = advPort
	if cfg.ClusterKey != "" {
		mc.SecretKey = DeriveKey(cfg.ClusterKey)
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	return mc
}

// Name is the stable node name.
func (m *Membership) Name() string { return m.cfg.Name }

// Addr is the advertised gossip address (host:port).
func (m *Membership) Addr() string {
	n := m.ml.LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// ErrKeyMismatch: a seed answered but its gossip is encrypted with another cluster key,
// or one of the two sides has none. Retrying does not help.
var ErrKeyMismatch = errors.New("membership: the seed uses another cluster key, or one side has none")

// memberlist's errors (v0.6.0) when the two sides' keys differ; it has no typed errors.
var keyMismatchErrors = []string{
	"remote state is encrypted and encryption is not configured",
	"encryption is configured but remote state is not encrypted",
	"no installed keys could decrypt the message",
}

// Join contacts seeds (gossip host:port). It succeeds if at least one answered. When
// every seed that answered refused this node's key, the error wraps ErrKeyMismatch.
func (m *Membership) Join(seeds []string) error {
	if len(seeds) == 0 {
		return nil
	}
	n, err := m.ml.Join(seeds)
	if n > 0 {
		m.log.Info("joined cluster", zap.Strings("seeds", seeds), zap.Int("contacted", n))
		return nil
	}
	m.mu.Lock()
	incompat := m.incompat
	m.mu.Unlock()
	if incompat != nil {
		return fmt.Errorf("refused to join through %v: %w", seeds, incompat)
	}
	if err == nil {
		err = errors.New("no seed answered")
	}
	for _, e := range keyMismatchErrors {
		if strings.Contains(err.Error(), e) {
			return fmt.Errorf("%w: join %v: %v", ErrKeyMismatch, seeds, err)
		}
	}
	return fmt.Errorf("membership: join %v: %w", seeds, err)
}

// SetLoad gossips new load figures (metadata update).
func (m *Membership) SetLoad(l Load) {
	m.mu.Lock()
	m.meta.Load = l
	m.mu.Unlock()
	_ = m.ml.UpdateNode(time.Second)
}

// Meta returns this node's current metadata.
func (m *Membership) Meta() Meta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.meta
}

// Leave marks this node as leaving (metadata plus a reliable TCP notice to
// every live member, so they report "left" rather than "dead": memberlist's
// own dead/left distinction is not observable) and then leaves gossip.
func (m *Membership) Leave(timeout time.Duration) error {
	m.mu.Lock()
	m.meta.Leaving = true
	m.mu.Unlock()
	_ = m.ml.UpdateNode(timeout / 2)
	msg := append([]byte(leaveNotice), m.ml.LocalNode().Name...)
	var wg sync.WaitGroup
	for _, n := range m.ml.Members() {
		if n.Name == m.ml.LocalNode().Name {
			continue
		}
		wg.Add(1)
		go func(n *memberlist.Node) {
			defer wg.Done()
			_ = m.ml.SendReliable(n, msg)
		}(n)
	}
	wg.Wait()
	err := m.ml.Leave(timeout)
	m.log.Info("left gossip", zap.Error(err))
	return err
}

// SetLeaving only flags this node as leaving in gossip (it stays a member).
func (m *Membership) SetLeaving() {
	m.mu.Lock()
	m.meta.Leaving = true
	m.mu.Unlock()
	_ = m.ml.UpdateNode(time.Second)
}

// Shutdown stops gossip without leaving (others will declare this node dead).
func (m *Membership) Shutdown() {
	m.once.Do(func() {
		close(m.stopCh)
		_ = m.ml.Shutdown()
		m.events.Close()
		m.wg.Wait()
	})
}

// Subscribe registers fn for membership events. Calls are made in order from
// a single goroutine; fn must not block for long.
func (m *Membership) Subscribe(fn func(Event)) { m.events.Add(fn) }

// Members returns one entry per stable node name, including dead and left
// nodes, sorted by name.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	best := map[string]*entry{}
	for _, e := range m.nodes {
		if !m.trusts(e.gossipName, e.meta) {
			continue
		}
		b := best[e.meta.Name]
		if b == nil || better(e, b) {
			best[e.meta.Name] = e
		}
	}
	out := make([]Member, 0, len(best))
	for _, e := range best {
		out = append(out, e.member())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Member returns one member by stable name.
func (m *Membership) Member(name string) (Member, bool) {
	for _, mm := range m.Members() {
		if mm.Name == name {
			return mm, true
		}
	}
	return Member{}, false
}

// better: newer incarnation wins; for equal incarnation alive wins.
func better(a, b *entry) bool {
	if a.meta.Incarnation != b.meta.Incarnation {
		return a.meta.Incarnation > b.meta.Incarnation
	}
	return a.state == StateAlive && b.state != StateAlive
}

func (e *entry) member() Member {
	return Member{
		Name: e.meta.Name, GossipName: e.gossipName, State: e.state, Gossip: e.addr,
		RTMP: e.meta.RTMP, HTTP: e.meta.HTTP, Raft: e.meta.Raft, Version: e.meta.Version,
		Incarnation: e.meta.Incarnation, Key: e.meta.Key, Leaving: e.meta.Leaving, Witness: e.meta.Witness, Load: e.meta.Load, Since: e.since,
		Protocol: e.meta.Protocol(),
	}
}

// trusts applies Config.Trust; this process's own entry is always itself.
func (m *Membership) trusts(gossipName string, meta Meta) bool {
	return m.cfg.Trust == nil || gossipName == m.self || m.cfg.Trust(meta.Name, meta.Key)
}

func (m *Membership) onNode(n *memberlist.Node, typ EventType) {
	var meta Meta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.Name == "" {
		m.log.Warn("ignoring gossip node without peer metadata", zap.String("node", n.Name))
		return
	}
	now := time.Now()
	trusted := m.trusts(n.Name, meta)
	m.mu.Lock()
	e := m.nodes[n.Name]
	// Is this incarnation the visible one for its stable name? Only trusted entries
	// compete: a node refused the name neither hides nor replaces its holder.
	newer := trusted
	for _, o := range m.nodes {
		if o != e && o.meta.Name == meta.Name && o.meta.Incarnation > meta.Incarnation && m.trusts(o.gossipName, o.meta) {
			newer = false
		}
	}
	if e == nil {
		if !newer && trusted {
			m.mu.Unlock()
			return
		}
		// An untrusted claimant is kept (not shown): it becomes visible if the name's
		// holder is gone and Trust accepts it then.
		e = &entry{gossipName: n.Name, since: now}
		m.nodes[n.Name] = e
	}
	state := StateAlive
	if typ == EventLeave || typ == EventFail {
		state = StateDead
		typ = EventFail
		if meta.Leaving || m.leaving[n.Name] {
			state = StateLeft
			typ = EventLeave
		}
	}
	if e.state != state {
		e.since = now
	}
	e.state = state
	e.meta = meta
	e.addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	// Forget older incarnations of the same node (same identity key) and gone ones.
	if state == StateAlive && trusted {
		for k, o := range m.nodes {
			if o != e && o.meta.Name == meta.Name && o.meta.Incarnation < meta.Incarnation &&
				(o.meta.Key == meta.Key || o.state != StateAlive) {
				delete(m.nodes, k)
			}
		}
	}
	if !trusted {
		addr := e.addr
		m.mu.Unlock()
		if state == StateAlive {
			m.dups.Warn("duplicate name", "refused a node claiming the name of another member (not its identity key)",
				zap.String("member", meta.Name), zap.String("gossip_name", n.Name), zap.String("addr", addr))
		}
		return
	}
	mem := e.member()
	if newer {
		m.events.Publish(Event{Type: typ, Member: mem})
	}
	m.mu.Unlock()
	if !newer {
		return
	}
	switch typ {
	case EventJoin:
		m.log.Info("member joined", zap.String("member", mem.Name), zap.String("addr", mem.Gossip), zap.Int64("incarnation", mem.Incarnation))
	case EventLeave:
		m.log.Info("member left", zap.String("member", mem.Name))
	case EventFail:
		m.log.Info("member failed", zap.String("member", mem.Name), zap.String("addr", mem.Gossip))
	}
}

// rejoinLoop dials the last address of members marked dead: if the node is
// actually alive on the other side of a healed partition, the push/pull
// merges both views again (memberlist alone only gossips to the dead for
// GossipToTheDeadTime).
func (m *Membership) rejoinLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Timing.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stopCh:
			return
		case <-t.C:
		}
		var addrs []string
		for _, mem := range m.Members() {
			if mem.State == StateDead && mem.Name != m.cfg.Name && len(addrs) < 8 {
				addrs = append(addrs, mem.Gossip)
			}
		}
		if len(addrs) > 0 {
			_, _ = m.ml.Join(addrs)
		}
	}
}

type delegate struct{ m *Membership }

func (d *delegate) NodeMeta(limit int) []byte {
	b, _ := json.Marshal(d.m.Meta())
	if len(b) > limit {
		d.m.log.Error("gossip metadata too large", zap.Int("len", len(b)), zap.Int("limit", limit))
		return nil
	}
	return b
}

const leaveNotice = "peer-leave:"

func (d *delegate) NotifyMsg(b []byte) {
	if s := string(b); strings.HasPrefix(s, leaveNotice) {
		name := strings.TrimPrefix(s, leaveNotice)
		d.m.mu.Lock()
		// Only for nodes we know: the set must not grow with made-up names.
		if _, known := d.m.nodes[name]; known {
			d.m.leaving[name] = true
		}
		d.m.mu.Unlock()
	}
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// NotifyAlive (memberlist.AliveDelegate) keeps a node without a placement protocol
// version in common out of this node's member list, however it is gossiped.
func (d *delegate) NotifyAlive(n *memberlist.Node) error { return d.m.checkProtocol(n) }

// NotifyMerge (memberlist.MergeDelegate) refuses a join, on either side, when a node of
// the other side has no protocol version in common with this one: the joining node's
// Join fails with the reason.
func (d *delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, n := range peers {
		if err := d.m.checkProtocol(n); err != nil {
			return err
		}
	}
	return nil
}

// checkProtocol applies Compatible to a gossiped node (one without peer metadata is left
// to onNode, which ignores it).
func (m *Membership) checkProtocol(n *memberlist.Node) error {
	var meta Meta
	if n.Name == m.self || json.Unmarshal(n.Meta, &meta) != nil || meta.Name == "" {
		return nil
	}
	err := Compatible(m.Meta(), meta)
	if err != nil {
		m.mu.Lock()
		m.incompat = err
		m.mu.Unlock()
		m.incompatLog.Warn("incompatible "+meta.Name, "refused a node: no placement protocol version in common",
			zap.String("member", meta.Name), zap.String("addr", net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))), zap.Error(err))
	}
	return err
}
func (d *delegate) LocalState(join bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

type events struct{ m *Membership }

func (e *events) NotifyJoin(n *memberlist.Node)   { e.m.onNode(n, EventJoin) }
func (e *events) NotifyLeave(n *memberlist.Node)  { e.m.onNode(n, EventFail) }
func (e *events) NotifyUpdate(n *memberlist.Node) { e.m.onNode(n, EventUpdate) }

// logWriter routes memberlist's std logger into zap; decryption failures
// (a peer without the cluster key) are reported as refused attempts, at a bounded rate:
// anyone who can send a UDP packet to the gossip port can cause one.
type logWriter struct {
	log     *zap.Logger
	refused *ratelog.Limiter
}

func (w *logWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(s, "decrypt") || strings.Contains(s, "Decrypt") || strings.Contains(s, "No installed keys"):
		w.refused.Warn("no key", "refused gossip from a node without the cluster key", zap.String("detail", s))
	case strings.HasPrefix(s, "[DEBUG]"):
	case strings.HasPrefix(s, "[INFO]"):
		w.log.Debug(s)
	default:
		w.log.Debug(s) // memberlist is chatty about transient errors on fast timings
	}
	return len(p), nil
}

// MinDetection is the shortest time in which this failure detector can declare a
// crashed node dead: one failed probe (ProbeTimeout) and the shortest suspicion
// (SuspicionMult probe intervals, memberlist's floor for small clusters). Usually it
// takes longer (the probe comes later, suspicion starts longer); fencing must hold
// against the fastest case.
func (t Timing) MinDetection() time.Duration {
	return t.ProbeTimeout + time.Duration(t.SuspicionMult)*t.ProbeInterval
}
