package web

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/ingress/limit"
	"peer/media"
)

func TestAdminRefusal(t *testing.T) {
	const token = "s3cret-token"
	cases := []struct {
		name          string
		token         string // configured
		method        string
		remote, host  string
		origin, site  string
		authorization string
		want          int
	}{
		{name: "loopback POST, no token configured", method: "POST", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", want: 0},
		{name: "localhost name", method: "POST", remote: "[::1]:5000", host: "localhost:8080", want: 0},
		{name: "GET", method: "GET", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", want: 405},
		{name: "OPTIONS", method: "OPTIONS", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", origin: "http://evil.example", want: 405},
		{name: "cross-site POST", method: "POST", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", origin: "http://evil.example", want: 403},
		{name: "cross-site by Sec-Fetch-Site", method: "POST", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", site: "cross-site", want: 403},
		{name: "same origin", method: "POST", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080", site: "same-origin", want: 0},
		{name: "opaque origin", method: "POST", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", origin: "null", want: 403},
		{name: "remote client, no token configured", method: "POST", remote: "10.0.0.9:5000", host: "10.0.0.1:8080", want: 403},
		{name: "DNS-rebound name", method: "POST", remote: "127.0.0.1:5000", host: "evil.example:8080", origin: "http://evil.example:8080", want: 403},
		{name: "token configured, none sent", token: token, method: "POST", remote: "127.0.0.1:5000", host: "127.0.0.1:8080", want: 401},
		{name: "wrong token", token: token, method: "POST", remote: "10.0.0.9:5000", host: "10.0.0.1:8080", authorization: "Bearer nope", want: 401},
		{name: "token prefix", token: token, method: "POST", remote: "10.0.0.9:5000", host: "10.0.0.1:8080", authorization: "Bearer s3cret", want: 401},
		{name: "not a bearer", token: token, method: "POST", remote: "10.0.0.9:5000", host: "10.0.0.1:8080", authorization: "Basic " + token, want: 401},
		{name: "right token from afar", token: token, method: "POST", remote: "10.0.0.9:5000", host: "10.0.0.1:8080", authorization: "Bearer " + token, want: 0},
		{name: "right token, cross-site", token: token, method: "POST", remote: "10.0.0.9:5000", host: "10.0.0.1:8080", origin: "http://evil.example", authorization: "Bearer " + token, want: 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{APIToken: c.token}
			r := httptest.NewRequest(c.method, "http://"+c.host+"/api/v1/cluster/leave", nil)
			r.RemoteAddr = c.remote
			for k, v := range map[string]string{"Origin": c.origin, "Sec-Fetch-Site": c.site, "Authorization": c.authorization} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			if got, why := s.adminRefusal(r); got != c.want {
				t.Fatalf("status %d (%s), want %d", got, why, c.want)
			}
		})
	}
}

// startServer serves s on loopback with the API on the HTTP port; it returns the
// address and a func that stops it.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Hub == nil {
		s.Hub = media.NewHub(media.DefaultConfig(), zap.NewNop())
	}
	if s.Limit == nil {
		s.Limit = limit.New(10)
	}
	if s.Log == nil {
		s.Log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Serve(ctx, ln, nil)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ln.Addr().String()
}

func do(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// Admin endpoints answer without CORS and refuse what the check refuses; read-only
// ones keep Access-Control-Allow-Origin: *.
func TestAdminEndpointOverHTTP(t *testing.T) {
	var left atomic.Int32
	addr := startServer(t, &Server{Leave: func(context.Context) error { left.Add(1); return nil }})
	base := "http://" + addr

	resp, _ := do(t, "GET", base+"/api/v1/versions", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("versions: %s, CORS %q", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	for _, m := range []string{"GET", "OPTIONS", "PUT"} {
		resp, _ := do(t, m, base+"/api/v1/cluster/leave", map[string]string{"Origin": "http://evil.example"})
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s leave: %s, CORS %q", m, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	resp, _ = do(t, "POST", base+"/api/v1/cluster/leave", map[string]string{"Origin": "http://evil.example"})
	if resp.StatusCode != http.StatusForbidden || left.Load() != 0 {
		t.Fatalf("cross-site leave: %s, left %d times", resp.Status, left.Load())
	}
	resp, body := do(t, "POST", base+"/api/v1/cluster/leave", nil)
	if resp.StatusCode != 200 || left.Load() != 1 || resp.Header.Get("Access-Control-Allow-Origin") != "" || !strings.Contains(body, `"code":0`) {
		t.Fatalf("loopback leave: %s %s, left %d times, CORS %q", resp.Status, body, left.Load(), resp.Header.Get("Access-Control-Allow-Origin"))
	}
	// Players' preflights keep CORS.
	resp, _ = do(t, "OPTIONS", base+"/live/x.flv", map[string]string{"Origin": "http://player.example"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("player preflight: %s %v", resp.Status, resp.Header)
	}
}

// With every max_connections slot taken and the HTTP port full of connections that
// never send a request, the API still answers; a player is refused with 503, and an
// HLS request for a stream nobody publishes gets 404 without creating it.
func TestAPIKeepsItsOwnBudget(t *testing.T) {
	lim := limit.New(1)
	lim.Acquire("test") // an RTMP session holds the only slot
	hub := media.NewHub(func() media.Config {
		c := media.DefaultConfig()
		c.Placed = func(app, name string) bool { return false }
		return c
	}(), zap.NewNop())
	addr := startServer(t, &Server{Limit: lim, Hub: hub, MaxIdle: 8})
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 50 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("GET /api/v1/vers")) // and never the rest
		idle = append(idle, c)
	}
	for _, path := range []string{"/api/v1/versions", "/metrics"} {
		if resp, _ := do(t, "GET", "http://"+addr+path, nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	if resp, _ := do(t, "GET", "http://"+addr+"/live/x.flv", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("player over max_connections: %s", resp.Status)
	}
	lim.Release()
	if resp, _ := do(t, "GET", "http://"+addr+"/live/nobody.m3u8", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown HLS stream: %s", resp.Status)
	}
	if got := len(hub.Streams()); got != 0 {
		t.Fatalf("%d streams after an HLS request for an unknown one", got)
	}
	if lim.Active() != 0 {
		t.Fatalf("%d max_connections slots held after the requests", lim.Active())
	}
}
