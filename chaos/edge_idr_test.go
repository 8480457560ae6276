package chaos

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
	"peer/placement"
)

// TestEdgeKeepsNewMastersKeyframe: 4 nodes with one replica per stream, so a stream has
// a master, a replica and two pure edges. ffmpeg publishes H.264 + AAC at the master; an
// HTTP-FLV player at a pure edge is recorded by ffmpeg (-c copy). The master is
// SIGKILLed, the replica promoted, and the publisher publishes again there (as OBS
// does); the edge's copy switches to the new master, whose timeline starts just after
// the replica's last tag, at or a little before the edge's (when the master died between
// its writes to the edge's pull and to the replica's forward). The recording, a few GOPs
// past the switch, must decode without an error: before 777df34 the edge could drop the
// new timeline's first keyframe by time and send its inter frames without it (h264
// "no frame!", "decode_slice_header error", "concealing ... errors").
func TestEdgeKeepsNewMastersKeyframe(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 4, func(int) []string { return []string{"--replicas", "1"} })
	// A stream whose master has a pure edge pulling from it (edges spread over the
	// origins by rendezvous hash): that edge's copy is the one that switches upstream.
	// The replica is placement's choice: publish at one node after another until so.
	var (
		master, replica, edge *procs.Node
		pub                   *avtest.Proc
		stream                string
		a                     procs.Assignment
	)
	for _, n := range c.Nodes {
		stream = "live/idr-" + n.Name
		pub = publish(t, rtmpURL(n, stream))
		eventually(t, 20*time.Second, stream+" placed at "+n.Name+" with one replica", func() bool {
			var ok bool
			a, ok = assignment(n, stream)
			return ok && a.Master == n.Name && len(a.Replicas) == 1
		})
		master, replica = n, c.ByName(a.Replicas[0])
		for _, e := range c.Nodes {
			if e != master && e != replica && placement.RendezvousHash(e.Name, master.Name) > placement.RendezvousHash(e.Name, replica.Name) {
				edge = e
			}
		}
		if edge != nil {
			break
		}
		pub.Stop()
	}
	if edge == nil {
		t.Fatal("no master has a pure edge pulling from it")
	}
	t.Logf("%s: master %s, replica %s, edge %s pulls from the master", stream, master.Name, replica.Name, edge.Name)

	rec := filepath.Join(t.TempDir(), "rec.flv")
	recorder, err := avtest.Start("ffmpeg", "-hide_banner", "-v", "error", "-rw_timeout", "10000000",
		"-i", flvURL(edge, stream), "-c", "copy", "-f", "flv", rec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(recorder.Stop)
	eventually(t, 20*time.Second, "the edge "+edge.Name+" serving "+stream, func() bool {
		a, ok := assignment(edge, stream)
		return ok && contains(a.Edges, edge.Name)
	})
	time.Sleep(2 * time.Second) // two GOPs before the kill

	master.Kill()
	pub.Stop()
	eventually(t, 20*time.Second, replica.Name+" promoted", func() bool {
		x, ok := assignment(replica, stream)
		return ok && x.Master == replica.Name && x.Epoch > a.Epoch
	})
	// The publisher comes back at the new master: retried until it stays connected.
	eventually(t, 20*time.Second, "the publisher accepted at "+replica.Name, func() bool {
		p := publish(t, rtmpURL(replica, stream))
		select {
		case <-p.Done():
			return false
		case <-time.After(time.Second):
			return true
		}
	})
	time.Sleep(3 * time.Second) // three GOPs of the new timeline at the edge
	select {
	case <-recorder.Done():
		t.Fatalf("the recorder at the edge stopped: %v: %s", recorder.Err(), recorder.Stderr)
	default:
	}
	recorder.Stop()

	out, err := exec.Command("ffmpeg", "-hide_banner", "-v", "error", "-i", rec, "-f", "null", "-").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("decoding the edge's recording across the master change (%v):\n%s", err, out)
	}
	pkts, err := avtest.Packets(t.Context(), rec, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	video := avtest.TimelineOf(pkts, "video")
	if video.Last-video.First < 4 {
		t.Fatalf("the recording covers %.1f s of video, want the time before and after the change", video.Last-video.First)
	}
	t.Logf("recording at %s: %d video packets over %.1f s, decoded without an error", edge.Name, video.Count, video.Last-video.First)
}
