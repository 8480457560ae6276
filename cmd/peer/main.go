// Command peer runs a node of the peer live-streaming cluster.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"go.uber.org/zap"

	"peer/conf"
	"peer/node"
)

type cli struct {
	Config kong.ConfigFlag `help:"Config file (YAML with comments, keys are the flag names, plus per-app settings under apps:); flags and PEER_* variables override its node-wide keys, never an app's own." env:"PEER_CONFIG"`

	Run     runCmd     `cmd:"" help:"Start a node; it forms a new cluster of one."`
	Join    joinCmd    `cmd:"" help:"Start a node that joins through any member's gossip address."`
	Status  statusCmd  `cmd:"" help:"Print the cluster view: members, leader, streams and their owners."`
	Streams streamsCmd `cmd:"" help:"Print this node's streams."`
	Clients clientsCmd `cmd:"" help:"Print this node's clients."`
	Kick    kickCmd    `cmd:"" help:"Disconnect one client of the node (admin action)."`
	Leave   leaveCmd   `cmd:"" help:"Hand this node's streams off, then leave the cluster."`
	Recover recoverCmd `cmd:"" help:"After the permanent loss of a majority: make a stopped survivor's data dir a cluster of the survivors (default: of itself alone), keeping its streams."`
	Conf    confCmd    `cmd:"" help:"Check a config file, or import an SRS one."`
	Token   tokenCmd   `cmd:"" help:"Mint a signed ?token= for a publisher or a player."`
	Version versionCmd `cmd:"" help:"Print the version."`
}

type runCmd struct {
	conf.Node `embed:""`
}

func (c *runCmd) Run() error { return serve(c.Node, nil) }

type joinCmd struct {
	Seeds     []string `arg:"" name:"seed" help:"Gossip address (host:port) of any member."`
	conf.Node `embed:""`
}

func (c *joinCmd) Run() error { return serve(c.Node, c.Seeds) }

// drainTimeout bounds the hand-off on a signal, as the API's leave does; systemd's
// TimeoutStopSec (90 s by default) is well above it plus the 5 s of the stop.
const drainTimeout = 20 * time.Second

// serve runs a node until SIGINT/SIGTERM, drains it (--drain-on-stop, the default: a
// systemd stop must not cut the viewers of its streams on other nodes), then gives it
// 5 s to stop cleanly.
func serve(cfg conf.Node, seeds []string) error {
	if cfg.Procs < 0 {
		return fmt.Errorf("--procs %d: want 0 (every core) or a number of cores", cfg.Procs)
	}
	if cfg.Procs > 0 {
		runtime.GOMAXPROCS(cfg.Procs)
	}
	if err := setGCPercent(cfg.GCPercent, os.Getenv("GOGC")); err != nil {
		return err
	}
	log, err := cfg.Logger()
	if err != nil {
		return err
	}
	defer log.Sync()
	raiseFileLimit(log, cfg.MaxConnections)
	n, err := node.New(cfg, log, seeds)
	if err != nil {
		return err
	}
	if j := n.JoinCommand(); j != "" {
		// The generated key has no other place the operator sees it: print the line to
		// copy, as kubeadm and k3s print their join tokens.
		fmt.Printf("This node's cluster key is kept in its data dir. Add nodes to the cluster with:\n\n    %s\n\n", j)
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reopen := make(chan os.Signal, 1)
	signal.Notify(reopen, syscall.SIGHUP, syscall.SIGUSR1) // logrotate, as SRS
	defer signal.Stop(reopen)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if cfg.Pprof != "" {
		if err := servePprof(ctx, log, cfg.Pprof); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	for sig.Err() == nil {
		select {
		case err := <-done:
			return err
		case <-reopen:
			if err := conf.ReopenLogs(); err != nil {
				fmt.Fprintln(os.Stderr, "peer: reopening the log file:", err)
			} else {
				log.Info("log file reopened")
			}
		case <-sig.Done():
		}
	}
	stop() // a second signal kills the process at once (Go's default)
	if cfg.DrainOnStop {
		log.Info("stopping: handing streams off and leaving the cluster (--drain-on-stop; signal again to stop at once)")
		dctx, dcancel := context.WithTimeout(ctx, drainTimeout)
		if err := n.Leave(dctx); err != nil {
			log.Warn("drain before stop", zap.Error(err))
		}
		dcancel()
	}
	cancel()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("shutdown took over 5 s; exiting anyway")
	}
}

// setGCPercent applies --gc-percent unless the environment's GOGC, which the runtime
// read at start, says otherwise.
func setGCPercent(percent int, gogc string) error {
	if percent <= 0 {
		return fmt.Errorf("--gc-percent %d: want a positive percentage", percent)
	}
	if gogc == "" {
		debug.SetGCPercent(percent)
	}
	return nil
}

type apiFlag struct {
	API string `help:"The node to ask: its API URL or host:port (PEER_API, also the node's own --api listener)." default:"http://127.0.0.1:8080" env:"PEER_API"`
}

// url is the API's base URL. PEER_API is shared with `peer run --api`, where it is a
// listen address: host:port means http://host:port.
func (f apiFlag) url() string {
	u := strings.TrimSuffix(f.API, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u
}

type leaveCmd struct {
	apiFlag
	APIToken string `help:"The node's --api-token (admin actions need it unless sent from its own host)." env:"PEER_API_TOKEN"`
}

func (c *leaveCmd) Run() error {
	return printJSON(apiDo(http.MethodPost, c.url()+"/api/v1/cluster/leave", c.APIToken))
}

type versionCmd struct{}

func (versionCmd) Run() error { fmt.Println("peer", node.Version); return nil }

func main() {
	var c cli
	var loader conf.Loader
	ctx := kong.Parse(&c,
		kong.Name("peer"),
		kong.Description("A self-organizing live-streaming cluster: RTMP, HTTP-FLV and HLS from any node."),
		kong.Configuration(loader.Load),
		kong.Vars{"hostname": conf.Hostname()},
		kong.UsageOnError())
	// The file's apps section is no flag: kong leaves it to us.
	c.Run.Apps, c.Join.Apps, c.Token.apps = loader.Apps(), loader.Apps(), loader.Apps()
	ctx.FatalIfErrorf(ctx.Run())
}
