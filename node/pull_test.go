package node

import (
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/conf"
)

// TestFFmpegUpstreamPull: node up is the upstream, ffmpeg publishing live/x to it; node
// down pulls app relay from it (--pull per app), over HTTP-FLV and over RTMP. ffprobe
// asking down for relay/x gets up's stream; once the stream has had no players for
// pull-idle, down stops pulling it.
func TestFFmpegUpstreamPull(t *testing.T) {
	avtest.RequireTools(t)
	up := startNode(t, nil)
	publish(t, up.rtmpURL("live/x"), avtest.PublishOptions{})
	waitPublishing(t, up, "live/x")

	idle := 2 * time.Second
	down := startNode(t, func(c *conf.Node) {
		c.Apps = map[string]conf.AppSettings{
			"relay":   {Pull: ptr(up.httpURL("/live/{stream}.flv")), PullIdle: &idle},
			"relayrt": {Pull: ptr(up.rtmpURL("live/{stream}")), PullIdle: &idle},
		}
	})
	for _, app := range []string{"relay", "relayrt"} {
		t.Run(app, func(t *testing.T) {
			avtest.CheckPlayable(t, down.httpURL("/"+app+"/x.flv"), 0)
			avtest.CheckPlayable(t, down.rtmpURL(app+"/x"), 0)
			eventually(t, 30*time.Second, "the pull of "+app+"/x to stop when idle", func() bool {
				s := down.Hub().Lookup(app, "x")
				return down.logged("upstream pull idle", app+"/x") && (s == nil || !s.Publishing())
			})
		})
	}
	if s := down.Hub().Lookup("other", "x"); s != nil {
		t.Fatal("an app without pull has a stream")
	}
}

func ptr[T any](v T) *T { return &v }
