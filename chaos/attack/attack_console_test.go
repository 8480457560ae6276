package attack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestAttackConsole: the console's per-client state and admin endpoint under hostile
// clients. HLS players are counted per client address, so a flood of playlist requests
// from thousands of addresses must stay within the tracker's bound; a cross-origin page
// must never get an admin action through; the console's file server must not walk out
// of its folder.
func TestAttackConsole(t *testing.T) {
	tg := newTarget(t, 1)
	playlist := tg.httpURL(0, "/"+legitStream+".m3u8")
	eventually(t, 30*time.Second, "the legit stream's playlist", func() bool {
		resp, err := http.Get(playlist)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const addrs = 12000 // more than the tracker keeps (10000)
	tg.attack(0, "hls-viewer-flood", 64, func() {
		var next, failed atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1) - 1
					if i >= addrs {
						return
					}
					// Every request from its own loopback address, 127.1.0.1 and up.
					src := net.IPv4(127, 1, byte(i/250), byte(i%250+1))
					cl := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
						DisableKeepAlives: true,
						DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}).DialContext,
					}}
					resp, err := cl.Get(playlist)
					if err != nil {
						failed.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
		if n := failed.Load(); n > addrs/100 {
			t.Errorf("%d of %d playlist requests failed", n, addrs)
		}
		// Read at once: a viewer counts for 10 s after its last request, and on a busy
		// machine the flood itself may last longer, so only the latest addresses remain.
		n := hlsPlayers(t, tg)
		t.Logf("HLS players counted after the flood: %d", n)
		if n > 10000 || n < 1 {
			t.Errorf("HLS players = %d, want the tracker's bound (10000) at most and the flood seen", n)
		}
	})

	tg.attack(0, "cross-origin-admin", 16, func() {
		for i := range 500 {
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost,
				tg.httpURL(0, fmt.Sprintf("/api/v1/clients/%d/kick", i%8)), nil)
			req.Header.Set("Origin", "http://evil.example")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("a cross-origin kick answered %s", resp.Status)
			}
		}
	})

	tg.attack(0, "console-path-escape", 16, func() {
		for _, path := range []string{"/console/../../../../etc/passwd", "/console/%2e%2e/%2e%2e/etc/passwd",
			"/console/..%2f..%2f..%2fetc%2fpasswd", "/console/vendor/../../console.go", "/console/" + strings.Repeat("a/", 4000)} {
			conn, err := net.Dial("tcp", tg.nodes[0].HTTP)
			if err != nil {
				t.Fatal(err)
			}
			// Written raw: an HTTP client would clean the path before sending it.
			fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			out, _ := io.ReadAll(conn)
			conn.Close()
			if strings.Contains(string(out), "root:") || strings.Contains(string(out), "package console") {
				t.Fatalf("GET %.60s served a file outside the console: %.200q", path, out)
			}
		}
	})
}

// hlsPlayers is the HLS player count of the legit stream in the node's /api/v1/streams.
func hlsPlayers(t *testing.T, tg *target) int {
	var body struct {
		Streams []struct {
			ID      string
			Players map[string]int
		}
	}
	resp, err := http.Get(tg.httpURL(0, "/api/v1/streams"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	for _, s := range body.Streams {
		if s.ID == legitStream {
			return s.Players["hls"]
		}
	}
	return 0
}
