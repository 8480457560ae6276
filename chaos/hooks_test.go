package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// hookBackend is an SRS-style HTTP hook server: it records every call's JSON body and
// answers 0 (allow), or {"code":403} for streams named in deny.
type hookBackend struct {
	url   string
	srv   *http.Server
	mu    sync.Mutex
	calls []map[string]any
	deny  map[string]bool
}

func newHookBackend(t *testing.T, deny ...string) *hookBackend {
	t.Helper()
	ln, err := net.Listen("tcp", procs.FreeAddr())
	if err != nil {
		t.Fatal(err)
	}
	h := &hookBackend{url: "http://" + ln.Addr().String() + "/api/v1/hooks", deny: map[string]bool{}}
	for _, d := range deny {
		h.deny[d] = true
	}
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("hook body is not JSON: %q", b)
			w.WriteHeader(400)
			return
		}
		h.mu.Lock()
		h.calls = append(h.calls, body)
		denied := h.deny[fmt.Sprint(body["app"], "/", body["stream"])]
		h.mu.Unlock()
		if denied && (body["action"] == "on_publish" || body["action"] == "on_play") {
			io.WriteString(w, `{"code": 403, "msg": "denied by the test backend"}`)
			return
		}
		io.WriteString(w, "0")
	})}
	go h.srv.Serve(ln)
	t.Cleanup(func() { h.srv.Close() })
	return h
}

// count returns how many calls of action node made for stream.
func (h *hookBackend) count(action, node, stream string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, c := range h.calls {
		if c["action"] == action && c["server_id"] == node && fmt.Sprint(c["app"], "/", c["stream"]) == stream {
			n++
		}
	}
	return n
}

// onceEach checks that every client node reported for stream with action has exactly one
// call of it and one of end (on_stop, on_unpublish), and returns how many clients.
func (h *hookBackend) onceEach(t *testing.T, action, end, node, stream string) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	begun, ended := map[any]int{}, map[any]int{}
	for _, c := range h.calls {
		if c["server_id"] != node || fmt.Sprint(c["app"], "/", c["stream"]) != stream {
			continue
		}
		switch c["action"] {
		case action:
			begun[c["client_id"]]++
		case end:
			ended[c["client_id"]]++
		}
	}
	for id, n := range begun {
		if n != 1 || ended[id] != 1 {
			t.Errorf("%s: client %v of %s: %d %s and %d %s calls, want one each", node, id, stream, n, action, ended[id], end)
		}
	}
	return len(begun)
}

// onceEachQuiet counts the clients whose id starts with prefix that node reported for
// stream with one action call and one end call.
func (h *hookBackend) onceEachQuiet(action, end, node, stream, prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	begun, ended := map[string]int{}, map[string]int{}
	for _, c := range h.calls {
		id, _ := c["client_id"].(string)
		if c["server_id"] != node || fmt.Sprint(c["app"], "/", c["stream"]) != stream || !strings.HasPrefix(id, prefix) {
			continue
		}
		switch c["action"] {
		case action:
			begun[id]++
		case end:
			ended[id]++
		}
	}
	n := 0
	for id, b := range begun {
		if b == 1 && ended[id] == 1 {
			n++
		}
	}
	return n
}

// connected reports whether node sent on_connect for the client of a call.
func (h *hookBackend) connected(node string, call map[string]any) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.calls {
		if c["action"] == "on_connect" && c["server_id"] == node && c["client_id"] == call["client_id"] {
			return true
		}
	}
	return false
}

func (h *hookBackend) find(action, node, stream string) map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.calls {
		if c["action"] == action && c["server_id"] == node && fmt.Sprint(c["app"], "/", c["stream"]) == stream {
			return c
		}
	}
	return nil
}

func (h *hookBackend) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	for _, c := range h.calls {
		fmt.Fprintf(&b, "%v %v %v/%v %v\n", c["server_id"], c["action"], c["app"], c["stream"], c["client_id"])
	}
	return b.String()
}

// TestSRSHooks runs SRS's HTTP hooks against ffmpeg and ffprobe on a 3-node cluster: each
// client is reported once, by the node it reached, with SRS's fields; node-to-node links
// (forwards to replicas, an edge's pull, a relay to the master) are never reported; a
// hook's refusal refuses the publish or the play.
func TestSRSHooks(t *testing.T) {
	avtest.RequireTools(t)
	h := newHookBackend(t, "live/denied")
	hooks := []string{"--on-connect", h.url, "--on-publish", h.url, "--on-unpublish", h.url,
		"--on-play", h.url, "--on-stop", h.url, "--on-hls", h.url}
	c, _ := startCluster(t, 3, func(i int) []string {
		if i == 1 {
			return append(hooks, "--max-streams", "1") // n2 relays the second stream published to it
		}
		return hooks
	})
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]

	// At the master: ffmpeg publishes to n1, which masters the stream and forwards it.
	publish(t, rtmpURL(n1, "live/hooked?k=v"))
	eventually(t, 20*time.Second, "on_publish at n1", func() bool { return h.count("on_publish", "n1", "live/hooked") == 1 })
	pub := h.find("on_publish", "n1", "live/hooked")
	for k, want := range map[string]any{"vhost": "__defaultVhost__", "ip": "127.0.0.1", "param": "?k=v"} {
		if pub[k] != want {
			t.Errorf("on_publish %s = %v, want %v", k, pub[k], want)
		}
	}
	if id, _ := pub["client_id"].(string); id == "" {
		t.Errorf("on_publish without a client_id: %v", pub)
	}
	if !h.connected("n1", pub) {
		t.Errorf("no on_connect at n1 for the publisher %v", pub["client_id"])
	}

	// At an edge: ffprobe plays RTMP from n3, which pulls from the master or a replica.
	avtest.CheckPlayable(t, rtmpURL(n3, "live/hooked"), 0)
	avtest.CheckPlayable(t, flvURL(n2, "live/hooked"), 0)
	eventually(t, 20*time.Second, "on_stop of the players", func() bool {
		return h.count("on_stop", "n3", "live/hooked") >= 1 && h.count("on_stop", "n2", "live/hooked") >= 1
	})

	// HLS at an edge: a viewer is one client from its first playlist request until it
	// stops asking; the master reports each segment it finishes (on_hls).
	for range 3 {
		eventually(t, 20*time.Second, "an HLS playlist at n3", func() bool {
			resp, err := http.Get(hlsURL(n3, "live/hooked"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	eventually(t, 40*time.Second, "on_stop of the HLS viewer", func() bool {
		return h.onceEachQuiet("on_play", "on_stop", "n3", "live/hooked", "hls-") == 1
	})
	eventually(t, 20*time.Second, "on_hls from the master", func() bool { return h.count("on_hls", "n1", "live/hooked") >= 1 })
	if seg := h.find("on_hls", "n1", "live/hooked"); seg["m3u8_url"] != "/live/hooked.m3u8" || seg["duration"] == nil {
		t.Errorf("on_hls body %v", seg)
	}

	// At a relaying node: n2 masters a filler stream, so the next publish there is relayed.
	publish(t, rtmpURL(n2, "live/filler"))
	eventually(t, 20*time.Second, "the filler placed on n2", func() bool {
		a, ok := assignment(n1, "live/filler")
		return ok && a.Master == "n2"
	})
	publish(t, rtmpURL(n2, "live/relayed"))
	eventually(t, 20*time.Second, "live/relayed placed off n2", func() bool {
		a, ok := assignment(n1, "live/relayed")
		return ok && a.Master != "" && a.Master != "n2"
	})
	avtest.CheckPlayable(t, flvURL(n1, "live/relayed"), 0)
	eventually(t, 10*time.Second, "on_publish of the relayed stream at n2", func() bool {
		return h.count("on_publish", "n2", "live/relayed") == 1
	})

	// A hook's refusal: the publish is refused and never placed; a play is refused too.
	denied, err := avtest.Publish(rtmpURL(n1, "live/denied"), avtest.PublishOptions{Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-denied.Done():
	case <-time.After(20 * time.Second):
		denied.Stop()
		t.Fatal("ffmpeg kept publishing a stream the hook denied")
	}
	if _, ok := assignment(n1, "live/denied"); ok {
		t.Error("a denied stream was placed")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(flvURL(n3, "live/denied"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("HTTP-FLV play of a denied stream: %s, want 403", resp.Status)
	}

	// Once per client, at the node it reached: links never call hooks. Every node carried
	// live/hooked (master, replicas, edge pulls), yet only the clients were reported.
	time.Sleep(time.Second) // let late hooks, if any, arrive before counting
	for _, nd := range []*procs.Node{n1, n2, n3} {
		want := map[string]int{"n1": 1}[nd.Name]
		if got := h.count("on_publish", nd.Name, "live/hooked"); got != want {
			t.Errorf("%s reported %d publishes of live/hooked, want %d", nd.Name, got, want)
		}
	}
	if got := h.count("on_play", "n1", "live/hooked"); got != 0 {
		t.Errorf("n1 (the master) reported %d plays: the edges' pulls are links", got)
	}
	// CheckPlayable runs ffprobe twice: two clients at each of n2 (HTTP-FLV) and n3 (RTMP).
	// n3 also had the HLS viewer.
	for node, want := range map[string]int{"n2": 2, "n3": 3} {
		if got := h.onceEach(t, "on_play", "on_stop", node, "live/hooked"); got != want {
			t.Errorf("%s reported %d players of live/hooked, want %d", node, got, want)
		}
	}
	if got := h.count("on_hls", "n2", "live/hooked") + h.count("on_hls", "n3", "live/hooked"); got != 0 {
		t.Errorf("followers reported %d segments: only the master does", got)
	}
	if got := h.count("on_publish", "n1", "live/relayed") + h.count("on_publish", "n3", "live/relayed"); got != 0 {
		t.Errorf("the relay to the master was reported as a publish (%d)", got)
	}
	if t.Failed() {
		t.Logf("hook calls:\n%s", h.summary())
	}
}
