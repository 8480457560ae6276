package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/ingress/console"
	"peer/ingress/limit"
	"peer/media"
)

func testServer(t *testing.T) (*Server, http.Handler) {
	t.Helper()
	s := &Server{Hub: media.NewHub(media.DefaultConfig(), zap.NewNop()), Limit: limit.New(10), Log: zap.NewNop(),
		NodeName: "n1", Console: console.Handler(), Events: func() any {
			return []console.Event{{Seq: 1, Kind: "join", Node: "n2"}}
		}}
	s.init()
	return s, s.handler(true, true)
}

func serveReq(h http.Handler, method, target string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "127.0.0.1:8080" // admin actions want the node addressed by IP (no DNS rebinding)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// The console is mounted beside the media routes it overlaps, "/" leads to it, and the
// API and media paths still reach their handlers.
func TestConsoleIsMounted(t *testing.T) {
	_, h := testServer(t)
	if w := serveReq(h, "GET", "/"); w.Code != http.StatusFound || w.Header().Get("Location") != "/console/" {
		t.Fatalf("GET / = %d %q, want a redirect to /console/", w.Code, w.Header().Get("Location"))
	}
	w := serveReq(h, "GET", "/console/")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "<title>peer console</title>") {
		t.Fatalf("GET /console/ = %d %.200q", w.Code, w.Body.String())
	}
	if w := serveReq(h, "GET", "/console/stream.html"); w.Code != 200 {
		t.Fatalf("GET /console/stream.html = %d", w.Code)
	}
	if w := serveReq(h, "POST", "/console/"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /console/ = %d, want 405", w.Code)
	}
	w = serveReq(h, "GET", "/api/v1/events")
	var ev struct {
		Code   int
		Events []console.Event
	}
	if err := json.Unmarshal(w.Body.Bytes(), &ev); err != nil || ev.Code != 0 || len(ev.Events) != 1 || ev.Events[0].Kind != "join" {
		t.Fatalf("GET /api/v1/events = %d %s (%v)", w.Code, w.Body, err)
	}
	if w := serveReq(h, "GET", "/api/v1/versions"); w.Code != 200 {
		t.Fatalf("GET /api/v1/versions = %d", w.Code)
	}
	// A segment name of a stream nobody publishes: the media route answers, not the console.
	if w := serveReq(h, "GET", "/live/none/seg-1.ts"); w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "<html") {
		t.Fatalf("GET of a missing segment = %d %.100q", w.Code, w.Body.String())
	}
}

// /api/v1/streams counts each stream's players per protocol, without the cluster's links.
func TestStreamsCountPlayersPerProtocol(t *testing.T) {
	s, h := testServer(t)
	for _, kind := range []string{"flv-play", "flv-play", "rtmp-play", "link-forward"} {
		p, err := s.Hub.Play("live", "a", media.PlayOptions{Kind: kind, Remote: "127.0.0.1:1", Link: strings.HasPrefix(kind, "link-")})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
	}
	s.hls.note("live/a", "127.0.0.2:5000", time.Now())
	s.hls.note("live/a", "127.0.0.2:5001", time.Now()) // the same viewer, another connection
	s.hls.note("live/a", "127.0.0.3:5000", time.Now())
	var body struct {
		Streams []struct {
			ID      string
			Players map[string]int
		}
	}
	w := serveReq(h, "GET", "/api/v1/streams")
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Streams) != 1 {
		t.Fatalf("streams: %s (%v)", w.Body, err)
	}
	if got, want := fmt.Sprint(body.Streams[0].Players), "map[flv:2 hls:2 rtmp:1]"; got != want {
		t.Fatalf("players = %s, want %s", got, want)
	}
}

func TestHLSViewersExpireAndAreBounded(t *testing.T) {
	var v hlsViewers
	now := time.Now()
	v.note("live/a", "10.0.0.1:1", now)
	v.note("live/b", "10.0.0.1:1", now.Add(-2*hlsViewerWindow))
	if c := v.counts(now); c["live/a"] != 1 || c["live/b"] != 0 {
		t.Fatalf("counts = %v", c)
	}
	for i := range maxHLSViewers + 50 {
		v.note("live/a", fmt.Sprintf("10.1.%d.%d:1", i/256, i%256), now)
	}
	if n := len(v.seen); n > maxHLSViewers {
		t.Fatalf("the tracker holds %d entries, over its bound %d", n, maxHLSViewers)
	}
}

// A kick is an admin action (admin.go: POST, loopback without --api-token, never
// from another site's page); it ends the player.
func TestKickClient(t *testing.T) {
	s, h := testServer(t)
	p, err := s.Hub.Play("live", "a", media.PlayOptions{Kind: "flv-play", Remote: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	path := fmt.Sprintf("/api/v1/clients/%d/kick", p.ID)
	if w := serveReq(h, "GET", path); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET kick = %d, want 405", w.Code)
	}
	if w := serveReq(h, "POST", path, "Origin", "http://evil.example"); w.Code != http.StatusForbidden {
		t.Fatalf("cross-origin kick = %d, want 403", w.Code)
	}
	if w := serveReq(h, "POST", path, "Sec-Fetch-Site", "cross-site"); w.Code != http.StatusForbidden {
		t.Fatalf("cross-site kick = %d, want 403", w.Code)
	}
	remote := httptest.NewRequest("POST", path, nil) // RemoteAddr 192.0.2.1: not loopback
	rw := httptest.NewRecorder()
	h.ServeHTTP(rw, remote)
	if rw.Code != http.StatusForbidden {
		t.Fatalf("kick from a remote address = %d, want 403", rw.Code)
	}
	// A page the node served itself is same-origin.
	if w := serveReq(h, "POST", "/api/v1/clients/999999/kick", "Origin", "http://127.0.0.1:8080"); w.Code != http.StatusNotFound {
		t.Fatalf("kick of an unknown client = %d, want 404", w.Code)
	}
	if w := serveReq(h, "POST", path); w.Code != 200 {
		t.Fatalf("kick = %d %s", w.Code, w.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, err := p.Next(ctx, nil); err != nil {
			if !errors.Is(err, media.ErrKicked) {
				t.Fatalf("the kicked player ended with %v, want ErrKicked", err)
			}
			break
		}
	}
}
