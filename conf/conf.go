// Package conf is a node's configuration: the flags of `peer run`/`peer join`, each also
// settable as PEER_<FLAG> and in a YAML config file (file.go). Every field has an embedded default,
// so a node needs no file to start.
//
// It maps settings onto the layers' configurations, so it may import the media core
// (per-app settings); nothing below it imports conf but node and cmd.
package conf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Node is everything a node needs to start.
type Node struct {
	Name          string        `help:"Unique node name." default:"${hostname}" env:"PEER_NAME"`
	RTMP          string        `help:"RTMP listen address (publish and play)." default:"0.0.0.0:1935" env:"PEER_RTMP"`
	HTTP          string        `help:"HTTP listen address: HTTP-FLV, HLS, and the API and metrics unless --api is given." default:"0.0.0.0:8080" env:"PEER_HTTP"`
	API           string        `help:"Separate listen address (host:port, or http://host:port as peer status takes) for the API and metrics (SRS http_api); empty: they are served on --http." env:"PEER_API"`
	APIToken      string        `help:"Bearer token admin actions (leave, kick) need; without it they are accepted from loopback only." env:"PEER_API_TOKEN"`
	Gossip        string        `help:"Memberlist bind address." default:"0.0.0.0:7946" env:"PEER_GOSSIP"`
	Raft          string        `help:"Raft bind address." default:"0.0.0.0:7947" env:"PEER_RAFT"`
	Advertise     string        `help:"The IP other nodes use to reach this one (derived when empty)." env:"PEER_ADVERTISE"`
	Data          string        `help:"Raft log/snapshots and other state (default ./data/<name>)." env:"PEER_DATA"`
	ClusterKey    string        `help:"Shared secret of the cluster: encrypts gossip, authenticates raft/RPC and node-to-node links. Without it a node whose gossip or raft port is not loopback-only refuses to run keyless: peer run generates a key, keeps it in the data dir and prints the peer join line; peer join refuses to start." env:"PEER_CLUSTER_KEY"`
	Witness       bool          `help:"A Raft voter that carries no media: no RTMP, no players (the HTTP port serves the API only), never given a stream. The third, small machine beside two media hosts, so that either host may die." env:"PEER_WITNESS"`
	Timing        string        `help:"Failure detection and Raft timing profile: lan (a node's death is acted on in about a second) or wan (about 5 s; tolerates slow, lossy links)." default:"lan" enum:"lan,wan" env:"PEER_TIMING"`
	FenceTimeout  time.Duration `help:"A master that hears no Raft leader this long kicks its publishers (0: the profile's, lan 1s, wan 3s). Must stay below failure detection + failover grace: checked at start." env:"PEER_FENCE_TIMEOUT"`
	FailoverGrace time.Duration `help:"How long a node must be reported dead before its streams move (0: derived from the profile and the fence timeout)." env:"PEER_FAILOVER_GRACE"`
	DrainOnStop   bool          `help:"On SIGTERM/SIGINT, do what peer leave does before stopping: hand the streams this node masters to their replicas (relayed publishers re-point, players elsewhere keep playing), then leave the cluster. --no-drain-on-stop stops at once, which the others see as a crash. A second signal stops at once." default:"true" negatable:"" env:"PEER_DRAIN_ON_STOP"`
	Replicas      int           `help:"Slave replicas per stream." default:"2" env:"PEER_REPLICAS"`
	MaxStreams    int           `help:"Streams this node masters before it counts as overloaded and new streams go elsewhere (0: no limit)." default:"0" env:"PEER_MAX_STREAMS"`

	Procs     int    `help:"CPU cores the node runs Go code on at once (GOMAXPROCS, like nginx worker_processes); 0: every core the process may use. Nodes sharing a host each get their share, which keeps the Go scheduler from waking idle cores for every frame." default:"0" env:"PEER_PROCS"`
	GCPercent int    `name:"gc-percent" help:"Heap growth between garbage collections, in percent of the live heap (Go's GOGC, which wins when set). The node's hot path allocates little, so collecting twice as often as Go's 100 costs no CPU measured, while a node's memory is its live heap plus this share: at 50, 1000 players took 13.5 instead of 15.6 KiB each (HTTP-FLV), 20.4 instead of 23.6 (RTMP)." default:"50" env:"PEER_GC_PERCENT"`
	Pprof     string `help:"Serve Go's profiler (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060, to see where a running node's CPU and memory go (empty: off; other addresses are refused)." env:"PEER_PPROF"`

	LogLevel  string `help:"debug, info, warn or error." default:"info" env:"PEER_LOG_LEVEL"`
	LogFormat string `help:"console or json." default:"console" enum:"console,json" env:"PEER_LOG_FORMAT"`
	LogFile   string `help:"Log to this file instead of stderr; SIGHUP or SIGUSR1 reopens it (logrotate)." env:"PEER_LOG_FILE"`

	MaxConnections int           `help:"Client media sessions allowed at once across RTMP and HTTP (SRS max_connections); the API has its own budget." default:"1000" env:"PEER_MAX_CONNECTIONS"`
	MaxWaiting     int           `help:"Players that may wait at once for streams no node publishes (RTMP, HTTP-FLV); past it they are refused (0: no limit)." default:"256" env:"PEER_MAX_WAITING"`
	MaxHTTPIdle    int           `help:"HTTP connections kept per listener without a request in progress (new, keep-alive, slow); past it the longest idle one is closed." default:"1024" env:"PEER_MAX_HTTP_IDLE"`
	MaxPlayers     int           `help:"Players this node serves before it redirects new HTTP players to another node of the stream (0: no limit)." default:"0" env:"PEER_MAX_PLAYERS"`
	HLSFragment    time.Duration `help:"Target HLS segment duration (SRS hls_fragment)." default:"2s" env:"PEER_HLS_FRAGMENT"`
	HLSWindow      int           `help:"Segments in the live HLS playlist (SRS hls_window)." default:"6" env:"PEER_HLS_WINDOW"`
	HLSDir         string        `help:"Also write HLS segments to this directory." env:"PEER_HLS_DIR"`
	HLSAlways      bool          `help:"Package HLS for every stream this node carries. By default a stream's master always packages it and other nodes only while HLS players ask for it there (and always with --hls-dir)." env:"PEER_HLS_ALWAYS"`
	PlayerQueue    int           `help:"Tags a player may lag behind before it skips to the next keyframe." default:"1024" env:"PEER_PLAYER_QUEUE"`
	GOPCacheTime   time.Duration `help:"Longest GOP kept for players' fast start: a longer one is dropped until the next keyframe (an audio-only stream keeps its last 2 s of audio, at most this)." default:"30s" env:"PEER_GOP_CACHE_TIME"`
	MergeWrite     time.Duration `help:"Gather this much media per write to a player (SRS mw_latency): fewer, larger writes for big audiences, at the price of that much latency (0: every video frame; an overloaded stream merges up to 350 ms on its own)." default:"0s" env:"PEER_MERGE_WRITE"`
	Pull           string        `help:"Where a stream nobody publishes is pulled from when a player asks for it (nginx-rtmp pull, SRS ingest): an http(s):// HTTP-FLV or rtmp:// URL in which {app} and {stream} stand for the player's, e.g. http://upstream:8080/{app}/{stream}.flv; usually set per app in the config file's apps: section. The node the player reached publishes it as a user's publish would be." env:"PEER_PULL"`
	PullIdle       time.Duration `help:"A pulled stream (--pull) that has had no players this long stops being pulled." default:"30s" env:"PEER_PULL_IDLE"`
	IOTimeout      time.Duration `help:"Longest silence from a publisher or a client in its command phase." default:"20s" env:"PEER_IO_TIMEOUT"`
	WriteTimeout   time.Duration `help:"Longest a write to a client may block." default:"10s" env:"PEER_WRITE_TIMEOUT"`

	MaxNodeStreams    int `help:"Streams this node holds at once, of every kind: published, relayed, forwarded, pulled, or awaited by players. Past it new ones are refused (0: no limit)." default:"1000" env:"PEER_MAX_NODE_STREAMS"`
	MaxPublishesPerIP int `help:"Streams one client IP may publish to this node at once, loopback included (cluster links are not counted; 0: no limit)." default:"10" env:"PEER_MAX_PUBLISHES_PER_IP"`

	Admission `embed:""`

	// Apps is the config file's per-app settings (no flag carries them; cmd/peer fills
	// it from conf.Loader). ForApp applies them.
	Apps map[string]AppSettings `kong:"-"`
}

// Admission is who may publish and play at this node: signed tokens and SRS-compatible
// HTTP hooks, checked once per client at the node the client reached.
type Admission struct {
	TokenPublishKey string        `help:"Publishers must carry ?token= signed with this key (peer token publish)." env:"PEER_TOKEN_PUBLISH_KEY"`
	TokenPlayKey    string        `help:"Players must carry ?token= signed with this key (peer token play)." env:"PEER_TOKEN_PLAY_KEY"`
	OnConnect       []string      `help:"SRS on_connect hook URLs (RTMP connect)." env:"PEER_ON_CONNECT"`
	OnPublish       []string      `help:"SRS on_publish hook URLs; a publish is allowed only if each answers HTTP 200 with 0 or {\"code\":0}." env:"PEER_ON_PUBLISH"`
	OnUnpublish     []string      `help:"SRS on_unpublish hook URLs." env:"PEER_ON_UNPUBLISH"`
	OnPlay          []string      `help:"SRS on_play hook URLs; a play is allowed only if each allows it." env:"PEER_ON_PLAY"`
	OnStop          []string      `help:"SRS on_stop hook URLs." env:"PEER_ON_STOP"`
	OnHLS           []string      `help:"SRS on_hls hook URLs, called by a stream's master for each finished segment." env:"PEER_ON_HLS"`
	HookTimeout     time.Duration `help:"Longest a hook may take to answer; no answer refuses." default:"5s" env:"PEER_HOOK_TIMEOUT"`
}

// APIAddr is the --api listen address without the http:// a URL may carry.
func (n *Node) APIAddr() string {
	return strings.TrimSuffix(strings.TrimPrefix(n.API, "http://"), "/")
}

// DataDir is where the node keeps its state.
func (n *Node) DataDir() string {
	if n.Data != "" {
		return n.Data
	}
	return "./data/" + n.Name
}

// Hostname is the default node name.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "peer"
	}
	return h
}

// Logger builds the zap logger the flags ask for.
func (n *Node) Logger() (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(n.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Encoding = n.LogFormat
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	if n.LogFormat == "console" {
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	cfg.OutputPaths = []string{"stderr"}
	if n.LogFile != "" {
		path, err := filepath.Abs(n.LogFile)
		if err != nil {
			return nil, err
		}
		cfg.OutputPaths = []string{logURL(path)}
	}
	log, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return log.With(zap.String("node", n.Name)), nil
}

// Defaults is a Node with every default filled in, read from the same struct tags the
// CLI uses so there is one source of truth.
func Defaults() Node {
	var holder struct {
		Node `embed:""`
	}
	parser, err := kong.New(&holder, kong.Vars{"hostname": Hostname()}, kong.Exit(func(int) {}))
	if err == nil {
		_, err = parser.Parse(nil)
	}
	if err != nil {
		panic("conf: defaults do not parse: " + err.Error())
	}
	return holder.Node
}
