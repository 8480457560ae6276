package node

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/conf"
	"peer/ingress/admit"
)

// TestPerAppSettings: from a config file's apps section, app live needs a publish token
// and cuts 3 s HLS segments while app open needs none and cuts 1 s ones; ffmpeg
// publishes to open/x without a token and to live/x only with one.
func TestPerAppSettings(t *testing.T) {
	avtest.RequireTools(t)
	const key = "live-secret"
	file, err := conf.ParseFile("apps.yaml", strings.NewReader(`
hls-fragment: 2s
apps:
  live:
    token-publish-key: `+key+`
    hls-fragment: 3s
  open:
    hls-fragment: 1s
`))
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, func(c *conf.Node) { c.Apps = file.Apps() })

	publish(t, n.rtmpURL("open/x"), avtest.PublishOptions{})
	waitPublishing(t, n, "open/x")

	p := publish(t, n.rtmpURL("live/x"), avtest.PublishOptions{Duration: 5 * time.Second})
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("ffmpeg kept publishing to live/x without a token")
	}
	if s := n.Hub().Lookup("live", "x"); s != nil && s.Publishing() {
		t.Fatal("live/x is published without a token")
	}
	tok := admit.MintToken([]byte(key), admit.KindPublish, "live/x", time.Now().Add(time.Hour))
	publish(t, n.rtmpURL("live/x?token="+tok), avtest.PublishOptions{})
	waitPublishing(t, n, "live/x")

	for stream, target := range map[string]string{"open/x": "1", "live/x": "3"} {
		var playlist string
		eventually(t, 30*time.Second, stream+"'s playlist with two segments", func() bool {
			resp, err := http.Get(n.httpURL("/" + stream + ".m3u8"))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			playlist = string(b)
			return resp.StatusCode == 200 && strings.Count(playlist, "#EXTINF") >= 2
		})
		if !strings.Contains(playlist, "#EXT-X-TARGETDURATION:"+target+"\n") {
			t.Errorf("%s: want EXT-X-TARGETDURATION:%s (its app's hls-fragment):\n%s", stream, target, playlist)
		}
	}
}
