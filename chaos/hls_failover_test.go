package chaos

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
)

// TestHLSFailover: a publisher relayed through a node that does not master its stream;
// the master is killed and a replica promoted. The survivor's HLS playlist keeps one
// TARGETDURATION (RFC 8216 4.3.3.1), contiguous numbering, no segment under 0.5 s, and its
// segments hold video with no hole over 0.2 s. Before, the promotion lost the GOP in
// flight: a segment of EXTINF:0.000 and a hole of 1.2-2.0 s, and the target went 2 -> 3 -> 4.
// "awake": the survivor serves HLS before the kill; "asleep": nobody asked it for HLS
// before (its packager sleeps), and its first playlist must already list 3 segments.
func TestHLSFailover(t *testing.T) {
	avtest.RequireTools(t)
	t.Run("awake", func(t *testing.T) { hlsFailover(t, true) })
	t.Run("asleep", func(t *testing.T) { hlsFailover(t, false) })
}

func hlsFailover(t *testing.T, awake bool) {
	c, ingress := relayingCluster(t)
	publish(t, rtmpURL(ingress, "live/hlsfo"))
	a := relayedAssignment(t, ingress, "live/hlsfo")
	master := c.ByName(a.Master)
	survivor := c.Others(master.Name, ingress.Name)[0]
	dir := t.TempDir()
	durs := map[int64]float64{}
	targets := map[string]bool{}
	poll := func() {
		body := get(hlsURL(survivor, "live/hlsfo"))
		seq := int64(-1)
		sc := bufio.NewScanner(strings.NewReader(body))
		var dur float64
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
				targets[strings.TrimPrefix(line, "#EXT-X-TARGETDURATION:")] = true
			case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
				seq, _ = strconv.ParseInt(strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"), 10, 64)
			case strings.HasPrefix(line, "#EXTINF:"):
				dur, _ = strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ","), 64)
			case line != "" && !strings.HasPrefix(line, "#") && seq >= 0:
				if _, seen := durs[seq]; !seen {
					durs[seq] = dur
					seg := get("http://" + survivor.HTTP + "/live/" + strings.TrimPrefix(line, "/live/"))
					name := filepath.Join(dir, strconv.FormatInt(seq, 10)+".ts")
					if err := os.WriteFile(name, []byte(seg), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				seq++
			}
		}
	}
	if awake {
		eventually(t, 30*time.Second, "a playlist at the survivor", func() bool { poll(); return len(durs) >= 2 })
		for range 10 { // 5 s before the kill
			poll()
			time.Sleep(500 * time.Millisecond)
		}
	} else {
		eventually(t, 30*time.Second, "10 s of the stream's HLS at the master", func() bool {
			return len(segments(get(hlsURL(master, "live/hlsfo")))) >= 5
		})
	}
	master.Kill()
	if !awake {
		eventually(t, 30*time.Second, "a playlist at the survivor", func() bool { poll(); return len(durs) > 0 })
		if len(durs) < 3 {
			t.Errorf("the woken survivor's first playlist lists %d segments, want 3", len(durs))
		}
	}
	promoted := ""
	for range 40 { // 20 s after
		poll()
		if b, ok := assignment(survivor, "live/hlsfo"); ok && b.Master != master.Name {
			promoted = b.Master
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("FIGURE HLS failover at %s (master %s killed, %s promoted; replicas were %v): segments %v, targets %v",
		survivor.Name, master.Name, promoted, a.Replicas, durs, targets)
	if len(targets) != 1 {
		t.Errorf("TARGETDURATION changed: %v", targets)
	}
	var first, last int64 = -1, -1
	for seq, d := range durs {
		if first < 0 || seq < first {
			first = seq
		}
		last = max(last, seq)
		if d < 0.5 {
			t.Errorf("segment %d lasts %.3f s", seq, d)
		}
	}
	if int64(len(durs)) != last-first+1 {
		t.Errorf("numbering not contiguous: %d segments from %d to %d", len(durs), first, last)
	}
	// The segments in order, as one MPEG-TS: the video's largest step between frames.
	all := filepath.Join(dir, "all.ts")
	f, err := os.Create(all)
	if err != nil {
		t.Fatal(err)
	}
	for seq := first; seq <= last; seq++ {
		b, err := os.ReadFile(filepath.Join(dir, strconv.FormatInt(seq, 10)+".ts"))
		if err == nil {
			f.Write(b)
		}
	}
	f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pkts, err := avtest.Packets(ctx, all, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var prev, gap float64
	n := 0
	for _, p := range pkts {
		if p.CodecType != "video" {
			continue
		}
		s := p.Seconds()
		if n > 0 {
			gap = max(gap, s-prev)
		}
		prev, n = s, n+1
	}
	t.Logf("FIGURE HLS failover: %d video frames, largest step %.3f s", n, gap)
	if gap > 0.2 {
		t.Errorf("video hole of %.3f s", gap)
	}
}
