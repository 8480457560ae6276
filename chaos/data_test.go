package chaos

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"peer/chaos/avtest"
	"peer/chaos/procs"
	"peer/cmd/peerload/loadclient"
)

// TestPlayAnywhere publishes at one node and plays RTMP, HTTP-FLV and HLS at the others;
// the HLS playlist and segments are the same whichever node serves them; a second
// publisher at another node is refused.
func TestPlayAnywhere(t *testing.T) {
	avtest.RequireTools(t)
	// One replica: of n2 and n3 one is a replica and the other a pure edge.
	c, _ := startCluster(t, 3, func(int) []string { return []string{"--hls-window", "3", "--replicas", "1"} })
	pub := publish(t, rtmpURL(c.Nodes[0], "live/any"))
	eventually(t, 15*time.Second, "the stream placed", func() bool {
		_, ok := assignment(c.Nodes[2], "live/any")
		return ok
	})
	// HLS first, on a fresh cluster: a node that holds nothing must start pulling for a
	// playlist request alone.
	t.Run("HLS@n2", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		for ctx.Err() == nil {
			if streams, err := avtest.Probe(ctx, hlsURL(c.Nodes[1], "live/any")); err == nil && len(streams) >= 2 {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatal("no HLS at n2")
	})
	for _, n := range c.Nodes[1:] {
		t.Run("RTMP@"+n.Name, func(t *testing.T) { avtest.CheckPlayable(t, rtmpURL(n, "live/any"), 0) })
		t.Run("FLV@"+n.Name, func(t *testing.T) { avtest.CheckPlayable(t, flvURL(n, "live/any"), 0) })
	}
	t.Run("SameHLS", func(t *testing.T) {
		a, _ := assignment(c.Nodes[0], "live/any")
		t.Logf("master %s, replicas %v, edges %v", a.Master, a.Replicas, a.Edges)
		var pl [3]string
		eventually(t, 40*time.Second, "identical full playlists on the master, a replica and an edge", func() bool {
			for i, n := range c.Nodes {
				pl[i] = get(hlsURL(n, "live/any"))
			}
			return pl[0] != "" && pl[0] == pl[1] && pl[1] == pl[2] && strings.Count(pl[0], "#EXTINF") == 3
		})
		for _, seg := range segments(pl[0]) {
			first := get("http://" + c.Nodes[0].HTTP + "/live/" + seg)
			for _, n := range c.Nodes[1:] {
				if other := get("http://" + n.HTTP + "/live/" + seg); first == "" || !bytes.Equal([]byte(first), []byte(other)) {
					t.Fatalf("segment %s differs between n1 and %s (%d vs %d bytes)", seg, n.Name, len(first), len(other))
				}
			}
		}
		b := c.Nodes[2]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if streams, err := avtest.Probe(ctx, hlsURL(b, "live/any")); err != nil || len(streams) < 2 {
			t.Fatalf("probe HLS at %s: %v %+v", b.Name, err, streams)
		}
	})
	t.Run("SecondPublisherRefused", func(t *testing.T) {
		second, err := avtest.Publish(rtmpURL(c.Nodes[2], "live/any"), avtest.PublishOptions{Duration: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer second.Stop()
		select {
		case <-second.Done():
		case <-time.After(15 * time.Second):
			t.Fatal("second publisher at another node was not refused")
		}
		if second.Err() == nil {
			t.Fatal("second publisher exited cleanly")
		}
		select {
		case <-pub.Done():
			t.Fatalf("first publisher stopped: %s", pub.Stderr)
		default:
		}
	})
}

// TestRelayedPublisherSurvivesMasterKill publishes through a node that is not the
// stream's master, SIGKILLs the master, and checks that the publisher never notices and
// a player on a surviving node keeps its connection and gets frames again.
func TestRelayedPublisherSurvivesMasterKill(t *testing.T) {
	avtest.RequireTools(t)
	c, ingress := relayingCluster(t)
	pub := publish(t, rtmpURL(ingress, "live/relayed"))
	var a procs.Assignment
	eventually(t, 15*time.Second, "relayed stream placed", func() bool {
		var ok bool
		a, ok = assignment(ingress, "live/relayed")
		return ok && len(a.Replicas) > 0
	})
	if a.Master == ingress.Name {
		t.Fatalf("stream mastered at the ingress despite --max-streams: %+v", a)
	}
	master := c.ByName(a.Master)
	watcher := c.Others(master.Name, ingress.Name)[0]
	res := playDuring(t, flvURL(watcher, "live/relayed"), 16*time.Second, func() {
		time.Sleep(5 * time.Second)
		master.Kill()
	})
	p := res.Players[0]
	t.Logf("FIGURE relayed publisher, master SIGKILL: player at %s max stall %v, %d video frames, media %.1fs over %v",
		watcher.Name, p.MaxGap.Round(time.Millisecond), p.VideoFrames, float64(p.LastTS-p.FirstTS)/1000, res.End.Sub(res.Start).Round(time.Second))
	if p.Disconnected || p.Backwards || p.Skips > 0 || p.VideoFrames < 100 || p.LastTS-p.FirstTS < 10000 {
		t.Fatalf("player did not ride through the failover: %+v", p)
	}
	select {
	case <-pub.Done():
		t.Fatalf("the publisher noticed the master's death: %v %s", pub.Err(), pub.Stderr)
	default:
	}
}

// TestPublisherReconnectsAfterMasterKill: the master held the publisher's own
// connection; after its SIGKILL the publisher reconnects through another node and is
// accepted at once, and players on surviving nodes resume without reconnecting.
func TestPublisherReconnectsAfterMasterKill(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 3, nil)
	master := c.Nodes[0]
	pub := publish(t, rtmpURL(master, "live/direct"))
	eventually(t, 15*time.Second, "stream placed at n1 with replicas", func() bool {
		a, ok := assignment(c.Nodes[1], "live/direct")
		return ok && a.Master == master.Name && len(a.Replicas) == 2
	})
	var reconnected time.Duration
	res := playDuring(t, flvURL(c.Nodes[2], "live/direct"), 18*time.Second, func() {
		time.Sleep(5 * time.Second)
		master.Kill()
		pub.Stop()
		killed := time.Now()
		// The publisher (like OBS) reconnects through any other node.
		for time.Since(killed) < 8*time.Second {
			attempt := time.Since(killed)
			p2, err := avtest.Publish(rtmpURL(c.Nodes[1], "live/direct"), avtest.PublishOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(p2.Stop)
			select {
			case <-p2.Done():
				time.Sleep(200 * time.Millisecond)
				continue // refused: the cluster has not noticed yet
			case <-time.After(2 * time.Second):
			}
			reconnected = attempt
			return
		}
		t.Error("publisher could not reconnect through a surviving node")
	})
	p := res.Players[0]
	t.Logf("FIGURE publisher reconnect after master SIGKILL: the attempt made %v after the kill was accepted; player max stall %v, %d frames",
		reconnected.Round(time.Millisecond), p.MaxGap.Round(time.Millisecond), p.VideoFrames)
	if p.Disconnected || p.Backwards || p.Skips > 0 || p.LastTS-p.FirstTS < 10000 {
		t.Fatalf("player on a surviving node did not resume: %+v", p)
	}
}

// playDuring plays url with one in-repo client for d while during runs.
func playDuring(t *testing.T, url string, d time.Duration, during func()) *loadclient.Result {
	t.Helper()
	done := make(chan *loadclient.Result, 1)
	go func() {
		res, err := loadclient.Run(context.Background(), loadclient.Config{URL: url, Players: 1, Duration: d})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	during()
	res := <-done
	if res == nil || len(res.Players) != 1 {
		t.FailNow()
	}
	return res
}

func get(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return ""
	}
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func segments(playlist string) []string {
	var out []string
	for _, l := range strings.Split(playlist, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestFullNodeRedirects: a node serving --max-players already sends new HTTP players to
// another node of the stream with a 302, the same one for the same client.
func TestFullNodeRedirects(t *testing.T) {
	avtest.RequireTools(t)
	c, _ := startCluster(t, 3, func(i int) []string {
		if i == 1 {
			return []string{"--max-players", "1"}
		}
		return nil
	})
	publish(t, rtmpURL(c.Nodes[0], "live/full"))
	full := c.Nodes[1]
	eventually(t, 15*time.Second, "the stream placed", func() bool { _, ok := assignment(full, "live/full"); return ok })
	first, err := http.Get(flvURL(full, "live/full"))
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first player: %v %v", err, first)
	}
	defer first.Body.Close()
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var locations []string
	for range 2 {
		var resp *http.Response
		eventually(t, 10*time.Second, "a redirect from the full node", func() bool {
			var err error
			resp, err = noFollow.Get(flvURL(full, "live/full"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusFound
		})
		locations = append(locations, resp.Header.Get("Location"))
	}
	if locations[0] == "" || locations[0] != locations[1] || strings.Contains(locations[0], full.HTTP) {
		t.Fatalf("redirects not sticky to another node: %v", locations)
	}
	avtest.CheckPlayable(t, locations[0], 0)
}
