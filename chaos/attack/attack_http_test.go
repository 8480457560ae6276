package attack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/media/rtmp"
)

// The HTTP side and the connection budgets under attack: floods of unknown stream
// names, slowloris, idle connection floods, max_connections reached, players that
// never read, and cross-site or unauthenticated admin requests.

// streamIDs lists the ids /api/v1/streams of node i shows.
func (tg *target) streamIDs(i int) []string {
	tg.t.Helper()
	resp, body := tg.get(i, "/api/v1/streams", nil)
	if resp.StatusCode != http.StatusOK {
		tg.t.Fatalf("/api/v1/streams: %s", resp.Status)
	}
	var out struct{ Streams []struct{ ID string } }
	if err := json.Unmarshal(body, &out); err != nil {
		tg.t.Fatalf("/api/v1/streams: %v", err)
	}
	var ids []string
	for _, s := range out.Streams {
		ids = append(ids, s.ID)
	}
	return ids
}

// get sends one GET to node i's HTTP port on a fresh connection.
func (tg *target) get(i int, path string, header map[string]string) (*http.Response, []byte) {
	return tg.request(i, http.MethodGet, path, header)
}

func (tg *target) request(i int, method, path string, header map[string]string) (*http.Response, []byte) {
	tg.t.Helper()
	resp, body, err := tryRequest(method, tg.httpURL(i, path), header)
	if err != nil {
		tg.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, body
}

func tryRequest(method, url string, header map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	cl := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp, body, err
}

// operatorPolls checks, until stop is closed, that node i's API and /metrics answer,
// once every 500 ms; it returns the number of polls and the failures.
func (tg *target) operatorPolls(i int, stop <-chan struct{}) (polls int, failures []string) {
	for {
		for _, path := range []string{"/api/v1/summaries", "/metrics"} {
			resp, _, err := tryRequest(http.MethodGet, tg.httpURL(i, path), nil)
			polls++
			switch {
			case err != nil:
				failures = append(failures, fmt.Sprintf("%s: %v", path, err))
			case resp.StatusCode != http.StatusOK:
				failures = append(failures, fmt.Sprintf("%s: %s", path, resp.Status))
			}
		}
		select {
		case <-stop:
			return polls, failures
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// duringAttack runs attack while an operator polls node i, and fails the test if any
// poll failed.
func (tg *target) duringAttack(i int, attack func()) {
	tg.t.Helper()
	stop := make(chan struct{})
	var polls int
	var failures []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		polls, failures = tg.operatorPolls(i, stop)
	}()
	attack()
	close(stop)
	<-done
	tg.t.Logf("operator polls during the attack: %d, failed: %d", polls, len(failures))
	if len(failures) > 0 {
		tg.t.Fatalf("API or /metrics failed during the attack: %v", failures[:min(len(failures), 5)])
	}
}

// TestHLSFloodOfUnknownNames: 20,000 HLS requests (playlists and segments) for names
// nobody publishes create no stream, no directory under --hls-dir and almost no memory.
func TestHLSFloodOfUnknownNames(t *testing.T) {
	hlsDir := t.TempDir()
	tg := newTarget(t, 1, "--hls-dir", hlsDir)
	var sent, notFound atomic.Int64
	tg.attack(0, "HLS flood: 20,000 requests for unknown stream names", 40, func() {
		tg.duringAttack(0, func() {
			const workers, perWorker = 8, 2500
			deadline := time.Now().Add(30 * time.Second)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tr := &http.Transport{MaxIdleConnsPerHost: 1}
					defer tr.CloseIdleConnections()
					cl := http.Client{Timeout: 5 * time.Second, Transport: tr}
					for j := 0; j < perWorker && time.Now().Before(deadline); j++ {
						path := fmt.Sprintf("/live/ghost-%d-%d.m3u8", w, j)
						if j%2 == 1 {
							path = fmt.Sprintf("/app%d/ghost-%d/%d.ts", j%7, j, w)
						}
						resp, err := cl.Get(tg.httpURL(0, path))
						sent.Add(1)
						if err != nil {
							continue
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusNotFound {
							notFound.Add(1)
						}
					}
				}()
			}
			wg.Wait()
		})
	})
	t.Logf("sent %d requests, %d answered 404", sent.Load(), notFound.Load())
	if notFound.Load() < sent.Load()*9/10 {
		t.Fatalf("only %d of %d requests for unknown streams got 404", notFound.Load(), sent.Load())
	}
	if ids := tg.streamIDs(0); len(ids) != 1 || ids[0] != legitStream {
		t.Fatalf("/api/v1/streams lists %d streams after the flood (want only %s): %.10v", len(ids), legitStream, ids)
	}
	var dirs []string
	filepath.WalkDir(hlsDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && path != hlsDir {
			dirs = append(dirs, strings.TrimPrefix(path, hlsDir))
		}
		return nil
	})
	for _, d := range dirs {
		if d != "/live" && d != "/live/legit" {
			t.Fatalf("--hls-dir holds directories of streams that never published: %.10v", dirs)
		}
	}
}

// TestSlowloris: 500 connections that send a request header one byte every 2 s never
// get the API or /metrics refused, and are closed by the header timeout.
func TestSlowloris(t *testing.T) {
	tg := newTarget(t, 1)
	tg.attack(0, "slowloris: 500 connections trickling a header byte every 2 s for 16 s", 40, func() {
		tg.duringAttack(0, func() {
			var conns []net.Conn
			for range 500 {
				c, err := net.DialTimeout("tcp", tg.nodes[0].HTTP, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			header := []byte("GET /api/v1/summaries HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			for i := range 8 {
				for _, c := range conns {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					c.Write(header[i%len(header) : i%len(header)+1])
				}
				time.Sleep(2 * time.Second)
			}
			// The header timeout (10 s) has closed every one of them.
			closed := 0
			for _, c := range conns {
				// The node answers 400 and closes, or just closes.
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := c.Read(make([]byte, 1)); n > 0 || (err != nil && !isTimeout(err)) {
					closed++
				}
			}
			t.Logf("%d of %d slow connections closed by the node", closed, len(conns))
			if closed < len(conns)*9/10 {
				t.Fatalf("only %d of %d slowloris connections were closed after 16 s", closed, len(conns))
			}
		})
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// raiseOwnFileLimit lets this test process hold n more connections, or skips.
func raiseOwnFileLimit(t *testing.T, n uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
	if lim.Max < n+1024 {
		t.Skipf("hard open-file limit %d is below the %d connections this test opens", lim.Max, n)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skip(err)
	}
}

// logLines counts node i's log lines containing every one of parts.
func (tg *target) logLines(i int, parts ...string) (n int, lines []string) {
	for _, line := range strings.Split(tg.nodes[i].Logs(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			n++
			lines = append(lines, line)
		}
	}
	return n, lines
}

// TestIdleConnectionFlood: 10,000 idle TCP connections, half to the RTMP port and half
// to the HTTP port, with max_connections at 100: the RTMP ones past it are refused, the
// HTTP ones are held at most --max-http-idle, the operator's API and /metrics answer
// throughout, and the refusals cost a few log lines with a count.
func TestIdleConnectionFlood(t *testing.T) {
	const total = 10000
	raiseOwnFileLimit(t, total)
	tg := newTarget(t, 1, "--max-connections", "100", "--max-http-idle", "500")
	var opened, failed int
	tg.attack(0, "10,000 idle TCP connections to the RTMP and HTTP ports (max_connections 100)", 60, func() {
		tg.duringAttack(0, func() {
			conns := make([]net.Conn, 0, total)
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			deadline := time.Now().Add(60 * time.Second)
			for i := 0; i < total && time.Now().Before(deadline); i++ {
				addr := tg.nodes[0].RTMP
				if i%2 == 1 {
					addr = tg.nodes[0].HTTP
				}
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					failed++
					continue
				}
				conns = append(conns, c)
				if i%1000 == 999 {
					time.Sleep(200 * time.Millisecond) // let the operator's polls in between bursts
				}
			}
			opened = len(conns)
			// Held idle while the operator polls, past the refusal log's interval (10 s):
			// one more refusal then logs the count of those suppressed meanwhile.
			time.Sleep(11 * time.Second)
			if c, err := net.DialTimeout("tcp", tg.nodes[0].RTMP, 2*time.Second); err == nil {
				conns = append(conns, c)
			}
			time.Sleep(500 * time.Millisecond)
		})
		// Freed slots let the harness's players in again.
		eventually(t, 30*time.Second, "the idle connections' slots to free", func() bool {
			_, body, err := tryRequest(http.MethodGet, tg.httpURL(0, "/api/v1/summaries"), nil)
			var s struct {
				Data struct {
					System struct {
						ConnSrs int64 `json:"conn_srs"`
					}
				}
			}
			return err == nil && json.Unmarshal(body, &s) == nil && s.Data.System.ConnSrs <= 2
		})
	})
	t.Logf("opened %d connections, %d dials failed", opened, failed)
	if opened < total/2 {
		t.Fatalf("only %d of %d connections opened: the flood did not happen", opened, total)
	}
	n, lines := tg.logLines(0, "max_connections reached")
	t.Logf("refusal log lines: %d", n)
	if n == 0 || n > 20 {
		t.Fatalf("%d refusal log lines for thousands of refusals, want a few", n)
	}
	if s, _ := tg.logLines(0, "max_connections reached", `"suppressed"`); s == 0 {
		t.Fatalf("no refusal line carries a suppressed count: %v", lines)
	}
	_, metrics := tg.get(0, "/metrics", nil)
	for _, line := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(line, "peer_connections_refused_total ") || strings.HasPrefix(line, "peer_http_idle_closed_total{") {
			t.Logf("metrics: %s", line)
		}
	}
	if m, _ := tg.logLines(0, "closed without a valid request"); m > 20 {
		t.Fatalf("%d lines for idle HTTP connections, want a few", m)
	}
}

// TestRTMPAtMaxConnections: RTMP connections holding every max_connections slot do not
// lock the operator out.
func TestRTMPAtMaxConnections(t *testing.T) {
	const max = 60
	tg := newTarget(t, 1, "--max-connections", fmt.Sprint(max))
	tg.attack(0, "RTMP connections at max_connections (60) and 200 past it", 20, func() {
		tg.duringAttack(0, func() {
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range max + 200 {
				c, err := net.DialTimeout("tcp", tg.nodes[0].RTMP, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
			}
			time.Sleep(2 * time.Second)
			if resp, _ := tg.get(0, "/"+legitStream+".flv", nil); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("a player with max_connections reached: %s, want 503", resp.Status)
			}
		})
	})
}

// TestNonReadingPlayers: 25 HTTP-FLV and 25 RTMP players that never read do not hold
// up a stream for a reading player, and are dropped once their sockets are full and a
// write blocks past --write-timeout (2s). The stream is a noisy lossless one (about
// 1-3 MB/s), so the players' socket buffers (megabytes on loopback) fill in seconds.
func TestNonReadingPlayers(t *testing.T) {
	const fatStream = "live/fat"
	tg := newTarget(t, 1, "--write-timeout", "2s")
	fat, err := avtest.Publish(tg.rtmpURL(0, fatStream), avtest.PublishOptions{Extra: []string{"-vf", "noise=alls=20:allf=t", "-qp", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer fat.Stop()
	eventually(t, 20*time.Second, fatStream+" published", func() bool {
		_, body, err := tryRequest(http.MethodGet, tg.httpURL(0, "/api/v1/streams"), nil)
		return err == nil && strings.Contains(string(body), `"id":"`+fatStream+`"`)
	})
	// The bound covers the stream's own growth too: its HLS window (6 segments of 2 s)
	// alone is some 40 MB at this bitrate.
	tg.attack(0, "50 players (25 HTTP-FLV, 25 RTMP) that never read, --write-timeout 2s", 120, func() {
		var conns []io.Closer
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 25 {
			c, err := net.DialTimeout("tcp", tg.nodes[0].HTTP, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.(*net.TCPConn).SetReadBuffer(4096)
			c.Write([]byte("GET /" + fatStream + ".flv HTTP/1.1\r\nHost: x\r\n\r\n"))
			conns = append(conns, c)
		}
		app, name, _ := strings.Cut(fatStream, "/")
		for range 25 {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := rtmp.DialPlay(ctx, tg.nodes[0].RTMP, app, name, 5*time.Second)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		eventually(t, 10*time.Second, "the 50 players attached", func() bool { return tg.players(0) >= 50 })
		attached := time.Now()
		tg.checkPlayable(0, fatStream) // a reading player gets the stream meanwhile
		eventually(t, 60*time.Second, "the non-reading players to be dropped", func() bool { return tg.players(0) == 0 })
		t.Logf("the 50 non-reading players were dropped %v after they attached", time.Since(attached).Round(100*time.Millisecond))
	})
	if n, _ := tg.logLines(0, "play stop", fatStream); n < 50 {
		t.Fatalf("%d play stop lines, want the 50 non-readers'", n)
	}
}

// players counts node i's user players (RTMP and HTTP-FLV) in /api/v1/clients.
func (tg *target) players(i int) int {
	_, body, err := tryRequest(http.MethodGet, tg.httpURL(i, "/api/v1/clients"), nil)
	if err != nil {
		return -1
	}
	var out struct{ Clients []struct{ Type string } }
	if json.Unmarshal(body, &out) != nil {
		return -1
	}
	n := 0
	for _, c := range out.Clients {
		if c.Type == "rtmp-play" || c.Type == "flv-play" {
			n++
		}
	}
	return n
}

// checkPlayable reads 1 MB of stream from node i over HTTP-FLV.
func (tg *target) checkPlayable(i int, stream string) {
	tg.t.Helper()
	cl := http.Client{Timeout: 20 * time.Second}
	resp, err := cl.Get(tg.httpURL(i, "/"+stream+".flv"))
	if err != nil {
		tg.t.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.CopyN(io.Discard, resp.Body, 1<<20)
	if n < 1<<20 {
		tg.t.Fatalf("a reading player got %d bytes of %s", n, stream)
	}
}

// TestCrossSiteLeave: a page on another site cannot make a node leave, and neither can
// a GET; the node stays in the cluster.
func TestCrossSiteLeave(t *testing.T) {
	tg := newTarget(t, 1)
	tg.attack(0, "cross-site POST and GET to /api/v1/cluster/leave (no token configured)", 10, func() {
		resp, _ := tg.request(0, http.MethodPost, "/api/v1/cluster/leave", map[string]string{"Origin": "http://evil.example"})
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("cross-site leave: %s, CORS %q", resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		resp, _ = tg.request(0, http.MethodPost, "/api/v1/cluster/leave", map[string]string{"Sec-Fetch-Site": "cross-site"})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("leave marked cross-site: %s", resp.Status)
		}
		for _, m := range []string{http.MethodGet, http.MethodOptions} {
			resp, _ := tg.request(0, m, "/api/v1/cluster/leave", map[string]string{"Origin": "http://evil.example"})
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Fatalf("%s leave: %s, CORS %q", m, resp.Status, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		time.Sleep(time.Second)
		v, err := tg.nodes[0].View(context.Background())
		if err != nil || len(v.Members) != 1 || v.Members[0].State != "alive" {
			t.Fatalf("cluster view after the refused leaves: %+v %v", v, err)
		}
	})
}

// TestLeaveNeedsTheToken: with --api-token, a leave without the token or with a wrong
// one is refused even from loopback; the right one stops the node (last: it ends it).
func TestLeaveNeedsTheToken(t *testing.T) {
	const token = "attack-admin-token"
	tg := newTarget(t, 1, "--api-token", token)
	tg.attack(0, "POST /api/v1/cluster/leave without and with a wrong --api-token", 10, func() {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", token} {
			resp, _ := tg.request(0, http.MethodPost, "/api/v1/cluster/leave", map[string]string{"Authorization": auth})
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("leave with Authorization %q: %s", auth, resp.Status)
			}
		}
	})
	resp, body := tg.request(0, http.MethodPost, "/api/v1/cluster/leave", map[string]string{"Authorization": "Bearer " + token})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("leave with the token: %s %s", resp.Status, body)
	}
	eventually(t, 20*time.Second, "the node to stop after leaving", func() bool { return !tg.nodes[0].Running() })
	t.Logf("ATTACK | leave with the right --api-token | accepted, node left and stopped | -")
}

// TestWaitingPlayersOfUnknownStreams: HTTP-FLV players may wait for a stream before its
// publisher, but only --max-waiting of them for streams no node publishes; the rest
// are refused with 503 and the node holds no more streams than the ones waited for.
func TestWaitingPlayersOfUnknownStreams(t *testing.T) {
	const maxWaiting, players = 50, 300
	tg := newTarget(t, 1, "--max-waiting", fmt.Sprint(maxWaiting))
	var refused int
	tg.attack(0, "300 HTTP-FLV players of unknown streams held open (--max-waiting 50)", 30, func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range players {
			c, err := net.DialTimeout("tcp", tg.nodes[0].HTTP, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			fmt.Fprintf(c, "GET /live/not-yet-%d.flv HTTP/1.1\r\nHost: x\r\n\r\n", i)
		}
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			head := make([]byte, 12)
			if n, _ := io.ReadFull(c, head); n == len(head) && strings.HasPrefix(string(head), "HTTP/1.1 503") {
				refused++
			}
		}
		if ids := tg.streamIDs(0); len(ids) > maxWaiting+1 {
			t.Fatalf("%d streams held for %d waiting players (cap %d)", len(ids), players, maxWaiting)
		}
	})
	t.Logf("%d of %d players of unknown streams refused", refused, players)
	if refused != players-maxWaiting {
		t.Fatalf("%d players refused, want %d past --max-waiting %d", refused, players-maxWaiting, maxWaiting)
	}
	if n, _ := tg.logLines(0, "too many players wait"); n == 0 || n > 5 {
		t.Fatalf("%d log lines for %d refusals, want a few", n, players-maxWaiting)
	}
}
