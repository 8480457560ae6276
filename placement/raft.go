package placement

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"peer/membership"
)

// Start brings the node up in named steps: identity and certificate, the raft port,
// the raft stores, raft itself, gossip and the background loops. Cancelling ctx shuts
// the node down (like Shutdown).
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
	if c.name, err = c.loadIdentity(); err != nil {
		return err
	}
	serverTLS, clientTLS, err := c.loadCertificate()
	if err != nil {
		return err
	}
	hl := newHCLog("raft", c.cfg.RaftLogLevel, c.log.Named("raft"))
	if err := c.listenRaft(serverTLS, clientTLS, hl); err != nil {
		return err
	}
	logs, stable, snaps, err := c.stores(hl)
	if err != nil {
		return err
	}
	bootstrap, err := c.startRaft(logs, stable, snaps, hl)
	if err != nil {
		return err
	}
	if err := c.startGossip(); err != nil {
		return err
	}
	c.startLoops(ctx)
	c.log.Info("placement node started", zap.String("raft", c.advRaf), zap.String("gossip", c.mem.Addr()),
		zap.Bool("bootstrap", bootstrap))
	return nil
}

// listenRaft binds the raft port, works out the address it advertises and puts the
// multiplexing TLS layer and raft's network transport on it.
func (c *Cluster) listenRaft(serverTLS, clientTLS *tls.Config, hl hclog.Logger) error {
	ln, err := net.Listen("tcp", c.cfg.RaftAddr)
	if err != nil {
		return fmt.Errorf("placement: raft listen: %w", err)
	}
	advAddr, err := net.ResolveTCPAddr("tcp", membership.Advertise(c.cfg.RaftAdvertise, ln.Addr().String(), c.cfg.GossipAdvertise))
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("placement: raft advertise: %w", err)
	}
	c.advRaf = advAddr.String()
	var dial func(string, time.Duration) (net.Conn, error)
	if n := c.cfg.Network; n != nil {
		ln, dial = n.Listener(ln), n.Dial
	}
	c.layer = newMuxLayer(ln, advAddr, serverTLS, clientTLS, c.log.Named("transport"), c.serveRPC, dial)
	c.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: c.layer, MaxPool: 3, Timeout: 2 * time.Second, Logger: hl,
	})
	return nil
}

// stores opens the raft log, stable store and snapshots: in memory, or the bolt log
// and snapshot files under DataDir/raft (openStores).
func (c *Cluster) stores(hl hclog.Logger) (raft.LogStore, raft.StableStore, raft.SnapshotStore, error) {
	if c.cfg.InMemory {
		s := raft.NewInmemStore()
		return s, s, raft.NewInmemSnapshotStore(), nil
	}
	var (
		snaps raft.SnapshotStore
		err   error
	)
	if c.bolt, snaps, err = openStores(c.cfg.DataDir, c.cfg.NoSync, hl); err != nil {
		return nil, nil, nil, err
	}
	c.stable = &closingStable{StableStore: c.bolt}
	return c.bolt, c.stable, snaps, nil
}

// raftConfig is raft's configuration from ours.
func (c *Cluster) raftConfig(hl hclog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.name)
	rc.HeartbeatTimeout = c.cfg.HeartbeatTimeout
	rc.ElectionTimeout = c.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = c.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = c.cfg.CommitTimeout
	rc.ShutdownOnRemove = false
	rc.SnapshotThreshold = 4096
	rc.SnapshotInterval = 30 * time.Second
	rc.TrailingLogs = 4096
	rc.Logger = hl
	return rc
}

// startRaft starts raft on the FSM, bootstraps a cluster of one when asked to and there
// is no raft state yet (it says whether it did), and observes leader changes.
func (c *Cluster) startRaft(logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, hl hclog.Logger) (bool, error) {
	c.fsm = newFSM(c.enqueue, c.log)
	bootstrap := false
	if c.cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, stable, snaps)
		if err != nil {
			return false, err
		}
		bootstrap = !has
	}
	var err error
	c.raft, err = raft.NewRaft(c.raftConfig(hl), c.fsm, logs, stable, snaps, c.trans)
	if err != nil {
		return false, fmt.Errorf("placement: raft: %w", err)
	}
	if bootstrap {
		f := c.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: raft.ServerID(c.name), Address: raft.ServerAddress(c.advRaf)}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return false, fmt.Errorf("placement: bootstrap: %w", err)
		}
		c.log.Info("bootstrapped a new cluster of one")
	}
	c.obsCh = make(chan raft.Observation, 16)
	c.obs = raft.NewObserver(c.obsCh, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	c.raft.RegisterObserver(c.obs)
	return bootstrap, nil
}

// startGossip joins nothing yet: it starts this node's gossip member, announcing its
// addresses, identity key, limits and incarnation.
func (c *Cluster) startGossip() error {
	// The incarnation survives restarts in the data dir: a start after the clock went
	// back still beats the last one (in-memory nodes use the wall clock).
	var incarnation int64
	if c.cfg.DataDir != "" {
		var err error
		if incarnation, err = membership.NextIncarnation(c.cfg.DataDir); err != nil {
			return err
		}
	}
	var err error
	c.mem, err = membership.New(membership.Config{
		Name: c.name, BindAddr: c.cfg.GossipAddr, AdvertiseAddr: c.cfg.GossipAdvertise,
		ClusterKey: c.cfg.ClusterKey, Timing: c.cfg.Gossip, Trust: c.trusted, Transport: gossipTransport(c.cfg.Network),
		Meta: membership.Meta{RTMP: c.cfg.RTMPAddr, HTTP: c.cfg.HTTPAddr, Raft: c.advRaf, Version: c.cfg.Version,
			Key: c.keyID, Load: membership.Load{MaxStreams: c.cfg.MaxStreams}, Incarnation: incarnation, Witness: c.cfg.Witness,
			ProtoMin: c.cfg.Protocol.Min, ProtoMax: c.cfg.Protocol.Max},
	}, c.log)
	if err != nil {
		return err
	}
	c.mem.Subscribe(c.onMemberEvent)
	return nil
}

// startLoops starts the background loops: leader observation, the leader's reconcile
// loop, fencing and commit announcements; and, with ctx, the shutdown when it ends.
func (c *Cluster) startLoops(ctx context.Context) {
	c.wg.Add(4)
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

// gossipTransport is n's wrapper of the gossip transport (nil without n).
func gossipTransport(n Network) func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
	if n == nil {
		return nil
	}
	return n.Gossip
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
