// Package placement decides and replicates, per live stream, which node is
// the master, which nodes hold slave replicas and which nodes are edges. It
// runs hashicorp/raft (bolt log under the data dir) on every node; the raft
// leader reconciles the raft configuration with gossip membership (package
// membership) and moves streams away from dead or leaving nodes.
package placement

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/membership"
)

// Errors returned by the decision calls.
var (
	ErrStale    = errors.New("placement: stale epoch")
	ErrNotFound = errors.New("placement: no such stream")
	ErrNoLeader = errors.New("placement: no leader reachable")
	ErrClosed   = errors.New("placement: cluster shut down")
)

// Cluster is one node's control plane: gossip membership + raft placement.
type Cluster struct {
	cfg  Config
	log  *zap.Logger
	name string

	mem    *membership.Membership
	raft   *raft.Raft
	fsm    *FSM
	layer  *muxLayer
	trans  *raft.NetworkTransport
	bolt   *raftboltdb.BoltStore
	obsCh  chan raft.Observation
	obs    *raft.Observer
	advRaf string
	keyID  string // fingerprint of this node's identity key (gossiped; see tls.go)

	refused  *ratelog.Limiter // refused RPCs, logged at a bounded rate
	rpcConns rpcPool          // idle connections to the leader

	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	kick    chan struct{}
	commits chan struct{} // apply → announceLoop: tell the followers now
	started atomic.Bool
	shut    sync.Once

	// local subscribers
	nmu      sync.Mutex
	ncond    *sync.Cond
	nqueue   []Change
	subs     map[int]func(Change)
	nextSub  int
	nstopped bool

	lastVerified atomic.Int64 // unix nanos of the last successful VerifyLeader (leader)
	contactOK    atomic.Bool
	contact      contactState // degraded mode (degraded.go)

	leaderChanges atomic.Uint64 // leaders seen elected (Stats)
	applyLatency  latency       // this node's applies (Stats)

	// leader-only bookkeeping (reconcile goroutine + leader ops)
	lmu           sync.Mutex
	leaderSince   time.Time
	nonvoterSince map[raft.ServerID]time.Time
}

// New validates cfg; Start brings the node up.
func New(cfg Config, log *zap.Logger) (*Cluster, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg.setDefaults()
	if cfg.DataDir == "" && !cfg.InMemory {
		return nil, errors.New("placement: DataDir required")
	}
	if cfg.GossipAddr == "" || cfg.RaftAddr == "" {
		return nil, errors.New("placement: GossipAddr and RaftAddr required")
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("placement: replicas %d: want 0 or more", cfg.Replicas)
	}
	if err := cfg.checkFencing(); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, log: log, refused: ratelog.New(log, 0), kick: make(chan struct{}, 1), commits: make(chan struct{}, 1), subs: map[int]func(Change){},
		nonvoterSince: map[raft.ServerID]time.Time{}}
	c.ncond = sync.NewCond(&c.nmu)
	return c, nil
}

// loadIdentity returns the stable node name, stored in DataDir/node-id.
func (c *Cluster) loadIdentity() (string, error) {
	if c.cfg.InMemory && c.cfg.DataDir == "" {
		if c.cfg.Name == "" {
			return "", errors.New("placement: Name required")
		}
		return c.cfg.Name, nil
	}
	if err := os.MkdirAll(c.cfg.DataDir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(c.cfg.DataDir, "node-id")
	b, err := os.ReadFile(p)
	if err == nil {
		stored := strings.TrimSpace(string(b))
		if c.cfg.Name != "" && c.cfg.Name != stored {
			return "", fmt.Errorf("placement: data dir %s belongs to node %q, not %q", c.cfg.DataDir, stored, c.cfg.Name)
		}
		return stored, nil
	}
	if c.cfg.Name == "" {
		return "", errors.New("placement: Name required for a new data dir")
	}
	if err := os.WriteFile(p, []byte(c.cfg.Name+"\n"), 0o644); err != nil {
		return "", err
	}
	return c.cfg.Name, nil
}

// loadCertificate loads (or creates) this node's identity key and has the cluster CA,
// derived from the cluster key, issue the node's certificate for the raft port.
func (c *Cluster) loadCertificate() (server, client *tls.Config, err error) {
	key, err := loadNodeKey(c.cfg.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: node key: %w", err)
	}
	ca, err := deriveCA(c.cfg.ClusterKey)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: cluster CA: %w", err)
	}
	cert, err := ca.issue(c.name, key)
	if err != nil {
		return nil, nil, fmt.Errorf("placement: node certificate: %w", err)
	}
	c.keyID = keyFingerprint(key.Public().(ed25519.PublicKey))
	server, client = ca.tlsConfigs(cert)
	return server, client, nil
}

// trusted tells membership whether the node gossiping as name with identity key may
// hold that name: a name belongs to the identity key the replicated member table
// recorded for it while that holder lives (a node restarted on its data dir keeps its
// key). A record of a dead or departed holder can be taken over by a new identity.
func (c *Cluster) trusted(name, key string) bool {
	rec, ok := c.fsm.member(name)
	if !ok || rec.Key == "" || rec.Key == key {
		return true
	}
	return rec.State == string(membership.StateDead) || rec.State == string(membership.StateLeft)
}

// Start opens the raft log, starts raft, gossip and the background loops.
// Cancelling ctx shuts the node down (like Shutdown).
func (c *Cluster) Start(ctx context.Context) (err error) {
	if c.started.Swap(true) {
		return errors.New("placement: already started")
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.contact.started = time.Now()
	defer func() {
		if err != nil {
			c.teardown()
		}
	}()
	name, err := c.loadIdentity()
	if err != nil {
		return err
	}
	c.name = name
	serverTLS, clientTLS, err := c.loadCertificate()
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("placement: raft listen: %w", err)
	}
	adv := c.cfg.RaftAdvertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, port, _ := net.SplitHostPort(adv)
	if port == "0" || port == "" {
		_, port, _ = net.SplitHostPort(ln.Addr().String())
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
		if h, _, e := net.SplitHostPort(c.cfg.GossipAdvertise); e == nil && h != "" {
			host = h
		}
	}
	advAddr, err := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("placement: raft advertise: %w", err)
	}
	c.advRaf = advAddr.String()
	c.layer = newMuxLayer(ln, advAddr, serverTLS, clientTLS, c.log.Named("transport"), c.serveRPC)

	hl := newHCLog("raft", c.cfg.RaftLogLevel, c.log.Named("raft"))
	c.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: c.layer, MaxPool: 3, Timeout: 2 * time.Second, Logger: hl,
	})

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if c.cfg.InMemory {
		s := raft.NewInmemStore()
		logs, stable = s, s
		snaps = raft.NewInmemSnapshotStore()
	} else {
		if c.bolt, snaps, err = openStores(c.cfg.DataDir, c.cfg.NoSync, hl); err != nil {
			return err
		}
		logs, stable = c.bolt, c.bolt
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(name)
	rc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	rc.ElectionTimeout = c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = c.cfg.CommitTimeout
	rc.ShutdownOnRemove = false
	rc.SnapshotThreshold = 4096
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = 4096
	rc.Logger = hl

	c.fsm = newFSM(c.enqueue, c.log)
	bootstrap := false
	if c.cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, stable, snaps)
		if err != nil {
			return err
		}
		bootstrap = !has
	}
	c.raft, err = raft.NewRaft(rc, c.fsm, logs, stable, snaps, c.trans)
	if err != nil {
		return fmt.Errorf("placement: raft: %w", err)
	}
	if bootstrap {
		f := c.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: raft.ServerID(name), Address: raft.ServerAddress(c.advRaf)}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("placement: bootstrap: %w", err)
		}
		c.log.Info("bootstrapped a new cluster of one")
	}

	c.obsCh = make(chan raft.Observation, 16)
	c.obs = raft.NewObserver(c.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	c.raft.RegisterObserver(c.obs)

	// The incarnation survives restarts in the data dir: a start after the clock went
	// back still beats the last one (in-memory nodes use the wall clock).
	var incarnation int64
	if c.cfg.DataDir != "" {
		if incarnation, err = membership.NextIncarnation(c.cfg.DataDir); err != nil {
			return err
		}
	}
	c.mem, err = membership.New(membership.Config{
		Name: name, BindAddr: c.cfg.GossipAddr, AdvertiseAddr: c.cfg.GossipAdvertise,
		ClusterKey: c.cfg.ClusterKey, Timing: c.cfg.Gossip, Trust: c.trusted,
		Meta: membership.Meta{RTMP: c.cfg.RTMPAddr, HTTP: c.cfg.HTTPAddr, Raft: c.advRaf, Version: c.cfg.Version,
			Key: c.keyID, Load: membership.Load{MaxStreams: c.cfg.MaxStreams}, Incarnation: incarnation, Witness: c.cfg.Witness},
	}, c.log)
	if err != nil {
		return err
	}
	c.mem.Subscribe(c.onMemberEvent)

	c.wg.Add(5)
	go c.notifyLoop()
	go c.observeLoop()
	go c.reconcileLoop()
	go c.fenceLoop()
	go c.announceLoop()
	if ctx != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			select {
			case <-ctx.Done():
				go c.Shutdown()
			case <-c.ctx.Done():
			}
		}()
	}
	c.log.Info("placement node started", zap.String("raft", c.advRaf), zap.String("gossip", c.mem.Addr()),
		zap.Bool("bootstrap", bootstrap))
	return nil
}

// Join contacts gossip seeds; the raft leader then adds this node.
func (c *Cluster) Join(seeds []string) error { return c.mem.Join(seeds) }

// Self is this node's stable name.
func (c *Cluster) Self() string { return c.name }

// Leader is the current raft leader's name ("" if unknown).
func (c *Cluster) Leader() string {
	_, id := c.raft.LeaderWithID()
	return string(id)
}

// IsLeader reports whether this node is the raft leader.
func (c *Cluster) IsLeader() bool { return c.raft.State() == raft.Leader }

// RaftAddr is the advertised raft/RPC address.
func (c *Cluster) RaftAddr() string { return c.advRaf }

// GossipAddr is the advertised gossip address (use as a seed).
func (c *Cluster) GossipAddr() string { return c.mem.Addr() }

// Membership gives access to the gossip layer (members, load).
func (c *Cluster) Membership() *membership.Membership { return c.mem }

// SetLoad gossips this node's load (used for placement).
func (c *Cluster) SetLoad(l membership.Load) { c.mem.SetLoad(l) }

// SetPartitioned is a fault-injection hook (tests/chaos): cut this node off
// (gossip out, raft and RPC both ways) or heal it.
func (c *Cluster) SetPartitioned(b bool) {
	c.mem.SetPartitioned(b)
	c.layer.setBlocked(b)
}

// Lookup reads the local FSM.
func (c *Cluster) Lookup(stream string) (Assignment, bool) {
	a := c.fsm.get(stream)
	if a == nil {
		return Assignment{}, false
	}
	return *a, true
}

// Streams lists all assignments in the local FSM.
func (c *Cluster) Streams() []Assignment { return c.fsm.all() }

// IsCurrent: does the local FSM say node masters stream at epoch?
func (c *Cluster) IsCurrent(stream, node string, epoch uint64) bool {
	a := c.fsm.get(stream)
	return a != nil && a.Master == node && a.Epoch == epoch
}

// InContact reports whether this node has recently heard from (follower)
// or been confirmed as (leader) the raft leader, within FenceTimeout.
func (c *Cluster) InContact() bool {
	if c.raft.State() == raft.Leader {
		return time.Since(time.Unix(0, c.lastVerified.Load())) < c.cfg.FenceTimeout
	}
	lc := c.raft.LastContact()
	return !lc.IsZero() && time.Since(lc) < c.cfg.FenceTimeout
}

// Valid is the cheap fencing test for a master: the local FSM says this node
// owns stream at epoch AND this node is in contact with a leader. A paused or
// partitioned master gets false within FenceTimeout, before the cluster can
// have moved the stream (detection + FailoverGrace > FenceTimeout).
func (c *Cluster) Valid(stream string, epoch uint64) bool {
	return c.InContact() && c.IsCurrent(stream, c.name, epoch)
}

func (c *Cluster) teardown() {
	if c.cancel != nil {
		c.cancel()
	}
	c.nmu.Lock()
	c.nstopped = true
	c.ncond.Broadcast()
	c.nmu.Unlock()
	c.wg.Wait()
	if c.raft != nil {
		if c.obs != nil {
			c.raft.DeregisterObserver(c.obs)
		}
		if err := c.raft.Shutdown().Error(); err != nil {
			c.log.Warn("raft shutdown", zap.Error(err))
		}
	}
	if c.trans != nil {
		_ = c.trans.Close()
	}
	c.rpcConns.close()
	if c.layer != nil {
		_ = c.layer.Close()
		c.layer.wait()
	}
	if c.bolt != nil {
		_ = c.bolt.Close()
	}
	if c.mem != nil {
		c.mem.Shutdown()
	}
}

// Shutdown stops everything without leaving (looks like a crash to others).
func (c *Cluster) Shutdown() {
	c.shut.Do(func() {
		c.teardown()
		c.log.Info("placement node stopped")
	})
}

// Leave hands this node's streams off, leaves raft and gossip, and shuts
// down. It returns the first error encountered but always shuts down.
func (c *Cluster) Leave(ctx context.Context) error {
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	c.log.Info("leaving the cluster")
	c.mem.SetLeaving()
	_, err := c.call(ctx, rpcReq{Op: "drain", Node: c.name})
	keep(err)
	others := c.otherServers()
	if len(others) > 0 {
		if c.raft.State() == raft.Leader {
			if err := c.raft.LeadershipTransfer().Error(); err != nil {
				c.log.Warn("leadership transfer failed", zap.Error(err))
			}
		}
		// Wait for a leader other than us, then ask it to remove us.
		for ctx.Err() == nil {
			if l := c.Leader(); l != "" && l != c.name {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_, err := c.call(ctx, rpcReq{Op: "remove", Node: c.name})
		keep(err)
	}
	keep(c.mem.Leave(time.Second))
	c.Shutdown()
	return firstErr
}

func (c *Cluster) otherServers() []raft.Server {
	f := c.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []raft.Server
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != c.name {
			out = append(out, s)
		}
	}
	return out
}

// OnChange registers fn for local FSM changes and contact changes; calls
// come in order from one goroutine. The returned func unsubscribes.
func (c *Cluster) OnChange(fn func(Change)) (cancel func()) {
	c.nmu.Lock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = fn
	c.nmu.Unlock()
	return func() {
		c.nmu.Lock()
		delete(c.subs, id)
		c.nmu.Unlock()
	}
}

// Watch is OnChange as a channel (buffered; a slow reader slows delivery to
// other subscribers). cancel must be called to release it.
func (c *Cluster) Watch() (<-chan Change, func()) {
	ch := make(chan Change, 256)
	done := make(chan struct{})
	var once sync.Once
	unsub := c.OnChange(func(ch2 Change) {
		select {
		case ch <- ch2:
		case <-done:
		case <-c.ctx.Done():
		}
	})
	return ch, func() { once.Do(func() { unsub(); close(done) }) }
}

func (c *Cluster) enqueue(ch []Change) {
	c.nmu.Lock()
	c.nqueue = append(c.nqueue, ch...)
	c.ncond.Signal()
	c.nmu.Unlock()
}

func (c *Cluster) notifyLoop() {
	defer c.wg.Done()
	for {
		c.nmu.Lock()
		for len(c.nqueue) == 0 && !c.nstopped {
			c.ncond.Wait()
		}
		if c.nstopped {
			c.nmu.Unlock()
			return
		}
		q := c.nqueue
		c.nqueue = nil
		subs := make([]func(Change), 0, len(c.subs))
		for _, fn := range c.subs {
			subs = append(subs, fn)
		}
		c.nmu.Unlock()
		for _, ch := range q {
			for _, fn := range subs {
				fn(ch)
			}
		}
	}
}

func (c *Cluster) observeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case o := <-c.obsCh:
			lo, ok := o.Data.(raft.LeaderObservation)
			if !ok {
				continue
			}
			c.log.Info("raft leader changed", zap.String("leader", string(lo.LeaderID)), zap.String("addr", string(lo.LeaderAddr)))
			if lo.LeaderID != "" {
				c.leaderChanges.Add(1)
			}
			if string(lo.LeaderID) == c.name {
				c.lmu.Lock()
				c.leaderSince = time.Now()
				c.nonvoterSince = map[raft.ServerID]time.Time{}
				c.lmu.Unlock()
				c.lastVerified.Store(time.Now().UnixNano())
			}
			c.trigger()
		}
	}
}

func (c *Cluster) trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// announceLoop makes the followers apply a committed change at once. Raft tells them
// what is committed only with the next AppendEntries, which without new entries waits for
// CommitTimeout (0.5-1 s); a barrier entry is replicated right away and carries the
// commit. This lets CommitTimeout stay long: an idle leader then wakes every follower
// once or twice a second for it, besides heartbeats (background work every node pays).
// Bursts of changes share one barrier.
func (c *Cluster) announceLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.commits:
		}
		if c.raft.State() == raft.Leader {
			_ = c.raft.Barrier(c.cfg.RPCTimeout).Error() // best effort: CommitTimeout is the fallback
		}
	}
}

func (c *Cluster) onMemberEvent(ev membership.Event) { c.trigger() }

// fenceLoop keeps the leader's verification fresh and tracks whether this node is
// degraded (out of contact with a leader, see degraded.go).
func (c *Cluster) fenceLoop() {
	defer c.wg.Done()
	t := time.NewTicker(fenceCheck)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		if c.raft.State() == raft.Leader &&
			time.Since(time.Unix(0, c.lastVerified.Load())) > c.cfg.FenceTimeout/4 {
			if err := c.raft.VerifyLeader().Error(); err == nil {
				c.lastVerified.Store(time.Now().UnixNano())
			}
		}
		ok := c.InContact()
		c.contactOK.Store(ok)
		c.updateDegraded(ok)
	}
}

// hclog -> zap adapter.
type zapWriter struct{ log *zap.Logger }

func (w zapWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	// Failures to reach a peer are expected while a node is down; they are
	// reported by membership and the reconcile loop instead.
	if strings.Contains(s, "[ERROR]") && !strings.Contains(s, "failed to") {
		w.log.Warn(s)
	} else {
		w.log.Debug(s)
	}
	return len(p), nil
}

func newHCLog(name, level string, log *zap.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.LevelFromString(level),
		Output: zapWriter{log: log}, DisableTime: true})
}
