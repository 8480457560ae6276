// Command peer runs a node of the peer live-streaming cluster.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"peer/conf"
	"peer/node"
)

type cli struct {
	Config kong.ConfigFlag `help:"JSON config file; flags and PEER_* variables override it." env:"PEER_CONFIG"`

	Run     runCmd     `cmd:"" help:"Start a node; it forms a new cluster of one."`
	Join    joinCmd    `cmd:"" help:"Start a node that joins through any member's gossip address."`
	Status  statusCmd  `cmd:"" help:"Print the cluster view."`
	Leave   leaveCmd   `cmd:"" help:"Hand this node's streams off, then leave the cluster."`
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

// serve runs a node until SIGINT/SIGTERM, then gives it 5 s to stop cleanly.
func serve(cfg conf.Node, seeds []string) error {
	if cfg.Procs < 0 {
		return fmt.Errorf("--procs %d: want 0 (every core) or a number of cores", cfg.Procs)
	}
	if cfg.Procs > 0 {
		runtime.GOMAXPROCS(cfg.Procs)
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("shutdown took over 5 s; exiting anyway")
	}
}

type apiFlag struct {
	API string `help:"HTTP address of the node to ask." default:"http://127.0.0.1:8080" env:"PEER_API"`
}

type statusCmd struct{ apiFlag }

func (c *statusCmd) Run() error { return apiCall(http.MethodGet, c.API+"/api/v1/cluster", "") }

type leaveCmd struct {
	apiFlag
	APIToken string `help:"The node's --api-token (admin actions need it unless sent from its own host)." env:"PEER_API_TOKEN"`
}

func (c *leaveCmd) Run() error {
	return apiCall(http.MethodPost, c.API+"/api/v1/cluster/leave", c.APIToken)
}

// apiCall sends one API request, with token as its bearer token when not empty, and
// prints the JSON answer.
func apiCall(method, url, token string) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	var v any
	if json.Unmarshal(body, &v) == nil {
		body, _ = json.MarshalIndent(v, "", "  ")
	}
	fmt.Println(string(body))
	return nil
}

type versionCmd struct{}

func (versionCmd) Run() error { fmt.Println("peer", node.Version); return nil }

func main() {
	var c cli
	ctx := kong.Parse(&c,
		kong.Name("peer"),
		kong.Description("A self-organizing live-streaming cluster: RTMP, HTTP-FLV and HLS from any node."),
		kong.Configuration(kong.JSON),
		kong.Vars{"hostname": conf.Hostname()},
		kong.UsageOnError())
	ctx.FatalIfErrorf(ctx.Run())
}
