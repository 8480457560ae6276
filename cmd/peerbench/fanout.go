package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"peer/cmd/peerload/loadclient"
)

// fanoutSeries is one server × protocol run over every N step.
type fanoutSeries struct {
	Server         string       `json:"server"`
	Proto          string       `json:"protocol"`
	BaselineRSSKiB float64      `json:"baseline_rss_kib"`
	Steps          []stepResult `json:"steps"`
	PublisherAlive bool         `json:"publisher_alive_at_end"`
	Err            string       `json:"error,omitempty"`
}

// maxFullRate is the largest N whose players were all (>= 99%) at full rate.
func (s *fanoutSeries) maxFullRate() int {
	best := 0
	for _, st := range s.Steps {
		if fullRateOK(st) {
			best = max(best, st.Players)
		}
	}
	return best
}

// fullRateOK: at least 99% of the requested players at full rate and none disconnected.
func fullRateOK(st stepResult) bool {
	return st.Load.FullRate*100 >= st.Players*99 && st.Load.Disconnects == 0
}

func (s *fanoutSeries) step(n int) *stepResult {
	for i := range s.Steps {
		if s.Steps[i].Players == n {
			return &s.Steps[i]
		}
	}
	return nil
}

// startClipPublisher runs ffmpeg publishing the clip in a loop, no re-encoding.
func startClipPublisher(ps *procs, dir, tag, clipPath, url string) (*proc, error) {
	return ps.start("ffmpeg "+tag, filepath.Join(dir, "ffmpeg-"+tag+".log"), nil, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-stream_loop", "-1", "-i", clipPath, "-c", "copy", "-f", "flv", url)
}

// waitPlayable waits until one RTMP probe gets a first frame from url.
func waitPlayable(ctx context.Context, url string, timeout time.Duration, pub *proc) error {
	deadline := time.Now().Add(timeout)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if !pub.running() {
			return fmt.Errorf("publisher exited: %v", pub.err)
		}
		ms, _, _ := ttffProbe(ctx, url, 1, 0)
		if len(ms) == 1 {
			return nil
		}
		sleep(ctx, 300*time.Millisecond)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("stream %s not playable within %v", url, timeout)
}

func runFanout(ctx context.Context, c *cli, ps *procs, b *bins, dir string, clip clipInfo, rep *report) error {
	maxN := 0
	for _, n := range c.Players {
		maxN = max(maxN, n)
	}
	// peer: one node, HTTP-FLV then RTMP players; then, at the largest N only, a node
	// with merged writes (the SRS mw_latency trade: fewer writes, more latency).
	// Each protocol gets a fresh node: memory the runtime took for one protocol's players
	// and has not given back yet would otherwise count as the next protocol's RSS per
	// player (nginx serves RTMP only, on its own instance).
	if c.has("peer") {
		for _, proto := range []string{"http-flv", "rtmp"} {
			runSeries(ctx, c, ps, b, dir, clip, rep, "peer", c.Players, func() (*fanTarget, error) {
				return startPeerTarget(ctx, ps, b, dir, clip, "peer", maxN, proto)
			})
		}
		for _, w := range c.mergeWindows() {
			for _, proto := range []string{"http-flv", "rtmp"} {
				runSeries(ctx, c, ps, b, dir, clip, rep, mergeServer(w), []int{maxN}, func() (*fanTarget, error) {
					return startPeerTarget(ctx, ps, b, dir, clip, mergeServer(w), maxN, proto, "--merge-write", w.String())
				})
			}
		}
	}
	// nginx-rtmp: one instance, RTMP players (it has no HTTP-FLV).
	if c.has("nginx") {
		runSeries(ctx, c, ps, b, dir, clip, rep, "nginx", c.Players, func() (*fanTarget, error) {
			return startNginxTarget(ctx, c, ps, dir, clip)
		})
	}
	if c.has("peer") && c.has("nginx") && c.Rounds > 0 {
		runRounds(ctx, c, ps, b, dir, clip, rep, maxN)
	}
	return ctx.Err()
}

// fanTarget is a server ready for fan-out load: its processes, the clip publisher
// feeding it, a player URL per protocol and its RSS before any player.
type fanTarget struct {
	name        string // series name: peer, peer-merge-100ms, nginx
	srv         server
	metricsBase string // peer's HTTP base for /metrics; "" for nginx
	pub         *proc
	urls        map[string]string // protocol -> player URL, in the order measured
	protos      []string
	baseline    float64
	stop        func()
}

// peerHLSFull is how long a peer node's HLS window of the defaults takes to fill.
const peerHLSFull = 24 * time.Second

// startPeerTarget runs one peer node (with extra flags) and the clip publisher; its
// series measure proto ("": HTTP-FLV and RTMP).
func startPeerTarget(ctx context.Context, ps *procs, b *bins, dir string, clip clipInfo, name string, maxN int, proto string, extra ...string) (*fanTarget, error) {
	args := append([]string{"--replicas", "0", "--max-connections", fmt.Sprint(maxN + 200)}, extra...)
	node, err := startPeer(ctx, ps, b.peer, dir, "fan-"+name, "", args...)
	if err != nil {
		return nil, err
	}
	t := &fanTarget{name: name, srv: node, metricsBase: node.base(), protos: []string{"http-flv", "rtmp"},
		urls: map[string]string{"http-flv": "http://" + node.http + "/live/bench.flv", "rtmp": "rtmp://" + node.rtmp + "/live/bench"}}
	if proto != "" {
		t.protos = []string{proto}
	}
	t.stop = func() { node.p.stop(6 * time.Second) }
	pub, err := startClipPublisher(ps, dir, "fan-"+name, clip.path, t.urls["rtmp"])
	if err != nil {
		t.stop()
		return nil, err
	}
	t.pub = pub
	t.stop = func() { pub.stop(3 * time.Second); node.p.stop(6 * time.Second) }
	if err := waitFor(ctx, 15*time.Second, "the stream to be published", func() bool {
		return !pub.running() || publishing(node.base(), "live/bench")
	}); err != nil {
		t.stop()
		return nil, err
	}
	if !pub.running() {
		t.stop()
		return nil, fmt.Errorf("ffmpeg publisher exited: %v", pub.err)
	}
	return t, t.settle(ctx, fmt.Sprintf("pid %d", node.p.pid()))
}

// startNginxTarget runs one nginx-rtmp instance and the clip publisher.
func startNginxTarget(ctx context.Context, c *cli, ps *procs, dir string, clip clipInfo) (*fanTarget, error) {
	ng, err := startNginx(ctx, ps, dir, nginxOpts{role: "fanout", apps: []string{"live"}, worker: c.NginxWorkers})
	if err != nil {
		return nil, err
	}
	url := "rtmp://" + ng.rtmp + "/live/bench"
	t := &fanTarget{name: "nginx", srv: ng, protos: []string{"rtmp"}, urls: map[string]string{"rtmp": url}}
	t.stop = func() { ng.p.stop(6 * time.Second) }
	pub, err := startClipPublisher(ps, dir, "fan-nginx", clip.path, url)
	if err != nil {
		t.stop()
		return nil, err
	}
	t.pub = pub
	t.stop = func() { pub.stop(3 * time.Second); ng.p.stop(6 * time.Second) }
	if err := waitPlayable(ctx, url, 15*time.Second, pub); err != nil {
		t.stop()
		return nil, err
	}
	return t, t.settle(ctx, fmt.Sprintf("pids %v", ng.pids()))
}

// settle waits for a full GOP in the server's cache (nginx) or until peer's HLS window
// is full, and then takes the RSS baseline: a stream's master packages HLS, and its
// window (6 segments of 2 s, 3 more kept after they expire, a spare buffer or two, the
// open one) takes about 20 s to fill; taken sooner, the baseline charged players with
// the stream's HLS memory, megabytes that grew during the steps.
func (t *fanTarget) settle(ctx context.Context, pids string) error {
	wait := 3 * time.Second
	if t.metricsBase != "" {
		wait = peerHLSFull
	}
	logf("fan-out %s %s: publisher up; waiting %v", t.name, pids, wait)
	err := sleep(ctx, wait)
	if err == nil {
		t.baseline, err = treeRSS(t.srv.pids())
	}
	if err != nil {
		t.stop()
	}
	return err
}

// runSeries starts a target and measures each of its protocols at every player count,
// one series each; a target that fails to start is recorded as a failed series.
func runSeries(ctx context.Context, c *cli, ps *procs, b *bins, dir string, clip clipInfo, rep *report, name string, players []int, start func() (*fanTarget, error)) {
	t, err := start()
	if err != nil {
		if ctx.Err() == nil {
			rep.Fanout = append(rep.Fanout, fanoutSeries{Server: name, Proto: "rtmp", Err: err.Error()})
			logf("fan-out %s failed: %v", name, err)
		}
		return
	}
	defer t.stop()
	for _, proto := range t.protos {
		s := fanoutSeries{Server: name, Proto: proto, BaselineRSSKiB: t.baseline}
		for _, n := range players {
			st, err := t.step(ctx, c, ps, b, dir, clip, rep, proto, n, name+"-"+proto)
			if err != nil {
				s.Err = err.Error()
				break
			}
			s.Steps = append(s.Steps, st)
		}
		s.PublisherAlive = t.pub.running()
		rep.Fanout = append(rep.Fanout, s)
		if ctx.Err() != nil {
			return
		}
	}
}

// step settles, then measures n players of proto against t.
func (t *fanTarget) step(ctx context.Context, c *cli, ps *procs, b *bins, dir string, clip clipInfo, rep *report, proto string, n int, tag string) (stepResult, error) {
	if err := sleep(ctx, c.Settle); err != nil {
		return stepResult{}, err
	}
	st, err := loadStep(ctx, c, ps, t.srv, t.metricsBase, t.pub, b.load, t.urls[proto], n, t.baseline, clip.tagsPerS, rep.TCPGbps, dir, tag)
	if err == nil {
		logf("  %s %s %d players: %d full rate, %.0f Mbit/s, server CPU %.0f%%", t.name, proto, n, st.Load.FullRate, st.Load.Mbps, st.ServerCPUPct)
	}
	return st, err
}

// loadStep runs peerload with n players and samples the server around it. The steady
// window starts 2 s after the ramp ends and stops 1 s before the step does, so connect
// bursts and teardown stay out of the per-player-minute and allocation figures.
// metricsBase is the peer node's HTTP base for go_memstats_mallocs_total ("" for nginx).
func loadStep(ctx context.Context, c *cli, ps *procs, srv server, metricsBase string, pub *proc, loadBin, url string, n int,
	baselineRSS, tagsPerS, tcpGbps float64, dir, tag string) (stepResult, error) {
	st := stepResult{Players: n}
	logf("step: %s %d players for %v (ramp %v)", tag, n, c.Duration, c.Ramp)
	cpuStart, err := treeCPU(srv.pids())
	if err != nil {
		return st, err
	}
	var out strings.Builder
	start := time.Now()
	logPath := filepath.Join(dir, fmt.Sprintf("peerload-%s-%d.log", tag, n))
	load, err := ps.start("peerload", logPath, &out, loadBin,
		"--url", url, "-n", fmt.Sprint(n), "--duration", c.Duration.String(), "--ramp", c.Ramp.String(), "--json")
	if err != nil {
		return st, err
	}
	t0, t1 := start.Add(c.Ramp+2*time.Second), start.Add(c.Duration-time.Second)
	if err := sleepUntil(ctx, t0); err != nil {
		load.stop(3 * time.Second)
		return st, err
	}
	pids := srv.pids() // nginx workers are stable for the step
	// CPU and the window's wall clock are read together: the /metrics scrape of an
	// overloaded server can take seconds and must not fall between them.
	cpu0, err0 := treeCPU(pids)
	w0 := time.Now()
	hb0, ht0 := hostCPU()
	var m0, m1 float64
	var errm0, errm1 error = fmt.Errorf("no metrics"), fmt.Errorf("no metrics")
	if metricsBase != "" {
		m0, errm0 = metric(metricsBase, "go_memstats_mallocs_total")
	}
	// RSS is sampled once a second through the window: one instant is noisy because the
	// Go heap breathes with the GC cycle.
	var rssSamples []float64
	for next := w0.Add(time.Second); next.Before(t1); next = next.Add(time.Second) {
		if err := sleepUntil(ctx, next); err != nil {
			load.stop(3 * time.Second)
			return st, err
		}
		if v, err := treeRSS(pids); err == nil {
			rssSamples = append(rssSamples, v)
		}
	}
	if err := sleepUntil(ctx, t1); err != nil {
		load.stop(3 * time.Second)
		return st, err
	}
	cpu1, err1 := treeCPU(pids)
	w1 := time.Now()
	hb1, ht1 := hostCPU()
	if ht1 > ht0 {
		st.HostCPUPct = 100 * (hb1 - hb0) / (ht1 - ht0)
	}
	rss, errr := treeRSS(pids)
	if metricsBase != "" {
		m1, errm1 = metric(metricsBase, "go_memstats_mallocs_total")
	}
	rssSamples = append(rssSamples, rss)
	if err := firstErr(err0, err1, errr); err != nil {
		load.stop(3 * time.Second)
		return st, fmt.Errorf("sampling the server (did it exit?): %w", err)
	}
	// peerload ends itself at --duration; give it time to print, then stop it.
	select {
	case <-load.done:
	case <-time.After(c.Duration + 30*time.Second - time.Since(start)):
		load.stop(3 * time.Second)
		st.Note = "peerload overran and was stopped"
	case <-ctx.Done():
		load.stop(3 * time.Second)
		return st, ctx.Err()
	}
	cpuEnd, _ := treeCPU(pids)
	if ps := load.cmd.ProcessState; ps != nil {
		st.ClientCPUSec = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if err := json.Unmarshal([]byte(out.String()), &st.Load); err != nil {
		return st, fmt.Errorf("peerload output (%v): %w; see %s", load.err, err, logPath)
	}
	players := float64(max(st.Load.Connected, 1))
	st.WindowSec = w1.Sub(w0).Seconds()
	st.ServerCPUSec = cpu1 - cpu0
	st.ServerCPUStep = cpuEnd - cpuStart
	st.ServerCPUPct = 100 * st.ServerCPUSec / st.WindowSec
	st.CPUPerPlayerMin = st.ServerCPUSec / (players * st.WindowSec / 60)
	st.CPUPerPlayerAll = st.ServerCPUStep / (players * c.Duration.Seconds() / 60)
	st.RSSKiB = loadclient.Percentile(rssSamples, 50)
	st.RSSMaxKiB = loadclient.Percentile(rssSamples, 100)
	st.RSSPerPlayerKiB = (st.RSSKiB - baselineRSS) / players
	st.RSSMaxPerPlayerKiB = (st.RSSMaxKiB - baselineRSS) / players
	if errm0 == nil && errm1 == nil {
		st.Mallocs = m1 - m0
		st.DeliveredMsgs = players * tagsPerS * st.WindowSec
		st.AllocsPerMsg = st.Mallocs / st.DeliveredMsgs
	} else {
		st.AllocsPerMsg = -1
	}
	if tcpGbps > 0 {
		st.TCPFraction = st.Load.Mbps / (tcpGbps * 1000)
	}
	if !pub.running() {
		st.Note = strings.TrimSpace(st.Note + " publisher died")
	}
	if !srv.alive() {
		st.Note = strings.TrimSpace(st.Note + " server died")
	}
	return st, nil
}

// mergeServer names the fan-out series of a peer node run with --merge-write w.
func mergeServer(w time.Duration) string { return "peer-merge-" + w.String() }

// mergeWindows are the --merge-write windows measured besides peer's default (none).
func (c *cli) mergeWindows() []time.Duration {
	var ws []time.Duration
	for _, w := range c.MergeWrite {
		if w > 0 {
			ws = append(ws, w)
		}
	}
	return ws
}
