package node

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/media/flv"
)

// TestFLVHeaderFromTracks: a camera without a microphone (video only) and a radio stream
// (audio only) get an HTTP-FLV header announcing only their track, so ffmpeg decodes them
// at once instead of waiting for a track that never comes (SRS's guess_has_av).
func TestFLVHeaderFromTracks(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	lavfi := func(src string) []string { return []string{"-f", "lavfi", "-i", src} }
	cases := []struct {
		stream string
		args   []string
		flags  byte
		media  string
	}{
		{"live/cam", append(lavfi("testsrc=size=320x240:rate=25"), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "ultrafast", "-g", "25"), flv.FlagsVideo, "v"},
		{"live/radio", append(lavfi("sine=frequency=440:sample_rate=44100"), "-c:a", "aac"), flv.FlagsAudio, "a"},
	}
	for _, c := range cases {
		args := append([]string{"-hide_banner", "-loglevel", "error", "-re"}, c.args...)
		p, err := avtest.Start("ffmpeg", append(args, "-f", "flv", n.rtmpURL(c.stream))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
		waitPublishing(t, n, c.stream)
		url := n.httpURL("/" + c.stream + ".flv")
		eventually(t, 15*time.Second, c.stream+"'s header to settle", func() bool {
			resp, err := http.Get(url)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			head := make([]byte, 5)
			_, err = io.ReadFull(resp.Body, head)
			return err == nil && head[4] == c.flags
		})
		// ffmpeg, with its default probing, decodes the one track at once.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		pkts, err := avtest.Packets(ctx, url, 2*time.Second)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.stream, err)
		}
		kind := map[string]string{"v": "video", "a": "audio"}[c.media]
		if tl := avtest.TimelineOf(pkts, kind); tl.Count < 20 {
			t.Fatalf("%s: %d %s packets", c.stream, tl.Count, kind)
		}
	}
}
