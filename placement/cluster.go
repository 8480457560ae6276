package placement

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/membership"
	"peer/membership/bus"
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
	stable *closingStable // raft's view of bolt as its stable store (stable.go)
	obsCh  chan raft.Observation
	obs    *raft.Observer
	advRaf string
	keyID  string // fingerprint of this node's identity key (gossiped; see tls.go)

	refused  *ratelog.Limiter // refused RPCs, logged at a bounded rate
	rpcConns rpcPool          // idle connections to the leader
	rpcSlots chan struct{}    // RPCs to the leader in flight (rpcCall)

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	kick     chan struct{}
	commits  chan struct{} // apply → announceLoop: tell the followers now
	applying atomic.Int64  // commands in raft.Apply now; announceLoop leaves the announcing to the last
	inflight inflight      // the RPCs' changes being applied, so a retried copy waits for its first
	started  atomic.Bool
	shut     sync.Once

	changes bus.Bus[Change] // FSM and contact changes, to OnChange subscribers

	lastVerified atomic.Int64 // unix nanos of the last successful VerifyLeader (leader)
	contactOK    atomic.Bool
	contact      contactState // degraded mode (degraded.go)

	leaderChanges atomic.Uint64 // leaders seen elected (Stats)
	applyLatency  latency       // this node's applies (Stats)

	// leader-only bookkeeping (reconcile goroutine + leader ops)
	lmu           sync.Mutex
	leaderSince   time.Time
	nonvoterSince map[raft.ServerID]time.Time
	failingSince  map[raft.ServerID]time.Time     // servers whose heartbeats fail: last contact
	resumed       map[raft.ServerID]time.Duration // back from an outage: resetReplication
	// replicationResets counts resetReplication's restarts (tests).
	replicationResets atomic.Uint64
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
	c := &Cluster{cfg: cfg, log: log, refused: ratelog.New(log, 0), kick: make(chan struct{}, 1), commits: make(chan struct{}, 1),
		rpcSlots:      make(chan struct{}, maxRPCInFlight),
		nonvoterSince: map[raft.ServerID]time.Time{}, failingSince: map[raft.ServerID]time.Time{}, resumed: map[raft.ServerID]time.Duration{}}
	return c, nil
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

func (c *Cluster) teardown() {
	if c.cancel != nil {
		c.cancel()
	}
	c.changes.Close()
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
		c.stable.close() // after any heartbeat still saving a term (closingStable)
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
