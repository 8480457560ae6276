// Package node composes one peer node from the media hub, the RTMP and HTTP ingress
// and (when clustered) membership and placement.
//
// It is the composition root: the only package that imports all the others
// (TestLayout checks the layers below it).
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"go.uber.org/zap"

	"peer/conf"
	"peer/ingress/admit"
	"peer/ingress/console"
	"peer/ingress/limit"
	"peer/ingress/rtmp"
	"peer/ingress/web"
	"peer/media"
	"peer/media/hls"
	"peer/membership"
	"peer/placement"
	"peer/placement/dataplane"
)

// Version is the node's software version, reported by the API and `peer version`.
var Version = "0.1.0"

// Node is one running peer.
type Node struct {
	cfg      conf.Node
	log      *zap.Logger
	seeds    []string
	hub      *media.Hub
	relayHub *media.Hub
	limit    *limit.Limiter
	rtmpLn   net.Listener
	httpLn   net.Listener
	apiLn    net.Listener // nil: the API is served on httpLn
	rtmp     *rtmp.Server
	web      *web.Server
	cluster  *placement.Cluster
	router   *dataplane.Router
	admit    *admit.Admission // nil without tokens or hooks
	events   *console.Events  // recent cluster events, for the console
	leave    chan struct{}    // closed by `peer leave`: hand off, then stop
	leaveOne sync.Once
	keySrc   keySource
}

// New binds the node's listeners; Run serves them. With no seeds the node forms a
// cluster of one (`peer run`), otherwise it joins through them (`peer join`).
func New(cfg conf.Node, log *zap.Logger, seeds []string) (*Node, error) {
	key, src, err := clusterKey(cfg, len(seeds) > 0)
	if err != nil {
		return nil, err
	}
	cfg.ClusterKey = key
	mc := media.DefaultConfig()
	streamSettings(&mc, cfg)
	// One budget for both hubs: a relayed publish counts on this node like any other.
	mc.Budget = &media.Budget{MaxStreams: cfg.MaxNodeStreams, MaxPublishesPerIP: cfg.MaxPublishesPerIP}
	adm := newAdmission(cfg, log.Named("admit"))
	mc.Packagers = []media.NewPackager{hlsPackaging(cfg, adm, log).New}
	if len(cfg.Apps) > 0 {
		mc.ForApp = func(app string, c *media.Config) { streamSettings(c, cfg.ForApp(app)) }
	}
	relay := mc
	relay.Packagers = nil // a relay's private copy is packaged by the master
	relay.MergeWrite = 0  // a relay's only players are its links to the master
	if len(cfg.Apps) > 0 {
		relay.ForApp = func(app string, c *media.Config) { streamSettings(c, cfg.ForApp(app)); c.MergeWrite = 0 }
	}
	n := &Node{cfg: cfg, log: log, seeds: seeds, relayHub: media.NewHub(relay, log.Named("relay")),
		limit: limit.New(cfg.MaxConnections).WithLog("max_connections", log), events: console.NewEvents(eventsKept), leave: make(chan struct{}), keySrc: src}
	// Players of streams nobody publishes are resolved against the cluster view.
	mc.Placed = func(app, name string) bool { return n.router.Placed(app, name) }
	mc.MaxWaiting = cfg.MaxWaiting
	n.hub = media.NewHub(mc, log)
	if err := n.listen(); err != nil {
		return nil, err
	}
	pc := placement.Config{
		Name: cfg.Name, DataDir: cfg.DataDir(), Version: Version, ClusterKey: cfg.ClusterKey, Bootstrap: len(seeds) == 0,
		GossipAddr: cfg.Gossip, GossipAdvertise: advertise(cfg.Gossip, cfg.Advertise),
		RaftAddr: cfg.Raft, RaftAdvertise: advertise(cfg.Raft, cfg.Advertise),
		RTMPAddr: advertise(n.RTMPAddr(), cfg.Advertise), HTTPAddr: advertise(n.HTTPAddr(), cfg.Advertise),
		Replicas: cfg.Replicas, MaxStreams: cfg.MaxStreams, Witness: cfg.Witness,
		FenceTimeout: cfg.FenceTimeout, FailoverGrace: cfg.FailoverGrace,
	}
	timingProfile(&pc, cfg.Timing)
	n.cluster, err = placement.New(pc, log.Named("cluster"))
	if err != nil {
		n.closeListeners()
		return nil, err
	}
	n.router = &dataplane.Router{Hub: n.hub, RelayHub: n.relayHub, Cluster: n.cluster, Key: cfg.ClusterKey, MaxPlayers: cfg.MaxPlayers, Log: log.Named("route"),
		Pull: func(app string) dataplane.PullConfig {
			c := cfg.ForApp(app)
			return dataplane.PullConfig{URL: c.Pull, Idle: c.PullIdle, Silence: cfg.IOTimeout}
		}}
	n.admit = adm
	n.rtmp = &rtmp.Server{Hub: n.hub, Router: n.router, Admit: adm, Limit: n.limit, Log: log.Named("rtmp"), IOTimeout: cfg.IOTimeout, WriteTimeout: cfg.WriteTimeout}
	n.web = &web.Server{Hub: n.hub, Router: n.router, Admit: adm, Limit: n.limit, Log: log.Named("http"), Version: Version, NodeName: cfg.Name,
		WriteTimeout: cfg.WriteTimeout, APIToken: cfg.APIToken, MaxIdle: cfg.MaxHTTPIdle,
		Cluster: func() any { return n.clusterView() }, Leave: n.Leave,
		Placement: n.cluster.Stats, Links: n.router.LinkStats,
		Console: console.Handler(), Events: func() any { return n.events.List() }}
	return n, nil
}

// listen binds the RTMP, HTTP and (with --api) API listeners; a witness binds no RTMP.
func (n *Node) listen() error {
	var err error
	if !n.cfg.Witness {
		if n.rtmpLn, err = net.Listen("tcp", n.cfg.RTMP); err != nil {
			return fmt.Errorf("rtmp listen: %w", err)
		}
	}
	if n.httpLn, err = net.Listen("tcp", n.cfg.HTTP); err != nil {
		n.closeListeners()
		return fmt.Errorf("http listen: %w", err)
	}
	if addr := n.cfg.APIAddr(); addr != "" {
		if n.apiLn, err = net.Listen("tcp", addr); err != nil {
			n.closeListeners()
			return fmt.Errorf("api listen: %w", err)
		}
	}
	return nil
}

func (n *Node) closeListeners() {
	for _, ln := range []net.Listener{n.rtmpLn, n.httpLn, n.apiLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// streamSettings sets what may differ per app (--player-queue, --merge-write,
// --gop-cache-time) from cfg, the node's or an app's.
func streamSettings(mc *media.Config, cfg conf.Node) {
	if cfg.PlayerQueue > 0 {
		mc.QueueTags = cfg.PlayerQueue
	}
	mc.MergeWrite = cfg.MergeWrite
	mc.GOPMaxTime = cfg.GOPCacheTime
}

// hlsPackaging is how the node's streams are packaged as HLS: --hls-fragment and
// --hls-window (per app too), --hls-dir, --hls-always, and on_hls (adm, may be nil).
func hlsPackaging(cfg conf.Node, adm *admit.Admission, log *zap.Logger) hls.Packaging {
	pk := hls.DefaultPackaging()
	pk.Log = log
	pk.Muxer.Fragment, pk.Muxer.Window = cfg.HLSFragment, cfg.HLSWindow
	if len(cfg.Apps) > 0 {
		pk.ForApp = func(app string, c *hls.Config) {
			a := cfg.ForApp(app)
			c.Fragment, c.Window = a.HLSFragment, a.HLSWindow
		}
	}
	pk.Dir = cfg.HLSDir
	if adm != nil {
		pk.OnSegment = func(app, name string, seq uint64, uri string, dur time.Duration) {
			adm.HLS(admit.Client{App: app, Stream: name}, admit.Segment{Duration: dur.Seconds(), SeqNo: seq,
				File: app + "/" + uri, URL: "/" + app + "/" + uri, M3U8: "/" + app + "/" + name + ".m3u8"})
		}
	}
	if cfg.HLSAlways || cfg.HLSDir != "" {
		pk.Idle = 0 // files in HLSDir are read by other programs: no requests to see
	}
	return pk
}

// timingProfile sets failure detection and Raft timings for a profile: lan keeps
// placement's defaults (measured on loopback and LANs: a dead node is acted on in about a
// second), wan takes memberlist's LAN timings and raft's own defaults, with a fence that
// outlasts their slower elections. Values left zero are derived by placement, which
// refuses a combination where a promotion could beat the fence.
func timingProfile(pc *placement.Config, profile string) {
	if profile != "wan" {
		return
	}
	pc.Gossip = membership.LAN()
	pc.HeartbeatTimeout, pc.ElectionTimeout, pc.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	if pc.FenceTimeout == 0 {
		pc.FenceTimeout = 3 * time.Second
	}
}

// newAdmission builds the tokens and SRS hooks a node checks its clients with, the
// node's and each app's; nil when none are configured.
func newAdmission(cfg conf.Node, log *zap.Logger) *admit.Admission {
	ac := admissionConfig(cfg.Admission)
	ac.ServerID = cfg.Name
	ac.Apps = make(map[string]admit.Config, len(cfg.Apps))
	for app := range cfg.Apps {
		ac.Apps[app] = admissionConfig(cfg.ForApp(app).Admission)
	}
	return admit.New(ac, log)
}

func admissionConfig(a conf.Admission) admit.Config {
	return admit.Config{
		Hooks: admit.Hooks{OnConnect: a.OnConnect, OnPublish: a.OnPublish, OnUnpublish: a.OnUnpublish,
			OnPlay: a.OnPlay, OnStop: a.OnStop, OnHLS: a.OnHLS},
		HookTimeout: a.HookTimeout, PublishKey: []byte(a.TokenPublishKey), PlayKey: []byte(a.TokenPlayKey),
	}
}

// advertise turns a bind address into one other nodes can reach (membership.Advertise):
// the --advertise IP if given, the bind IP if specific, else this host's private IP.
func advertise(bind, ip string) string {
	priv, _ := sockaddr.GetPrivateIP()
	return membership.Advertise(ip, bind, priv)
}

// JoinCommand is the command that adds a node to this node's cluster, when this node's
// key was generated (now or by an earlier start) rather than given: the operator has no
// other place to read it from, as with kubeadm's and k3s's join tokens. Empty otherwise.
func (n *Node) JoinCommand() string { return n.joinCommand(advertise(n.cfg.Gossip, n.cfg.Advertise)) }

func (n *Node) joinCommand(gossip string) string {
	if n.keySrc != keyGenerated && n.keySrc != keyStored {
		return ""
	}
	return "peer join " + gossip + " --cluster-key " + n.cfg.ClusterKey
}

// Leave hands this node's streams off, leaves the cluster and then stops the node.
func (n *Node) Leave(ctx context.Context) error {
	err := n.cluster.Leave(ctx)
	n.leaveOne.Do(func() { close(n.leave) })
	return err
}

// RTMPAddr and HTTPAddr are the bound addresses (useful with port 0).
func (n *Node) RTMPAddr() string {
	if n.rtmpLn == nil {
		return "" // a witness
	}
	return n.rtmpLn.Addr().String()
}

// HTTPAddr is the bound HTTP address.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// APIAddr is the bound API address: HTTPAddr unless --api gave the API its own.
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return n.HTTPAddr()
	}
	return n.apiLn.Addr().String()
}

// Hub is the node's media hub.
func (n *Node) Hub() *media.Hub { return n.hub }

// Run serves until ctx ends (or the node left the cluster), then stops every listener,
// session and stream.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := n.cluster.Start(ctx); err != nil {
		n.closeListeners()
		return fmt.Errorf("cluster: %w", err)
	}
	security := "cluster key: gossip encrypted, raft/RPC over TLS, links signed"
	if n.keySrc == keyNone {
		security = "KEYLESS: gossip and raft bind loopback only; anyone on this host can join or control the cluster"
	}
	n.log.Info("node started", zap.String("rtmp", n.RTMPAddr()), zap.String("http", n.HTTPAddr()), zap.String("api", n.APIAddr()),
		zap.String("gossip", n.cluster.GossipAddr()), zap.String("raft", n.cluster.RaftAddr()), zap.Int("procs", runtime.GOMAXPROCS(0)),
		zap.String("version", Version), zap.String("security", security), zap.String("timing", n.cfg.Timing))
	if j := n.joinCommand(n.cluster.GossipAddr()); j != "" {
		where := "generated a cluster key"
		if n.keySrc == keyStored {
			where = "using the cluster key generated at the first start"
		}
		n.log.Info(where+" (kept in "+filepath.Join(n.cfg.DataDir(), keyFile)+"); add nodes with: "+j, zap.String("join", j))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 7)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("hub", func() error { n.hub.Run(ctx); return nil })
	run("relay hub", func() error { n.relayHub.Run(ctx); return nil })
	run("router", func() error { n.router.Run(ctx); return nil })
	run("cluster", func() error { return n.joinAndReport(ctx) })
	run("events", func() error { n.watchEvents(ctx); return nil })
	go func() {
		select {
		case <-n.leave:
			cancel()
		case <-ctx.Done():
		}
	}()
	if n.cfg.Witness { // the API (and console) only, on the HTTP port
		run("http", func() error { return n.web.Serve(ctx, nil, n.httpLn) })
	} else {
		run("rtmp", func() error { return n.rtmp.Serve(ctx, n.rtmpLn) })
		run("http", func() error { return n.web.Serve(ctx, n.httpLn, n.apiLn) })
	}
	wg.Wait()
	n.admit.Close() // hook notifications in flight, each bounded by --hook-timeout
	close(errs)
	n.log.Info("node stopped")
	return <-errs
}

// joinAndReport joins the seeds (retrying with backoff until one answers), then gossips
// this node's load until ctx ends. A seed that refuses this node's key (or lack of one)
// stops the node: retrying cannot help, and the operator must be told.
func (n *Node) joinAndReport(ctx context.Context) error {
	cpu := newCPUMeter()
	report := func() {
		streams, clients := n.hub.Snapshot()
		var kbps float64
		for _, s := range streams {
			kbps += s.KbpsOut
		}
		n.cluster.SetLoad(membership.Load{Streams: len(streams), Players: len(clients) - len(streams),
			EgressMbps: kbps / 1000, CPU: cpu.sample(), MaxStreams: n.cfg.MaxStreams})
	}
	report()
	backoff := 200 * time.Millisecond
	for len(n.seeds) > 0 {
		err := n.cluster.Join(n.seeds)
		if err == nil {
			n.log.Info("joined the cluster", zap.Strings("seeds", n.seeds))
			break
		}
		if errors.Is(err, membership.ErrIncompatible) {
			// A node too new or too old for the cluster's replicated commands: joining
			// would make its state diverge (see placement's protocol).
			return fmt.Errorf("this node (peer %s) cannot join the cluster at %s: %w", Version, strings.Join(n.seeds, ", "), err)
		}
		if errors.Is(err, membership.ErrKeyMismatch) {
			seeds := strings.Join(n.seeds, ", ")
			if n.keySrc == keyNone {
				return fmt.Errorf("the cluster at %s needs --cluster-key (printed by the first node's start): %w", seeds, err)
			}
			return fmt.Errorf("the cluster at %s refused this node's cluster key (it has another one, or none): %w", seeds, err)
		}
		n.log.Warn("join failed; retrying", zap.Strings("seeds", n.seeds), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			report()
		}
	}
}

// cpuMeter measures this process's CPU use as a fraction of the machine's cores.
type cpuMeter struct {
	last time.Time
	used time.Duration
}

func newCPUMeter() *cpuMeter { return &cpuMeter{last: time.Now(), used: processCPU()} }

// sample returns the CPU share since the last sample; over less than half a second
// (the first report at start-up) it says 0 rather than a meaningless ratio, which
// would make placement treat a starting node as overloaded.
func (c *cpuMeter) sample() float64 {
	now, used := time.Now(), processCPU()
	wall := now.Sub(c.last)
	if wall < 500*time.Millisecond {
		return 0
	}
	frac := float64(used-c.used) / float64(wall) / float64(runtime.NumCPU())
	c.last, c.used = now, used
	return frac
}

// processCPU is user+system time of this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
