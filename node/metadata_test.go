package node

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"peer/chaos/avtest"
)

// TestMetadataAfterRestart: after a publisher restarts, HTTP-FLV players, one that
// stayed across the restart and one that joined after, get only video and audio (no
// extra data stream), and `ffmpeg -t 5 -c copy` stops at 5 s. Before, the new
// publisher's onMetaData went out at the stream's time (942335 ms after a long run),
// which ffmpeg's FLV demuxer takes for a data packet of a data stream.
func TestMetadataAfterRestart(t *testing.T) {
	avtest.RequireTools(t)
	n := startNode(t, nil)
	first := publish(t, n.rtmpURL("live/re"), avtest.PublishOptions{})
	waitPublishing(t, n, "live/re")
	eventually(t, 20*time.Second, "3 s of video", func() bool {
		streams, _ := n.Hub().Snapshot()
		return len(streams) == 1 && streams[0].Frames > 75
	})
	dir := t.TempDir()
	url := n.httpURL("/live/re.flv")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second) // a hung ffmpeg fails the test
	defer cancel()
	record := func(name string, secs string) (*exec.Cmd, string) {
		out := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-i", url, "-t", secs, "-c", "copy", out)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, out
	}
	stayed, stayedOut := record("stayed.mkv", "8")
	time.Sleep(time.Second) // the recorder is playing before the restart
	first.Stop()
	publish(t, n.rtmpURL("live/re"), avtest.PublishOptions{})
	waitPublishing(t, n, "live/re")
	joined, joinedOut := record("joined.mkv", "5")
	for name, c := range map[string]*exec.Cmd{stayedOut: stayed, joinedOut: joined} {
		if err := c.Wait(); err != nil {
			t.Fatalf("ffmpeg recording %s: %v (did -t stop it?)", name, err)
		}
		streams, err := avtest.Probe(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, s := range streams {
			kinds = append(kinds, s.CodecType)
		}
		if len(kinds) != 2 {
			t.Fatalf("%s has streams %v, want video and audio only", name, kinds)
		}
	}
}
