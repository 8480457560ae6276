package node

import (
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"peer/chaos/avtest"
)

// TestAccessLines: every session, whatever its protocol, logs one start line and one stop
// line with the client, the stream, its kind, bytes, duration and why it ended.
func TestAccessLines(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	publish(t, n.rtmpURL("live/acc"), avtest.PublishOptions{})
	waitPublishing(t, n, "live/acc")
	avtest.CheckPlayable(t, n.rtmpURL("live/acc"), 0)
	avtest.CheckPlayable(t, n.httpURL("/live/acc.flv"), 0)
	// One HLS viewer: a playlist and a segment, then silence.
	var playlist string
	eventually(t, 20*time.Second, "a playlist", func() bool {
		resp, err := http.Get(n.httpURL("/live/acc.m3u8"))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		playlist = string(b)
		return resp.StatusCode == 200
	})
	seg := regexp.MustCompile(`(?m)^\S+\.ts$`).FindString(playlist)
	resp, err := http.Get(n.httpURL("/live/" + seg))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	stops := func(kind string) []observer.LoggedEntry {
		return n.logs.FilterMessage("play stop").FilterField(zap.String("kind", kind)).All()
	}
	eventually(t, 40*time.Second, "the HLS viewer's session to end", func() bool { return len(stops("hls-play")) == 1 })
	for kind, want := range map[string]int{"play": 2, "flv-play": 2, "hls-play": 1} { // ffprobe runs twice per check
		got := stops(kind)
		if len(got) != want {
			t.Errorf("%s: %d stop lines, want %d", kind, len(got), want)
		}
		for _, e := range got {
			m := e.ContextMap()
			for _, f := range []string{"stream", "peer", "duration", "bytes_out", "reason"} {
				if _, ok := m[f]; !ok {
					t.Errorf("%s stop line without %s: %v", kind, f, m)
				}
			}
		}
		if starts := n.logs.FilterMessage("play start").FilterField(zap.String("kind", kind)).Len(); kind != "play" && starts != want {
			t.Errorf("%s: %d start lines, want %d", kind, starts, want)
		}
	}
}
