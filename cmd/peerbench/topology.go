package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"peer/cmd/peerload/loadclient"
)

// latencyResult is one player's glass-to-glass latency series.
type latencyResult struct {
	Round   int       `json:"round"` // 1, and more with --lat-rounds
	Server  string    `json:"server"`
	Set     string    `json:"player_set"` // setNginx | setAll
	Path    string    `json:"path"`       // direct | hop
	Proto   string    `json:"protocol"`
	Node    string    `json:"node"`
	Samples []float64 `json:"samples_ms"`
	N       int       `json:"samples"`
	P50     float64   `json:"p50_ms"`
	P99     float64   `json:"p99_ms"`
	Max     float64   `json:"max_ms"`
	Discon  int       `json:"disconnects"`
	Err     string    `json:"error,omitempty"`
	// Extra is, for a player behind a hop, how much later than the direct player of the
	// same protocol it received each frame both got: the hop's own cost, without the
	// publisher-side jitter both share.
	Extra    []float64 `json:"extra_vs_direct_ms,omitempty"`
	ExtraP50 float64   `json:"extra_p50_ms"`
	ExtraP99 float64   `json:"extra_p99_ms"`
}

// ttffResult is one protocol's sequential-connect TTFF series.
type ttffResult struct {
	Server  string    `json:"server"`
	Proto   string    `json:"protocol"`
	Samples []float64 `json:"samples_ms"`
	Failed  int       `json:"failed"`
	LastErr string    `json:"last_error,omitempty"`
}

func (t ttffResult) p(q float64) float64 { return loadclient.Percentile(t.Samples, q) }

type latPlayer struct {
	path, proto, node string
	p                 *synthPlayer
}

// The player sets of the latency measurement.
const (
	setNginx = "rtmp direct + edge"   // what nginx is measured with: the hop comparison
	setAll   = "every path and proto" // peer only: HTTP-FLV and the replica too
)

// measureLatency runs the players for d against an already running synthetic
// publisher and turns what they received into latency series. Frames sent within the
// first warmup after a player started are left out: they include the GOP burst.
// runLatency measures, then stops the players (stop, which ends the synthetic publisher
// too when pubDone is not nil, then waits for it and each player) and logs the results.
func runLatency(ctx context.Context, server, set string, players []latPlayer, d, warmup time.Duration, stop context.CancelFunc, pubDone <-chan struct{}) []latencyResult {
	res := measureLatency(ctx, server, set, players, d, warmup)
	stop()
	if pubDone != nil {
		<-pubDone
	}
	for _, lp := range players {
		<-lp.p.done
	}
	for _, r := range res {
		logf("  %s %s %s at %s: p50 %.1f ms p99 %.1f ms (%d samples) %s", server, r.Path, r.Proto, r.Node, r.P50, r.P99, r.N, r.Err)
	}
	return res
}

func measureLatency(ctx context.Context, server, set string, players []latPlayer, d, warmup time.Duration) []latencyResult {
	sleep(ctx, d)
	frames := make([][]recv, len(players))
	direct := map[string]map[uint32]time.Time{} // protocol -> seq -> receive time at the direct player
	for i, lp := range players {
		frames[i], _, _ = lp.p.snapshot()
		if lp.path == "direct" {
			at := map[uint32]time.Time{}
			for _, f := range frames[i] {
				at[f.Seq] = f.At
			}
			direct[lp.proto] = at
		}
	}
	var out []latencyResult
	for i, lp := range players {
		_, disc, _ := lp.p.snapshot()
		r := latencyResult{Server: server, Set: set, Path: lp.path, Proto: lp.proto, Node: lp.node, Discon: len(disc)}
		from := lp.p.start.Add(warmup)
		r.Samples = latencies(frames[i], from)
		r.N = len(r.Samples)
		if r.N == 0 {
			r.Err = "no frames received"
			if len(disc) > 0 {
				r.Err += ": " + disc[0].Err
			}
		} else {
			r.P50, r.P99, r.Max = loadclient.Percentile(r.Samples, 50), loadclient.Percentile(r.Samples, 99), loadclient.Percentile(r.Samples, 100)
		}
		if at, ok := direct[lp.proto]; ok && lp.path != "direct" {
			for _, f := range frames[i] {
				if d, ok := at[f.Seq]; ok && !f.Sent.Before(from) {
					r.Extra = append(r.Extra, float64(f.At.Sub(d))/float64(time.Millisecond))
				}
			}
			r.ExtraP50, r.ExtraP99 = loadclient.Percentile(r.Extra, 50), loadclient.Percentile(r.Extra, 99)
		}
		out = append(out, r)
	}
	return out
}

// runPeerTopology: a 3-node peer cluster with --replicas 1. Latency: synthetic
// publisher at n1, RTMP and HTTP-FLV players at n1 (direct), at the edge (one hop,
// pull) and at the replica (one hop, forwarded copy). TTFF: the clip published at n1, sequential connects at n1.
// Rounds after the first (--lat-rounds) measure only the hop comparison with nginx.
func runPeerTopology(ctx context.Context, c *cli, ps *procs, b *bins, dir string, clip clipInfo, avcc []byte, rep *report, round int) error {
	tdir := filepath.Join(dir, fmt.Sprintf("peer-topology-%d", round))
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return err
	}
	// Three nodes with --replicas 1, as nginx's origin pushes to one replica: the
	// publishing node n1 masters the stream, one node gets forwarded copies (replica),
	// the third pulls when a player arrives (edge).
	nodes, err := startPeerCluster(ctx, ps, b.peer, tdir, 3, func(int) []string { return []string{"--replicas", "1"} })
	defer func() {
		for _, n := range nodes {
			n.p.stop(6 * time.Second)
		}
	}()
	if err != nil {
		return err
	}
	n1 := nodes[0]
	logf("peer 3-node cluster up (--replicas 1): n1 %s, n2 %s, n3 %s", n1.rtmp, nodes[1].rtmp, nodes[2].rtmp)
	if c.part("latency") {
		pctx, cancel := context.WithCancel(ctx)
		pub := startSynthPublisher(pctx, []string{n1.rtmp}, "live", "lat", avcc)
		var replica, edge *peerNode
		err := waitFor(ctx, 10*time.Second, "the synthetic stream at n1 with a replica", func() bool {
			if !publishing(n1.base(), "live/lat") {
				return false
			}
			a, ok := assignment(n1, "live/lat")
			if !ok || a.Master != n1.nodeName || len(a.Replicas) != 1 {
				return false
			}
			replica = byName(nodes, a.Replicas[0])
			for _, n := range nodes[1:] {
				if n != replica {
					edge = n
				}
			}
			return replica != nil && edge != nil
		})
		if err != nil {
			cancel()
			return err
		}
		// First the players nginx gets, an RTMP player at the master and one at the edge,
		// so that the hop comparison runs with the same work on the servers and in this
		// process (whose receive times are the measurement); then every protocol and path.
		logf("latency: synthetic publisher at n1; RTMP players at n1 (master) and %s (edge), as for nginx, for %v", edge.nodeName, c.LatDuration)
		sctx, stopSet := context.WithCancel(pctx)
		players := []latPlayer{
			{"direct", "rtmp", "n1", startSynthPlayer(sctx, "rtmp", n1.rtmp, "live", "lat", false, 5*time.Second)},
			{"hop", "rtmp", edge.nodeName + " (edge)", startSynthPlayer(sctx, "rtmp", edge.rtmp, "live", "lat", false, 5*time.Second)},
		}
		sleep(ctx, 2*time.Second)
		if a, ok := assignment(n1, "live/lat"); ok {
			rep.PeerLatTopology = fmt.Sprintf("live/lat: master %s, replicas %v, edges %v", a.Master, a.Replicas, a.Edges)
			if !slicesContains(a.Edges, edge.nodeName) {
				rep.PeerLatTopology += fmt.Sprintf(" (WARNING: %s is not listed as an edge)", edge.nodeName)
			}
		}
		rep.addLatency(round, runLatency(ctx, "peer", setNginx, players, c.LatDuration-2*time.Second, c.LatWarmup, stopSet, nil))
		if round > 1 {
			cancel()
			<-pub.done
			return nil
		}
		d := max(c.LatDuration/2, 5*time.Second)
		logf("latency: RTMP+HTTP-FLV players at n1 (master), %s (replica), %s (edge) for %v", replica.nodeName, edge.nodeName, d)
		players = []latPlayer{
			{"direct", "rtmp", "n1", startSynthPlayer(pctx, "rtmp", n1.rtmp, "live", "lat", false, 5*time.Second)},
			{"direct", "http-flv", "n1", startSynthPlayer(pctx, "http-flv", n1.http, "live", "lat", false, 5*time.Second)},
			{"hop", "rtmp", edge.nodeName + " (edge)", startSynthPlayer(pctx, "rtmp", edge.rtmp, "live", "lat", false, 5*time.Second)},
			{"hop", "http-flv", edge.nodeName + " (edge)", startSynthPlayer(pctx, "http-flv", edge.http, "live", "lat", false, 5*time.Second)},
			{"replica", "rtmp", replica.nodeName + " (replica)", startSynthPlayer(pctx, "rtmp", replica.rtmp, "live", "lat", false, 5*time.Second)},
			{"replica", "http-flv", replica.nodeName + " (replica)", startSynthPlayer(pctx, "http-flv", replica.http, "live", "lat", false, 5*time.Second)},
		}
		sleep(ctx, 2*time.Second)
		rep.addLatency(round, runLatency(ctx, "peer", setAll, players, d-2*time.Second, c.LatWarmup, cancel, pub.done))
	}
	if c.part("ttff") {
		pub, err := startClipPublisher(ps, tdir, "ttff-peer", clip.path, "rtmp://"+n1.rtmp+"/live/bench")
		if err != nil {
			return err
		}
		defer pub.stop(3 * time.Second)
		if err := waitFor(ctx, 15*time.Second, "the clip at n1", func() bool {
			return !pub.running() || publishing(n1.base(), "live/bench")
		}); err != nil {
			return err
		}
		sleep(ctx, 3*time.Second)
		// The other nodes package HLS on demand: the first request at each waits for the
		// segment in progress (a replica's asleep copy, or a pull the request starts).
		cold := ttffResult{Server: "peer", Proto: "hls-cold"}
		for _, n := range nodes[1:] {
			d, err := hlsFirst(ctx, "http://"+n.http+"/live/bench.m3u8", 10*time.Second)
			if err != nil {
				cold.Failed++
				cold.LastErr = err.Error()
				continue
			}
			cold.Samples = append(cold.Samples, float64(d)/float64(time.Millisecond))
		}
		logf("TTFF: peer HLS, first request at n2, n3: %v ms %s", cold.Samples, cold.LastErr)
		rep.TTFF = append(rep.TTFF, cold)
		rep.TTFF = append(rep.TTFF, ttffSeries(ctx, "peer", "rtmp", "rtmp://"+n1.rtmp+"/live/bench", c.TTFFConnects, c.TTFFJitter))
		rep.TTFF = append(rep.TTFF, ttffSeries(ctx, "peer", "http-flv", "http://"+n1.http+"/live/bench.flv", c.TTFFConnects, c.TTFFJitter))
		rep.TTFF = append(rep.TTFF, hlsSeries(ctx, "peer", "http://"+n1.http+"/live/bench.m3u8", c.TTFFConnects))
	}
	return nil
}

// runNginxTopology: nginx-rtmp origin (push to a replica, hls on in app live), replica,
// and an edge that pulls from the origin; the same measurements as runPeerTopology,
// then one failover run (origin SIGKILL) of the static topology. Rounds after the first
// (--lat-rounds) measure only latency.
func runNginxTopology(ctx context.Context, c *cli, ps *procs, dir string, clip clipInfo, avcc []byte, rep *report, round int) error {
	tdir := filepath.Join(dir, fmt.Sprintf("nginx-topology-%d", round))
	apps := []string{"live", "lat"}
	var insts []*nginxInst
	defer func() {
		for i := len(insts) - 1; i >= 0; i-- {
			insts[i].p.stop(6 * time.Second)
		}
	}()
	replica, err := startNginx(ctx, ps, tdir, nginxOpts{role: "replica", apps: apps, worker: c.NginxWorkers})
	if err != nil {
		return err
	}
	insts = append(insts, replica)
	origin, err := startNginx(ctx, ps, tdir, nginxOpts{role: "origin", apps: apps, hls: true, push: []string{replica.rtmp}, worker: c.NginxWorkers})
	if err != nil {
		return err
	}
	insts = append(insts, origin)
	edge, err := startNginx(ctx, ps, tdir, nginxOpts{role: "edge", apps: apps, pull: origin.rtmp, worker: c.NginxWorkers})
	if err != nil {
		return err
	}
	insts = append(insts, edge)
	logf("nginx topology up: origin %s (push -> replica %s, hls http %s), edge %s (pull <- origin)", origin.rtmp, replica.rtmp, origin.http, edge.rtmp)
	if c.part("latency") {
		pctx, cancel := context.WithCancel(ctx)
		pub := startSynthPublisher(pctx, []string{origin.rtmp}, "lat", "lat", avcc)
		err := waitFor(ctx, 10*time.Second, "the synthetic publisher to connect to nginx", pub.isConnected)
		if err != nil {
			cancel()
			return err
		}
		sleep(ctx, 500*time.Millisecond)
		logf("latency: synthetic publisher at the nginx origin; RTMP players at origin and edge for %v", c.LatDuration)
		players := []latPlayer{
			{"direct", "rtmp", "origin", startSynthPlayer(pctx, "rtmp", origin.rtmp, "lat", "lat", false, 5*time.Second)},
			{"hop", "rtmp", "edge", startSynthPlayer(pctx, "rtmp", edge.rtmp, "lat", "lat", false, 5*time.Second)},
		}
		rep.addLatency(round, runLatency(ctx, "nginx", setNginx, players, c.LatDuration, c.LatWarmup, cancel, pub.done))
	}
	if round > 1 {
		return nil
	}
	if c.part("ttff") {
		url := "rtmp://" + origin.rtmp + "/live/bench"
		pub, err := startClipPublisher(ps, tdir, "ttff-nginx", clip.path, url)
		if err != nil {
			return err
		}
		defer pub.stop(3 * time.Second)
		if err := waitPlayable(ctx, url, 15*time.Second, pub); err != nil {
			return err
		}
		sleep(ctx, 3*time.Second)
		rep.TTFF = append(rep.TTFF, ttffSeries(ctx, "nginx", "rtmp", url, c.TTFFConnects, c.TTFFJitter))
		rep.TTFF = append(rep.TTFF, hlsSeries(ctx, "nginx", "http://"+origin.http+"/hls/bench.m3u8", c.TTFFConnects))
		pub.stop(3 * time.Second)
	}
	if c.part("failover") {
		r, err := nginxFailover(ctx, c, origin, replica, edge, avcc)
		if err != nil {
			return err
		}
		rep.NginxFailover = &r
	}
	return nil
}

func ttffSeries(ctx context.Context, server, proto, url string, n int, jitter time.Duration) ttffResult {
	logf("TTFF: %s %s, %d sequential connects", server, proto, n)
	ms, failed, lastErr := ttffProbe(ctx, url, n, jitter)
	r := ttffResult{Server: server, Proto: proto, Samples: ms, Failed: failed, LastErr: lastErr}
	logf("  p50 %.1f ms p99 %.1f ms (%d failed) %s", r.p(50), r.p(99), failed, lastErr)
	return r
}

// hlsSeries: n sequential "players", each from requesting the playlist to having all
// bytes of the first segment it lists. A player that finds no segment yet polls the
// playlist every 100 ms, as a player would (bounded by 10 s).
func hlsSeries(ctx context.Context, server, playlist string, n int) ttffResult {
	logf("TTFF: %s HLS, %d sequential connects (%s)", server, n, playlist)
	r := ttffResult{Server: server, Proto: "hls"}
	// Wait (not timed) until the stream has a playlist with a segment at all.
	waitFor(ctx, 15*time.Second, "an HLS playlist with a segment", func() bool {
		_, err := hlsFirst(ctx, playlist, 2*time.Second)
		return err == nil
	})
	for i := 0; i < n && ctx.Err() == nil; i++ {
		d, err := hlsFirst(ctx, playlist, 10*time.Second)
		if err != nil {
			r.Failed++
			r.LastErr = err.Error()
		} else {
			r.Samples = append(r.Samples, float64(d)/float64(time.Millisecond))
		}
		sleep(ctx, 50*time.Millisecond)
	}
	logf("  p50 %.1f ms p99 %.1f ms (%d failed) %s", r.p(50), r.p(99), r.Failed, r.LastErr)
	return r
}

var hlsClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func hlsFirst(ctx context.Context, playlist string, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	u := playlist
	for hops := 0; time.Now().Before(deadline) && ctx.Err() == nil; {
		seg, err := firstURI(ctx, u)
		if err == nil && strings.Contains(strings.ToLower(strings.SplitN(seg, "?", 2)[0]), ".m3u8") && hops < 3 {
			u, hops = seg, hops+1 // master playlist: follow the first variant
			continue
		}
		if err == nil && seg != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, seg, nil)
			resp, err := hlsClient.Do(req)
			if err != nil {
				return 0, err
			}
			n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<20))
			resp.Body.Close()
			if err != nil {
				return 0, err
			}
			if resp.StatusCode != 200 || n == 0 {
				return 0, fmt.Errorf("segment %s: %s, %d bytes", seg, resp.Status, n)
			}
			return time.Since(start), nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return 0, fmt.Errorf("no segment in %s within %v", playlist, limit)
}

// firstURI fetches a playlist and returns its first URI line, resolved.
func firstURI(ctx context.Context, playlist string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, playlist, nil)
	resp, err := hlsClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("playlist: %s", resp.Status)
	}
	base, _ := url.Parse(playlist)
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		ref, err := url.Parse(l)
		if err != nil {
			return "", err
		}
		return base.ResolveReference(ref).String(), nil
	}
	return "", nil
}
