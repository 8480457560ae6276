// Command peerbench is the single-node fan-out benchmark (make bench; not a test).
//
// It pre-encodes a 60 s 640x360 25 fps H.264 (~1.9 Mbit/s) + AAC 96k clip with ffmpeg,
// starts one peer node on free loopback ports in 20000-29999, publishes the clip in a
// loop with `ffmpeg -re -stream_loop -1 -c copy` (no encoding during the run), and then:
//
//   - measures the loopback TCP ceiling (Go sender → receiver, 64 KiB writes, 3 s);
//   - probes time to first frame: 20 sequential single-player connects over RTMP and
//     over HTTP-FLV (in-process client);
//   - for each N in --players, runs peerload as a subprocess with N HTTP-FLV players for
//     --duration and samples the server's CPU (utime+stime, /proc/PID/stat), RSS
//     (VmRSS, /proc/PID/status) and go_memstats_mallocs_total (/metrics).
//
// Binaries: --peer and --peerload name prebuilt binaries; when empty, peerbench builds
// ./cmd/peer and ./cmd/peerload of the enclosing module with `go build` into its temp
// directory.
//
// Every process it starts runs in its own process group and is stopped by PID on exit,
// including after SIGINT/SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"peer/cmd/peerload/loadclient"
)

type cli struct {
	Peer         string        `help:"peer binary; empty: go build ./cmd/peer into the temp dir."`
	Peerload     string        `help:"peerload binary; empty: go build ./cmd/peerload into the temp dir."`
	Players      []int         `help:"Player counts, one load step each." default:"100,500,1000"`
	Duration     time.Duration `help:"Length of each load step." default:"20s"`
	Ramp         time.Duration `help:"Player start ramp within each step." default:"2s"`
	Settle       time.Duration `help:"Pause between steps so the server drops the previous players." default:"3s"`
	TTFFConnects int           `name:"ttff-connects" help:"Sequential single-player connects per protocol for TTFF." default:"20"`
	TCPTime      time.Duration `name:"tcp-time" help:"Length of the loopback TCP ceiling measurement." default:"3s"`
	Clip         string        `help:"Clip file to reuse (encoded there if missing); empty: encode into the temp dir."`
	Keep         bool          `help:"Keep the temp dir (logs, clip) after the run."`
	JSON         string        `name:"json" help:"Also write all results as JSON to this file."`
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("peerbench"), kong.Description("Single-node fan-out benchmark of peer (HTTP-FLV players, RTMP/HTTP-FLV TTFF)."))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, &c)
	stop()
	if err != nil && ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "peerbench: interrupted; every started process was stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerbench:", err)
		os.Exit(1)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.0"), fmt.Sprintf(format, a...))
}

// stepResult is one load step.
type stepResult struct {
	Players            int                `json:"players"`
	Load               loadclient.Summary `json:"load"`
	WindowSec          float64            `json:"window_seconds"`
	ServerCPUSec       float64            `json:"server_cpu_seconds_window"`
	ServerCPUStep      float64            `json:"server_cpu_seconds_step"`
	CPUPerPlayerMin    float64            `json:"server_cpu_s_per_player_minute"`
	CPUPerPlayerAll    float64            `json:"server_cpu_s_per_player_minute_step"`
	ServerCPUPct       float64            `json:"server_cpu_percent_window"`
	RSSKiB             float64            `json:"server_rss_kib_median"`
	RSSMaxKiB          float64            `json:"server_rss_kib_max"`
	RSSPerPlayerKiB    float64            `json:"server_rss_per_player_kib"`
	RSSMaxPerPlayerKiB float64            `json:"server_rss_per_player_kib_max"`
	Mallocs            float64            `json:"server_mallocs_window"`
	DeliveredMsgs      float64            `json:"delivered_messages_window_est"`
	AllocsPerMsg       float64            `json:"allocs_per_delivered_message"`
	ClientCPUSec       float64            `json:"client_cpu_seconds"`
	TCPFraction        float64            `json:"fraction_of_tcp_ceiling"`
	Note               string             `json:"note,omitempty"`
}

type report struct {
	TCPGbps         float64      `json:"tcp_ceiling_gbps"`
	ClipMbps        float64      `json:"clip_mbps"`
	ClipTagsPerSec  float64      `json:"clip_tags_per_second"`
	BaselineRSSKiB  float64      `json:"baseline_rss_kib"`
	TTFFRTMP        []float64    `json:"ttff_rtmp_ms"`
	TTFFHTTP        []float64    `json:"ttff_httpflv_ms"`
	TTFFRTMPFailed  int          `json:"ttff_rtmp_failed"`
	TTFFHTTPFailed  int          `json:"ttff_httpflv_failed"`
	Steps           []stepResult `json:"steps"`
	GoalPlayers     int          `json:"goal_players"`
	GoalFullRate    bool         `json:"goal_full_rate"`
	GoalRSS         bool         `json:"goal_rss_under_64kib"`
	PublisherAlive  bool         `json:"publisher_alive_at_end"`
	TotalRunSeconds float64      `json:"total_run_seconds"`
}

func run(ctx context.Context, c *cli) (err error) {
	began := time.Now()
	if c.Duration < c.Ramp+5*time.Second {
		return fmt.Errorf("--duration must be at least --ramp + 5s")
	}
	for _, n := range c.Players {
		if n <= 0 || n > loadclient.MaxPlayers {
			return fmt.Errorf("player count %d out of range", n)
		}
	}
	dir, err := os.MkdirTemp("", "peerbench-")
	if err != nil {
		return err
	}
	defer func() {
		if c.Keep || (err != nil && ctx.Err() == nil) {
			logf("logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	ps := &procs{}
	defer ps.stopAll()

	// Binaries.
	peerBin, loadBin := c.Peer, c.Peerload
	if peerBin == "" || loadBin == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		if peerBin == "" {
			peerBin = filepath.Join(dir, "peer")
			if err := goBuild(ctx, root, peerBin, "./cmd/peer"); err != nil {
				return err
			}
		}
		if loadBin == "" {
			loadBin = filepath.Join(dir, "peerload")
			if err := goBuild(ctx, root, loadBin, "./cmd/peerload"); err != nil {
				return err
			}
		}
	}

	// Clip.
	clipPath := c.Clip
	if clipPath == "" {
		clipPath = filepath.Join(dir, "clip.flv")
	}
	logf("encoding/reading clip %s", clipPath)
	clip, err := encodeClip(ctx, clipPath)
	if err != nil {
		return err
	}
	if clip.encodeSec > 0 {
		logf("clip encoded in %.1f s", clip.encodeSec)
	}
	logf("clip: %.1f s, %.2f Mbit/s, %.1f A/V tags/s", clip.seconds, clip.mbps, clip.tagsPerS)

	rep := &report{ClipMbps: clip.mbps, ClipTagsPerSec: clip.tagsPerS}

	// Loopback ceiling first, before any other process competes for the CPUs.
	logf("measuring loopback TCP ceiling for %v", c.TCPTime)
	if rep.TCPGbps, err = tcpCeiling(ctx, c.TCPTime); err != nil {
		return fmt.Errorf("tcp ceiling: %w", err)
	}
	logf("loopback TCP ceiling: %.1f Gbit/s", rep.TCPGbps)

	// Server.
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	rtmpAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	maxN := 0
	for _, n := range c.Players {
		maxN = max(maxN, n)
	}
	server, err := ps.start("peer", filepath.Join(dir, "peer.log"), nil, peerBin, "run",
		"--name", "b1", "--rtmp", rtmpAddr, "--http", httpAddr,
		"--gossip", fmt.Sprintf("127.0.0.1:%d", ports[2]), "--raft", fmt.Sprintf("127.0.0.1:%d", ports[3]),
		"--data", filepath.Join(dir, "data"),
		"--max-connections", fmt.Sprint(maxN+200), "--log-level", "warn")
	if err != nil {
		return err
	}
	base := "http://" + httpAddr
	if err := waitFor(ctx, 15*time.Second, "peer HTTP API", func() bool {
		if !server.running() {
			return true
		}
		resp, err := httpc.Get(base + "/api/v1/versions")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}); err != nil {
		return err
	}
	if !server.running() {
		return fmt.Errorf("peer exited at start: %v (see %s)", server.err, filepath.Join(dir, "peer.log"))
	}
	logf("peer pid %d: rtmp %s, http %s", server.pid(), rtmpAddr, httpAddr)

	// Publisher.
	pub, err := ps.start("ffmpeg", filepath.Join(dir, "ffmpeg.log"), nil, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-stream_loop", "-1", "-i", clipPath, "-c", "copy", "-f", "flv", "rtmp://"+rtmpAddr+"/live/bench")
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 15*time.Second, "the stream to be published", func() bool {
		return !pub.running() || publishing(base, "live/bench")
	}); err != nil {
		return err
	}
	if !pub.running() {
		return fmt.Errorf("ffmpeg publisher exited: %v (see %s)", pub.err, filepath.Join(dir, "ffmpeg.log"))
	}
	logf("publisher pid %d; waiting 3 s for a full GOP", pub.pid())
	if err := sleep(ctx, 3*time.Second); err != nil {
		return err
	}

	// TTFF probes.
	rtmpURL := "rtmp://" + rtmpAddr + "/live/bench"
	flvURL := base + "/live/bench.flv"
	var lastErr string
	logf("TTFF: %d sequential RTMP connects", c.TTFFConnects)
	rep.TTFFRTMP, rep.TTFFRTMPFailed, lastErr = ttffProbe(ctx, rtmpURL, c.TTFFConnects)
	if lastErr != "" {
		logf("  last RTMP probe error: %s", lastErr)
	}
	logf("TTFF: %d sequential HTTP-FLV connects", c.TTFFConnects)
	rep.TTFFHTTP, rep.TTFFHTTPFailed, lastErr = ttffProbe(ctx, flvURL, c.TTFFConnects)
	if lastErr != "" {
		logf("  last HTTP-FLV probe error: %s", lastErr)
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	// Baseline with zero players.
	if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	if rep.BaselineRSSKiB, err = rssKiB(server.pid()); err != nil {
		return err
	}
	logf("baseline server RSS with 0 players: %.0f KiB", rep.BaselineRSSKiB)

	for i, n := range c.Players {
		if i > 0 {
			if err := sleep(ctx, c.Settle); err != nil {
				return err
			}
		}
		st, err := loadStep(ctx, c, ps, server, pub, loadBin, flvURL, base, n, rep, dir)
		if err != nil {
			return err
		}
		rep.Steps = append(rep.Steps, st)
		logf("step %d players: %d full rate, %.0f Mbit/s, server CPU %.0f%%", n, st.Load.FullRate, st.Load.Mbps, st.ServerCPUPct)
	}
	rep.PublisherAlive = pub.running()
	rep.TotalRunSeconds = time.Since(began).Seconds()
	printReport(os.Stdout, rep, clip)
	if c.JSON != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.JSON, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// loadStep runs peerload with n players and samples the server around it. The steady
// window starts 2 s after the ramp ends and stops 1 s before the step does, so connect
// bursts and teardown stay out of the per-player-minute and allocation figures.
func loadStep(ctx context.Context, c *cli, ps *procs, server, pub *proc, loadBin, url, base string, n int, rep *report, dir string) (stepResult, error) {
	st := stepResult{Players: n}
	pid := server.pid()
	logf("step: %d HTTP-FLV players for %v (ramp %v)", n, c.Duration, c.Ramp)
	cpuStart, err := cpuSeconds(pid)
	if err != nil {
		return st, err
	}
	var out strings.Builder
	start := time.Now()
	load, err := ps.start("peerload", filepath.Join(dir, fmt.Sprintf("peerload-%d.log", n)), &out, loadBin,
		"--url", url, "-n", fmt.Sprint(n), "--duration", c.Duration.String(), "--ramp", c.Ramp.String(), "--json")
	if err != nil {
		return st, err
	}
	t0, t1 := start.Add(c.Ramp+2*time.Second), start.Add(c.Duration-time.Second)
	if err := sleepUntil(ctx, t0); err != nil {
		return st, err
	}
	cpu0, err0 := cpuSeconds(pid)
	m0, errm0 := metric(base, "go_memstats_mallocs_total")
	w0 := time.Now()
	// RSS is sampled once a second through the window: one instant is noisy because the
	// Go heap breathes with the GC cycle.
	var rssSamples []float64
	for next := w0.Add(time.Second); next.Before(t1); next = next.Add(time.Second) {
		if err := sleepUntil(ctx, next); err != nil {
			return st, err
		}
		if v, err := rssKiB(pid); err == nil {
			rssSamples = append(rssSamples, v)
		}
	}
	if err := sleepUntil(ctx, t1); err != nil {
		return st, err
	}
	cpu1, err1 := cpuSeconds(pid)
	m1, errm1 := metric(base, "go_memstats_mallocs_total")
	w1 := time.Now()
	rss, errr := rssKiB(pid)
	rssSamples = append(rssSamples, rss)
	if err := firstErr(err0, err1, errr); err != nil {
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
	cpuEnd, _ := cpuSeconds(pid)
	if ps := load.cmd.ProcessState; ps != nil {
		st.ClientCPUSec = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if err := json.Unmarshal([]byte(out.String()), &st.Load); err != nil {
		return st, fmt.Errorf("peerload output (%v): %w; see %s", load.err, err, filepath.Join(dir, fmt.Sprintf("peerload-%d.log", n)))
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
	st.RSSPerPlayerKiB = (st.RSSKiB - rep.BaselineRSSKiB) / players
	st.RSSMaxPerPlayerKiB = (st.RSSMaxKiB - rep.BaselineRSSKiB) / players
	if errm0 == nil && errm1 == nil {
		st.Mallocs = m1 - m0
		// Every connected player should receive every tag published in the window.
		st.DeliveredMsgs = players * rep.ClipTagsPerSec * st.WindowSec
		st.AllocsPerMsg = st.Mallocs / st.DeliveredMsgs
	} else {
		st.AllocsPerMsg = -1
	}
	if rep.TCPGbps > 0 {
		st.TCPFraction = st.Load.Mbps / (rep.TCPGbps * 1000)
	}
	if !pub.running() {
		st.Note = strings.TrimSpace(st.Note + " publisher died")
	}
	return st, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func publishing(base, id string) bool {
	resp, err := httpc.Get(base + "/api/v1/streams")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var v struct {
		Streams []struct {
			ID      string `json:"id"`
			Frames  int64  `json:"frames"`
			Publish struct {
				Active bool `json:"active"`
			} `json:"publish"`
		} `json:"streams"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&v) != nil {
		return false
	}
	for _, s := range v.Streams {
		if s.ID == id && s.Publish.Active && s.Frames > 0 {
			return true
		}
	}
	return false
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the peer module; run from the repo or pass --peer and --peerload")
	}
	return filepath.Dir(mod), nil
}

func goBuild(ctx context.Context, root, out, pkg string) error {
	args := []string{"build", "-o", out, pkg}
	logf("go %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}
