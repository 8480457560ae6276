// Package web is a node's HTTP side: HTTP-FLV and HLS for players, the SRS-style JSON
// API and Prometheus metrics.
package web

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/ingress/console"
	"peer/ingress/limit"
	"peer/media"
)

// Server serves one node's HTTP port.
type Server struct {
	Hub          *media.Hub
	Router       Router
	Limit        *limit.Limiter
	Log          *zap.Logger
	Version      string
	NodeName     string
	WriteTimeout time.Duration // longest a write to a player may block
	// Cluster, when set, answers /api/v1/cluster.
	Cluster func() any
	// Leave, when set, serves POST /api/v1/cluster/leave (`peer leave`).
	Leave func(context.Context) error
	// Console, when set, serves the web console under /console/ (and "/" redirects there).
	Console http.Handler
	// Events, when set, answers GET /api/v1/events: the node's recent cluster events.
	Events func() any

	hls      hlsViewers       // HLS players per stream, for /api/v1/streams
	refusals *ratelog.Limiter // refused admin actions, logged at most every 10 s

	started time.Time
	ctx     context.Context // Serve's: ends the players' connections
	wg      sync.WaitGroup
}

// Router readies the node to serve a stream it may not hold (package route).
type Router interface {
	Play(app, name, query string) (internal bool, err error)
	// Redirect names another node's HTTP address when this one is full.
	Redirect(app, name, clientIP string) (string, bool)
}

// Handler is the node's HTTP routing.
func (s *Server) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), newHubCollector(s.Hub, s.Limit))
	s.refusals = ratelog.New(s.Log, 0)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/versions", s.versions)
	mux.HandleFunc("GET /api/v1/summaries", s.summaries)
	mux.HandleFunc("GET /api/v1/streams", s.streams)
	mux.HandleFunc("GET /api/v1/streams/{id}", s.streams)
	mux.HandleFunc("GET /api/v1/clients", s.clients)
	mux.HandleFunc("POST /api/v1/clients/{id}/kick", s.kick)
	mux.HandleFunc("GET /api/v1/cluster", s.cluster)
	mux.HandleFunc("GET /api/v1/events", s.events)
	mux.HandleFunc("POST /api/v1/cluster/leave", s.leave)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /{app}/{file}", s.media)
	mux.HandleFunc("GET /{app}/{stream}/{segment}", s.segment)
	mux.HandleFunc("OPTIONS /", preflight)
	if s.Console == nil {
		return mux
	}
	// The console's paths overlap the media patterns (/{app}/{file}), which ServeMux
	// refuses to register side by side, so they are taken before the mux.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if console.Serves(r.URL.Path) {
			s.Console.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// Serve serves HTTP on ln until ctx ends, then closes open player connections.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.WriteTimeout == 0 {
		s.WriteTimeout = 10 * time.Second
	}
	s.started = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	hs := &http.Server{
		Handler:           markServed(s.Handler()),
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          zap.NewStdLog(s.Log.Named("http")),
		ConnState:         s.connState,
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(&limitedListener{Listener: ln, limit: s.Limit, log: s.Log}) }()
	select {
	case err := <-done:
		s.wg.Wait()
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	hs.Shutdown(sctx)
	hs.Close()
	<-done
	s.wg.Wait()
	return nil
}

// connState logs connections that closed without ever sending a valid request: garbage
// or scans on the HTTP port, which net/http answers with 400 without calling us.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	if (st == http.StateClosed || st == http.StateHijacked) && !lc.served.Load() {
		s.Log.Info("http connection closed without a valid request", zap.String("peer", c.RemoteAddr().String()))
	}
}

type connKey struct{}

// markServed notes on the connection that net/http parsed a request from it.
func markServed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok {
			lc.served.Store(true)
		}
		h.ServeHTTP(w, r)
	})
}

func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "*")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// limitedListener refuses connections over the node's max_connections at accept time.
type limitedListener struct {
	net.Listener
	limit *limit.Limiter
	log   *zap.Logger
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.limit.Acquire() {
			return &limitedConn{Conn: c, limit: l.limit}, nil
		}
		l.log.Warn("http connection refused: max_connections reached", zap.String("peer", c.RemoteAddr().String()))
		c.Close()
	}
}

type limitedConn struct {
	net.Conn
	limit  *limit.Limiter
	once   sync.Once
	served atomic.Bool
}

func (c *limitedConn) Close() error {
	c.once.Do(c.limit.Release)
	return c.Conn.Close()
}

// mediaWriter is the connection a player's media is written to: the TCP connection
// itself, since net.Buffers goes out with one writev only on the net package's own types
// (through the limitedConn wrapper it would be one write per tag).
func mediaWriter(c net.Conn) net.Conn {
	if lc, ok := c.(*limitedConn); ok {
		return lc.Conn
	}
	return c
}

// splitMedia splits "test.flv" into ("test", ".flv").
func splitMedia(file string) (string, string) {
	i := strings.LastIndexByte(file, '.')
	if i < 0 {
		return file, ""
	}
	return file[:i], file[i:]
}
