package chaos

import (
	"context"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
)

// TestVLCRecords: VLC (cvlc, as a non-root user) records 6 s of RTMP from the stream's
// replica and of HTTP-FLV and HLS from a pure edge of a 3-node cluster, and of HTTP-FLV
// of a camera without a microphone (video only) from the edge. Each H.264 + AAC
// recording has timestamps that advance; the first 5 s of each recording decode without
// an error and hold at least 4 s of video and of audio, or none of audio for the camera.
// (Only the first 5 s: VLC, stopped by --run-time, writes the first TS packet of the last
// audio PES only, which does not decode.)
func TestVLCRecords(t *testing.T) {
	avtest.RequireTools(t)
	avtest.RequireVLC(t)
	c, _ := startCluster(t, 3, func(int) []string { return []string{"--replicas", "1"} })
	const stream, cam = "live/vlc", "live/vlc-cam"
	publish(t, rtmpURL(c.Nodes[0], stream))
	camPub, err := avtest.Publish(rtmpURL(c.Nodes[0], cam), avtest.PublishOptions{Extra: []string{"-an"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(camPub.Stop)
	var a procs.Assignment
	eventually(t, 15*time.Second, stream+" placed with a replica", func() bool {
		var ok bool
		a, ok = assignment(c.Nodes[0], stream)
		return ok && len(a.Replicas) > 0
	})
	replica := c.ByName(a.Replicas[0])
	edge := c.Others(a.Master, replica.Name)[0]
	t.Logf("master %s, replica %s, edge %s", a.Master, replica.Name, edge.Name)
	eventually(t, 30*time.Second, "an HLS playlist of 3 segments at the edge", func() bool {
		return strings.Count(get(hlsURL(edge, stream)), "#EXTINF") >= 3
	})
	eventually(t, 15*time.Second, cam+" placed", func() bool {
		_, ok := assignment(edge, cam)
		return ok
	})
	for _, rec := range []struct {
		name, url string
		audio     bool
	}{
		{"RTMP@replica", rtmpURL(replica, stream), true},
		{"HTTP-FLV@edge", flvURL(edge, stream), true},
		{"HLS@edge", hlsURL(edge, stream), true},
		{"HTTP-FLV-video-only@edge", flvURL(edge, cam), false},
	} {
		t.Run(rec.name, func(t *testing.T) {
			t.Parallel()
			file := avtest.RecordVLC(t, rec.url, 6*time.Second)
			if rec.audio {
				avtest.CheckPlayable(t, file, 0)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			frames, err := avtest.DecodedFrames(ctx, file, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// 25 video frames a second; 44100/1024 AAC frames a second.
			wantAudio := 0
			if rec.audio {
				wantAudio = 4 * 43
			}
			if frames["video"] < 4*25 || frames["audio"] < wantAudio || !rec.audio && frames["audio"] > 0 {
				t.Fatalf("%s: decoded %v frames in 5 s, want 4 s of video and %d of audio", file, frames, wantAudio)
			}
		})
	}
}
