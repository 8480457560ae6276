// Package node composes one peer node from the media hub, the RTMP and HTTP ingress
// and (when clustered) membership and placement.
package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"go.uber.org/zap"

	"peer/conf"
	"peer/ingress/limit"
	"peer/ingress/rtmp"
	"peer/ingress/web"
	"peer/media"
	"peer/media/hls"
)

// Version is the node's software version, reported by the API and `peer version`.
var Version = "0.1.0"

// Node is one running peer.
type Node struct {
	cfg    conf.Node
	log    *zap.Logger
	hub    *media.Hub
	limit  *limit.Limiter
	rtmpLn net.Listener
	httpLn net.Listener
	rtmp   *rtmp.Server
	web    *web.Server
}

// New binds the node's listeners; Run serves them.
func New(cfg conf.Node, log *zap.Logger) (*Node, error) {
	mc := media.DefaultConfig()
	if cfg.PlayerQueue > 0 {
		mc.QueueTags = cfg.PlayerQueue
	}
	mc.HLS = hls.Config{Fragment: cfg.HLSFragment, Window: cfg.HLSWindow, Dir: cfg.HLSDir}
	n := &Node{cfg: cfg, log: log, hub: media.NewHub(mc, log), limit: limit.New(cfg.MaxConnections)}
	var err error
	if n.rtmpLn, err = net.Listen("tcp", cfg.RTMP); err != nil {
		return nil, fmt.Errorf("rtmp listen: %w", err)
	}
	if n.httpLn, err = net.Listen("tcp", cfg.HTTP); err != nil {
		n.rtmpLn.Close()
		return nil, fmt.Errorf("http listen: %w", err)
	}
	n.rtmp = &rtmp.Server{Hub: n.hub, Limit: n.limit, Log: log.Named("rtmp"), IOTimeout: cfg.IOTimeout, WriteTimeout: cfg.WriteTimeout}
	n.web = &web.Server{Hub: n.hub, Limit: n.limit, Log: log.Named("http"), Version: Version, NodeName: cfg.Name, WriteTimeout: cfg.WriteTimeout}
	return n, nil
}

// RTMPAddr and HTTPAddr are the bound addresses (useful with port 0).
func (n *Node) RTMPAddr() string { return n.rtmpLn.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (n *Node) HTTPAddr() string { return n.httpLn.Addr().String() }

// Hub is the node's media hub.
func (n *Node) Hub() *media.Hub { return n.hub }

// Run serves until ctx ends, then stops every listener, session and stream.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n.log.Info("node started", zap.String("rtmp", n.RTMPAddr()), zap.String("http", n.HTTPAddr()), zap.String("version", Version))
	var wg sync.WaitGroup
	errs := make(chan error, 3)
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
	run("rtmp", func() error { return n.rtmp.Serve(ctx, n.rtmpLn) })
	run("http", func() error { return n.web.Serve(ctx, n.httpLn) })
	wg.Wait()
	close(errs)
	n.log.Info("node stopped")
	return <-errs
}
