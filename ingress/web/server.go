// Package web is a node's HTTP side: HTTP-FLV and HLS for players, the SRS-style JSON
// API and Prometheus metrics.
//
// Operators keep control under load: player and publisher connections cannot use up
// what the API needs. A connection counts against max_connections (package limit)
// only once it becomes a media session (an HTTP-FLV player, an HLS request); API
// requests have a small budget of their own; connections that send no request (idle,
// keep-alive, slowloris) share a bounded pool that closes the longest-idle one to make
// room. The API can also get its own listener (--api, SRS's http_api).
//
// A protocol server: it may import the data plane (placement/dataplane), the control
// plane's views (placement, membership), the media core and its packagers (media/hls),
// and the servers' shared parts (ingress/admit, ingress/limit, ingress/console).
package web

import (
	"context"
	"log"
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
	"peer/ingress/admit"
	"peer/ingress/console"
	"peer/ingress/limit"
	"peer/media"
	"peer/placement"
	"peer/placement/dataplane"
)

// Defaults of the budgets a Server sets when left zero.
const (
	DefaultMaxIdle        = 1024 // connections without a request in progress, per listener
	DefaultMaxAPIRequests = 32   // API requests served at once
)

// Server serves one node's HTTP port, and its API port when it has one.
type Server struct {
	Hub          *media.Hub
	Router       Router
	Admit        *admit.Admission // tokens and hooks for players; nil admits everyone
	Limit        *limit.Limiter   // max_connections, shared with RTMP: media sessions only
	Log          *zap.Logger
	Version      string
	NodeName     string
	WriteTimeout time.Duration // longest a write to a player may block
	// APIToken, when set, is the bearer token admin actions need (see admin.go).
	APIToken string
	// MaxIdle bounds each listener's connections without a request in progress;
	// MaxAPIRequests the API requests served at once.
	MaxIdle, MaxAPIRequests int
	// Cluster, when set, answers /api/v1/cluster.
	Cluster func() any
	// Placement and Links, when set, feed /metrics with the node's placement and Raft
	// standing and its cluster links (the node wires them to placement and route).
	Placement func() placement.Stats
	Links     func() []dataplane.LinkStats
	// Leave, when set, serves POST /api/v1/cluster/leave (`peer leave`).
	Leave func(context.Context) error
	// Console, when set, serves the web console under /console/ (and "/" redirects
	// there), on the listener that serves the API.
	Console http.Handler
	// Events, when set, answers GET /api/v1/events: the node's recent cluster events.
	Events func() any

	hls      hlsViewers    // HLS players per stream, for /api/v1/streams and on_play/on_stop
	sessions atomic.Uint64 // numbers players for their client ids in hooks

	started  time.Time
	ctx      context.Context // Serve's: ends the players' connections
	wg       sync.WaitGroup
	api      *limit.Limiter
	idle     [2]*limit.IdlePool // per listener, in listenerNames' order
	refusals *ratelog.Limiter
	metrics  http.Handler
}

// listenerNames name the HTTP listener and the API's own one (--api) in logs and metrics.
var listenerNames = [2]string{"http", "api"}

// Router readies the node to serve a stream it may not hold (package route).
type Router interface {
	Play(app, name, query string) (internal bool, err error)
	// Redirect names another node's HTTP address when this one is full.
	Redirect(app, name, clientIP string) (string, bool)
}

func (s *Server) init() {
	if s.WriteTimeout == 0 {
		s.WriteTimeout = 10 * time.Second
	}
	if s.MaxIdle == 0 {
		s.MaxIdle = DefaultMaxIdle
	}
	if s.MaxAPIRequests == 0 {
		s.MaxAPIRequests = DefaultMaxAPIRequests
	}
	s.api = limit.New(s.MaxAPIRequests).WithLog("API request budget", s.Log)
	for i, name := range listenerNames {
		s.idle[i] = limit.NewIdlePool(name+" idle connections", s.MaxIdle, s.Log)
	}
	s.refusals = ratelog.New(s.Log, 0)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newHubCollector(s), newBudgetCollector(s), newClusterCollector(s))
	s.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// handler routes the API (and metrics), the media (players), or both.
func (s *Server) handler(api, players bool) http.Handler {
	mux := http.NewServeMux()
	// Every route but the admin actions answers a browser's preflight with CORS.
	public := func(path string, h http.Handler) {
		mux.Handle("GET "+path, h)
		mux.HandleFunc("OPTIONS "+path, preflight)
	}
	if api {
		read := func(path string, h http.HandlerFunc) { public(path, s.budgeted(withCORS(h))) }
		read("/api/v1/versions", s.versions)
		read("/api/v1/summaries", s.summaries)
		read("/api/v1/streams", s.streams)
		read("/api/v1/streams/{id}", s.streams)
		read("/api/v1/clients", s.clients)
		read("/api/v1/cluster", s.cluster)
		read("/api/v1/events", s.events)
		mux.Handle("GET /metrics", s.budgeted(s.metrics))
		s.handleAdmin(mux, "/api/v1/cluster/leave", s.budgeted(http.HandlerFunc(s.leave)))
		s.handleAdmin(mux, "/api/v1/clients/{id}/kick", s.budgeted(http.HandlerFunc(s.kick)))
	}
	if players {
		public("/{app}/{file}", http.HandlerFunc(s.media))
		public("/{app}/{stream}/{segment}", http.HandlerFunc(s.segment))
	}
	h := markServed(mux)
	if !api || s.Console == nil {
		return h
	}
	// The console's paths overlap the media patterns (/{app}/{file}), which ServeMux
	// refuses to register side by side, so they are taken before the mux.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if console.Serves(r.URL.Path) {
			s.Console.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// budgeted serves h within the API's own budget: past it, 503 at once.
func (s *Server) budgeted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.api.Acquire(r.RemoteAddr) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "API busy", http.StatusServiceUnavailable)
			return
		}
		defer s.api.Release()
		h.ServeHTTP(w, r)
	})
}

// withCORS lets any page read a read-only API answer (players' pages show stream
// lists). Admin actions never get this header.
func withCORS(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h(w, r)
	})
}

// Serve serves players (and the API, unless apiLn is given) on ln, and the API on apiLn
// when it is not nil, until ctx ends; then it closes open player connections.
func (s *Server) Serve(ctx context.Context, ln, apiLn net.Listener) error {
	s.init()
	s.started = time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.reportEndedHLS(ctx) }()
	var servers []*http.Server
	done := make(chan error, 2)
	serve := func(l net.Listener, h http.Handler, name string, pool *limit.IdlePool) {
		hs := &http.Server{
			Handler:     h,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) },
			// Slowloris: a request's header must arrive within ReadHeaderTimeout, its body
			// within ReadTimeout. HTTP-FLV players leave net/http (hijack) and are bound by
			// WriteTimeout per write instead.
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
			BaseContext:       func(net.Listener) context.Context { return ctx },
			ErrorLog:          s.errorLog(name),
			ConnState:         s.connState,
		}
		servers = append(servers, hs)
		go func() { done <- hs.Serve(&trackedListener{Listener: l, pool: pool}) }()
	}
	switch {
	case ln == nil: // a witness: the API only
		serve(apiLn, s.handler(true, false), listenerNames[1], s.idle[1])
	case apiLn == nil:
		serve(ln, s.handler(true, true), listenerNames[0], s.idle[0])
	default:
		serve(ln, s.handler(false, true), listenerNames[0], s.idle[0])
		serve(apiLn, s.handler(true, false), listenerNames[1], s.idle[1])
	}
	var err error
	received := 0
	select {
	case err = <-done: // a listener failed: stop the other one too
		received++
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	for _, hs := range servers {
		hs.Shutdown(sctx)
		hs.Close()
	}
	for ; received < len(servers); received++ {
		<-done
	}
	cancel() // ends the players and the hook reporter when a listener failed
	s.wg.Wait()
	return err
}

// errorLog passes net/http's own error lines (accept errors such as running out of
// file descriptors, malformed requests) through the rate-limited log: a flood of broken
// connections must not flood the log.
func (s *Server) errorLog(name string) *log.Logger {
	return log.New(logWriter(func(line string) { s.refusals.Warn("net/http "+name, "net/http: "+line, zap.String("listener", name)) }), "", 0)
}

type logWriter func(string)

func (f logWriter) Write(p []byte) (int, error) {
	f(strings.TrimSpace(string(p)))
	return len(p), nil
}

// connState keeps the idle pool in line with net/http's view of each connection, and
// logs (rate-limited) connections that closed without ever sending a valid request:
// garbage, scans or idle floods on the HTTP port, which net/http answers with 400 or
// closes without calling us.
func (s *Server) connState(c net.Conn, st http.ConnState) {
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	switch st {
	case http.StateNew, http.StateIdle:
		tc.pool.Idle(tc)
	case http.StateClosed, http.StateHijacked:
		tc.pool.Busy(tc)
		if !tc.served.Load() {
			s.refusals.Warn("http-no-request", "http connection closed without a valid request", zap.String("peer", c.RemoteAddr().String()))
		}
	}
}

type connKey struct{}

// markServed notes on the connection that net/http parsed a request from it: from now
// until the response is written the connection is busy, not idle (a connection still
// sending its header stays in the idle pool, so trickling bytes buys it nothing).
func markServed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tc, ok := r.Context().Value(connKey{}).(*trackedConn); ok {
			tc.served.Store(true)
			tc.pool.Busy(tc)
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
