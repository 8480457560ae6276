package node

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/conf"
	"peer/ingress/admit"
)

// TestTokens: with publish and play keys, ffmpeg publishes and ffprobe plays only with a
// valid token of the right kind and stream; expired and tampered ones are refused; HLS
// hands the playlist's token on to its segments.
func TestTokens(t *testing.T) {
	avtest.RequireTools(t)
	const pubKey, playKey = "publish-secret", "play-secret"
	n := startNode(t, func(c *conf.Node) { c.TokenPublishKey, c.TokenPlayKey = pubKey, playKey })
	mint := func(key, kind, scope string, ttl time.Duration) string {
		return admit.MintToken([]byte(key), kind, scope, time.Now().Add(ttl))
	}
	valid := mint(pubKey, admit.KindPublish, "live/tok", time.Hour)
	refused := map[string]string{
		"no token":         "",
		"expired":          "?token=" + mint(pubKey, admit.KindPublish, "live/tok", -time.Minute),
		"tampered":         "?token=" + strings.Replace(valid, ".", ".9", 1),
		"other stream":     "?token=" + mint(pubKey, admit.KindPublish, "live/other", time.Hour),
		"a player's token": "?token=" + mint(playKey, admit.KindPlay, "live/tok", time.Hour),
	}
	for name, q := range refused {
		p := publish(t, n.rtmpURL("live/tok"+q), avtest.PublishOptions{Duration: 5 * time.Second})
		select {
		case <-p.Done():
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: ffmpeg kept publishing", name)
		}
		if s := n.Hub().Lookup("live", "tok"); s != nil && s.Publishing() {
			t.Fatalf("%s: the stream is published", name)
		}
	}
	eventually(t, 10*time.Second, "refusals logged", func() bool { return n.logged("publish refused") || n.logged("denied") })

	publish(t, n.rtmpURL("live/tok?token="+valid), avtest.PublishOptions{})
	waitPublishing(t, n, "live/tok")

	play := "?token=" + mint(playKey, admit.KindPlay, "live/*", time.Hour)
	avtest.CheckPlayable(t, n.rtmpURL("live/tok"+play), 0)
	avtest.CheckPlayable(t, n.httpURL("/live/tok.flv"+play), 0)
	for _, u := range []string{n.httpURL("/live/tok.flv"), n.httpURL("/live/tok.m3u8"),
		n.httpURL("/live/tok.flv?token=" + valid)} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s without a play token: %s, want 403", u, resp.Status)
		}
	}
	// HLS: the playlist's token goes on to every segment URI; a segment without it is refused.
	var playlist string
	eventually(t, 20*time.Second, "an HLS playlist", func() bool {
		resp, err := http.Get(n.httpURL("/live/tok.m3u8" + play))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		playlist = string(b)
		return resp.StatusCode == 200 && strings.Contains(playlist, ".ts")
	})
	seg := regexp.MustCompile(`(?m)^(tok/\d+\.ts)(\?token=\S+)$`).FindStringSubmatch(playlist)
	if seg == nil {
		t.Fatalf("segment URIs do not carry the token:\n%s", playlist)
	}
	for q, want := range map[string]int{seg[2]: 200, "": 403} {
		resp, err := http.Get(n.httpURL("/live/" + seg[1] + q))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("segment with query %q: %s, want %d", q, resp.Status, want)
		}
	}
	avtest.CheckPlayable(t, n.httpURL("/live/tok.m3u8"+play), 0)
}
