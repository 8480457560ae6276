package placement

import (
	"net"
	"time"

	"github.com/hashicorp/memberlist"

	"peer/membership"
)

// Config of a Cluster node. Zero values get the loopback/LAN defaults below.
type Config struct {
	Name    string // stable node name = raft server ID; default: the one stored in DataDir
	DataDir string // raft log (bolt), snapshots, node-id; required unless InMemory

	GossipAddr      string // memberlist bind host:port
	GossipAdvertise string // optional
	RaftAddr        string // raft + control RPC bind host:port
	RaftAdvertise   string // optional; default: bind address (0.0.0.0 -> 127.0.0.1)
	RTMPAddr        string // advertised to others, informational
	HTTPAddr        string
	Version         string

	ClusterKey string // gossip encryption + transport/RPC authentication
	Bootstrap  bool   // `peer run`: form a cluster of one if there is no raft state

	Replicas  int // slave replicas per stream (0: none; the CLI's default is 2)
	MaxVoters int // default 5
	MinQuorum int // never remove a failed voter below this many healthy voters (default 3)
	// MaxStreams is this node's own limit, gossiped from its first announcement on (the
	// node may lower or raise it later through its load).
	MaxStreams int
	// Witness makes this node a voter that carries no media: placement never gives it a
	// stream (gossiped, so every leader knows).
	Witness bool
	// Overloaded overrides the overload test (default: CPU >= 0.9 or the node's gossiped
	// MaxStreams reached).
	Overloaded func(m membership.Member, mastered int) bool

	Gossip membership.Timing // zero = membership.FastLAN()

	// Raft timings. Defaults 300/300/150 ms (LIBRARIES.md §4: new leader in
	// 0.37–0.84 s on loopback). Raise for real networks (1 s/1 s/500 ms).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout: an idle leader's AppendEntries period (default 500 ms; raft's is
	// 50 ms). Followers do not wait for it to learn a change (see announceLoop), and
	// heartbeats, not these, tell them the leader lives.
	CommitTimeout time.Duration
	// AnnounceLinger: how long the leader waits after a commit for the next change
	// before it announces the commit with a barrier entry of its own (default 20 ms:
	// publishes ramped at 100 a second, 1,000 streams on 5 nodes, still took a barrier
	// each at 2 ms; a lone change reaches the followers 20 ms later).
	// A change that starts within it carries the commit to the followers, so changes
	// in a row cost one entry each and their run one barrier.
	AnnounceLinger time.Duration

	// FailoverGrace: how long memberlist must report a node dead before its
	// streams are moved. Default: what keeps the fencing constraint with a margin
	// (FenceTimeout + fence check + 100 ms - the fastest detection), at least 500 ms:
	// 700 ms with the default timings (detection itself takes 0.5 s at the fastest,
	// ~0.7 s usually).
	FailoverGrace time.Duration
	// DeadServerGrace: how long a node must be dead before it is removed
	// from the raft configuration (default 2 s).
	DeadServerGrace time.Duration
	// PromoteAfter: a nonvoter must have been in the configuration this long
	// before it is promoted (default 500 ms).
	PromoteAfter time.Duration
	// ReconcileInterval of the leader loop (default 200 ms).
	ReconcileInterval time.Duration
	// FenceTimeout: a node that has not heard from a leader for this long is
	// degraded (Degraded, degraded.go): it no longer counts as in contact with a
	// leader (InContact returns false, its view says "degraded"), its new publishes
	// stay local, and it keeps serving what it has until a leader is back.
	// FenceTimeout plus the fence check period must stay below the fastest failover
	// (Gossip.MinDetection() + FailoverGrace), so that a cut-off master has left the
	// leader-connected side before its streams can get another master there: New
	// refuses a config that breaks it (default 1 s; it must exceed a leader
	// election, or every node turns degraded on each failover).
	FenceTimeout time.Duration
	// RPCTimeout for one forwarded request (default 3 s).
	RPCTimeout time.Duration

	// InMemory uses in-memory raft stores (simulation/tests only: identity
	// is not preserved across restarts).
	InMemory bool
	// NoSync disables fsync of the bolt log (tests).
	NoSync bool
	// RaftLogLevel for raft's own logger routed to zap (default "warn").
	RaftLogLevel string
	// Network, when set, stands between this node and the network (tests inject faults
	// through it); nil in production.
	Network Network
	// Protocol, when set, is the placement protocol range this node announces instead
	// of its own (tests play a newer or older release with it); zero in production.
	Protocol membership.Protocol
}

// Network wraps a node's sockets: the raft port's listener and outgoing connections,
// and the gossip transport.
type Network interface {
	Listener(net.Listener) net.Listener
	Dial(addr string, timeout time.Duration) (net.Conn, error)
	Gossip(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = 5
	}
	if c.MaxVoters%2 == 0 {
		c.MaxVoters--
	}
	if c.MinQuorum == 0 {
		c.MinQuorum = 3
	}
	if c.Gossip.ProbeInterval == 0 {
		c.Gossip = membership.FastLAN()
	}
	def(&c.HeartbeatTimeout, 300*time.Millisecond)
	def(&c.ElectionTimeout, 300*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 150*time.Millisecond)
	def(&c.CommitTimeout, 500*time.Millisecond)
	def(&c.AnnounceLinger, 20*time.Millisecond)
	def(&c.FenceTimeout, time.Second)
	def(&c.FailoverGrace, max(500*time.Millisecond, c.FenceTimeout+fenceCheck+fenceMargin-c.Gossip.MinDetection()))
	def(&c.DeadServerGrace, 2*time.Second)
	def(&c.PromoteAfter, 500*time.Millisecond)
	def(&c.ReconcileInterval, 200*time.Millisecond)
	def(&c.RPCTimeout, 3*time.Second)
	if c.RaftLogLevel == "" {
		c.RaftLogLevel = "warn"
	}
	if c.Protocol == (membership.Protocol{}) {
		c.Protocol = builtinProtocol
	}
}
