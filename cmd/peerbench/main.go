// Command peerbench benchmarks peer against nginx-rtmp in one run (make bench; not a
// test) and prints one table: a row per figure, columns peer | nginx-rtmp | ratio.
//
// Parts (--only, default all):
//
//   - tcp: the loopback TCP ceiling (Go sender → receiver, 64 KiB writes);
//   - fanout: one node (peer; nginx-rtmp with one worker) serves a pre-encoded ~2 Mbit/s
//     clip published with `ffmpeg -re -stream_loop -1 -c copy`; for each N in --players,
//     peerload runs N players (peer: HTTP-FLV, then RTMP; nginx: RTMP) while the server's
//     CPU (utime+stime of every process, /proc) and RSS (VmRSS) are sampled;
//   - latency: a synthetic H.264-shaped stream with the send wall clock embedded in each
//     frame, published by an in-repo RTMP client, played direct (same node) and through
//     one hop (peer: 2-node cluster with --replicas 0, n2 pulls from n1; nginx: an edge
//     that pulls from the origin);
//   - ttff: sequential single-player connects over RTMP, HTTP-FLV (peer) and HLS
//     (playlist request → first segment's bytes);
//   - failover: SIGKILL the stream's master under a player on a surviving node (peer:
//     fresh 3-node clusters, relayed publisher and publisher-node-is-master cases; nginx:
//     the static origin/replica/edge topology, origin killed);
//   - streams (peer only): --streams low-rate synthetic streams (an in-repo publisher,
//     ramped) round-robin over a --streams-nodes cluster, a player of each on another
//     node: placement convergence time, Raft entries per stream lifecycle (the leader's
//     peer_raft_last_index), the leader's CPU, and the cluster's CPU and RSS per stream
//     against a window with no streams. It needs no clip (no ffmpeg).
//
// nginx runs from the Debian packages nginx-light (or nginx) + libnginx-mod-rtmp with
// generated nginx.conf files in the temp dir (`nginx -c FILE -p DIR`, daemon off).
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

var allParts = []string{"tcp", "fanout", "latency", "ttff", "failover", "streams"}

type cli struct {
	Peer            string          `help:"peer binary; empty: go build ./cmd/peer into the temp dir."`
	Peerload        string          `help:"peerload binary; empty: go build ./cmd/peerload into the temp dir."`
	Only            []string        `help:"Parts to run: tcp,fanout,latency,ttff,failover,streams (default all)."`
	Servers         []string        `help:"Servers to measure: peer,nginx." default:"peer,nginx"`
	Players         []int           `help:"Player counts, one load step each (same for every server and protocol)." default:"200,500,1000"`
	Duration        time.Duration   `help:"Length of each load step." default:"12s"`
	Ramp            time.Duration   `help:"Player start ramp within each step." default:"2s"`
	Settle          time.Duration   `help:"Pause before each step so the server drops the previous players." default:"2s"`
	TTFFConnects    int             `name:"ttff-connects" help:"Sequential single-player connects per protocol for TTFF." default:"20"`
	TTFFJitter      time.Duration   `name:"ttff-jitter" help:"Random extra pause (0..this) between RTMP/HTTP-FLV TTFF connects, so they land at random points of the 2 s GOP." default:"2s"`
	TCPTime         time.Duration   `name:"tcp-time" help:"Length of the loopback TCP ceiling measurement." default:"3s"`
	LatDuration     time.Duration   `name:"lat-duration" help:"Length of the latency measurement (25 frames/s per player): p99 is the tenth worst frame at 40 s." default:"40s"`
	LatRounds       int             `name:"lat-rounds" help:"Rounds of the hop comparison (RTMP players at the master and the edge), peer and nginx alternating; the hop goal is judged on the median of the rounds' p50s and p99s." default:"3"`
	LatWarmup       time.Duration   `name:"lat-warmup" help:"Frames sent this soon after a player started are not counted (GOP burst)." default:"1500ms"`
	FailoverRuns    int             `name:"failover-runs" help:"Fresh 3-node peer clusters per failover case." default:"3"`
	FailoverObserve time.Duration   `name:"failover-observe" help:"How long after the SIGKILL the players are watched." default:"10s"`
	Streams         int             `help:"Streams of the streams part." default:"1000"`
	StreamsNodes    int             `name:"streams-nodes" help:"Cluster size of the streams part." default:"5"`
	StreamsWindow   time.Duration   `name:"streams-window" help:"Length of each measured window of the streams part (no streams; streams, no players; streams and players)." default:"15s"`
	NginxWorkers    int             `name:"nginx-workers" help:"nginx worker_processes (nginx-rtmp live needs 1 without rtmp_auto_push); peer nodes get as many cores (--procs)." default:"1"`
	PeerLogLevel    string          `name:"peer-log-level" help:"--log-level of the peer nodes (logs are in the temp dir; see --keep)." default:"warn"`
	Clip            string          `help:"Clip file to reuse (encoded there if missing); empty: encode into the temp dir."`
	Rounds          int             `help:"Alternating peer/nginx rounds at the largest N after the series (0: skip); the players per CPU second goal is judged on their median." default:"3"`
	MergeWrite      []time.Duration `name:"merge-write" help:"Also measure fan-out at the largest N on a peer node run with each of these --merge-write windows, in the series and in the alternating rounds (0 or empty: none)." default:"100ms,350ms"`
	Keep            bool            `help:"Keep the temp dir (logs, clip, nginx.conf files) after the run."`
	JSON            string          `name:"json" help:"Also write all results as JSON to this file."`
	Markdown        string          `name:"markdown" help:"Write the table with the command line, date and machine to this file (empty: do not)."`
}

func (c *cli) part(p string) bool {
	if len(c.Only) == 0 {
		return true
	}
	for _, o := range c.Only {
		if strings.EqualFold(strings.TrimSpace(o), p) {
			return true
		}
	}
	return false
}

func (c *cli) has(server string) bool {
	for _, s := range c.Servers {
		if strings.EqualFold(strings.TrimSpace(s), server) {
			return true
		}
	}
	return false
}

func main() {
	var c cli
	kong.Parse(&c, kong.Name("peerbench"), kong.Description("peer vs nginx-rtmp: fan-out, latency, TTFF and failover in one run, one table."))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, &c)
	interrupted := ctx.Err() != nil // before stop, which cancels ctx too
	stop()
	if err != nil && interrupted {
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
	HostCPUPct         float64            `json:"host_cpu_busy_percent_window"` // all cores busy = 100`
	TCPFraction        float64            `json:"fraction_of_tcp_ceiling"`
	Note               string             `json:"note,omitempty"`
}

type report struct {
	Command         string          `json:"command"`
	Date            string          `json:"date"`
	Machine         string          `json:"machine"`
	NginxVersion    string          `json:"nginx_version"`
	TCPGbps         float64         `json:"tcp_ceiling_gbps"`
	ClipMbps        float64         `json:"clip_mbps"`
	ClipTagsPerSec  float64         `json:"clip_tags_per_second"`
	Fanout          []fanoutSeries  `json:"fanout"`
	Rounds          []round         `json:"rounds,omitempty"`
	Latency         []latencyResult `json:"latency"`
	PeerLatTopology string          `json:"peer_latency_topology"`
	TTFF            []ttffResult    `json:"ttff"`
	PeerFailover    []failoverRun   `json:"peer_failover"`
	Streams         *streamsResult  `json:"streams,omitempty"`
	NginxFailover   *failoverRun    `json:"nginx_failover,omitempty"`
	Errors          []string        `json:"errors,omitempty"`
	TotalRunSeconds float64         `json:"total_run_seconds"`
	// BackgroundCPUPct is the host's CPU busy share over 2 s before anything started:
	// other work on the machine competes with every figure.
	BackgroundCPUPct float64 `json:"background_host_cpu_busy_percent"`
	LoadAvg          string  `json:"loadavg_at_start"`
}

// bins are the binaries the run uses.
type bins struct{ peer, load string }

func run(ctx context.Context, c *cli) (err error) {
	began := time.Now()
	if c.Duration < c.Ramp+5*time.Second {
		return fmt.Errorf("--duration must be at least --ramp + 5s")
	}
	for _, p := range c.Only {
		if !slicesContains(allParts, strings.ToLower(strings.TrimSpace(p))) {
			return fmt.Errorf("unknown part %q (want %s)", p, strings.Join(allParts, ","))
		}
	}
	for _, n := range c.Players {
		if n <= 0 || n > loadclient.MaxPlayers {
			return fmt.Errorf("player count %d out of range", n)
		}
	}
	peerLogLevel = c.PeerLogLevel
	peerProcs = c.NginxWorkers
	c.FailoverRuns = max(0, min(c.FailoverRuns, 20))
	c.TTFFConnects = max(1, min(c.TTFFConnects, 500))
	c.LatDuration = min(max(c.LatDuration, 3*time.Second), 5*time.Minute)
	c.LatRounds = max(1, min(c.LatRounds, 9))
	c.FailoverObserve = min(max(c.FailoverObserve, 2*time.Second), time.Minute)
	c.Streams = max(1, min(c.Streams, 5000))
	c.StreamsNodes = max(2, min(c.StreamsNodes, 9))
	c.StreamsWindow = min(max(c.StreamsWindow, 3*time.Second), time.Minute)
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

	rep := &report{Command: commandLine(), Date: time.Now().Format("2006-01-02 15:04:05 MST"), Machine: machine()}
	// nginx runs in every part but tcp and streams (a peer cluster only).
	if c.has("nginx") && (c.part("fanout") || c.part("latency") || c.part("ttff") || c.part("failover")) {
		if bin, err := nginxBinary(); err == nil {
			out, _ := exec.Command(bin, "-v").CombinedOutput()
			rep.NginxVersion = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: "))
			if _, err := nginxModule(); err != nil {
				return err
			}
		} else {
			return err
		}
	}

	// Binaries.
	b := &bins{peer: c.Peer, load: c.Peerload}
	if b.peer == "" || b.load == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		if b.peer == "" {
			b.peer = filepath.Join(dir, "peer")
			if err := goBuild(ctx, root, b.peer, "./cmd/peer"); err != nil {
				return err
			}
		}
		if b.load == "" {
			b.load = filepath.Join(dir, "peerload")
			if err := goBuild(ctx, root, b.load, "./cmd/peerload"); err != nil {
				return err
			}
		}
	}

	// Clip (fan-out and TTFF publish it; its AVC sequence header heads the synthetic stream).
	clip, avcc := clipInfo{}, defaultAVCC
	if c.part("fanout") || c.part("latency") || c.part("ttff") || c.part("failover") {
		clipPath := c.Clip
		if clipPath == "" {
			clipPath = filepath.Join(dir, "clip.flv")
		}
		logf("encoding/reading clip %s", clipPath)
		if clip, err = encodeClip(ctx, clipPath); err != nil {
			return err
		}
		if clip.encodeSec > 0 {
			logf("clip encoded in %.1f s", clip.encodeSec)
		}
		logf("clip: %.1f s, %.2f Mbit/s, %.1f A/V tags/s", clip.seconds, clip.mbps, clip.tagsPerS)
		rep.ClipMbps, rep.ClipTagsPerSec = clip.mbps, clip.tagsPerS
		avcc = clipAVCC(clip.path)
	}

	// Background load: other work on the machine competes with every figure.
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	hb0, ht0 := hostCPU()
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	if hb1, ht1 := hostCPU(); ht1 > ht0 {
		rep.BackgroundCPUPct = 100 * (hb1 - hb0) / (ht1 - ht0)
	}
	logf("host CPU busy before the run: %.0f%% (loadavg %s)", rep.BackgroundCPUPct, rep.LoadAvg)

	// Loopback ceiling first, before any other process competes for the CPUs.
	if c.part("tcp") || c.part("fanout") {
		logf("measuring loopback TCP ceiling for %v", c.TCPTime)
		if rep.TCPGbps, err = tcpCeiling(ctx, c.TCPTime); err != nil {
			return fmt.Errorf("tcp ceiling: %w", err)
		}
		logf("loopback TCP ceiling: %.1f Gbit/s", rep.TCPGbps)
	}
	note := func(what string, err error) error {
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logf("%s failed: %v", what, err)
		rep.Errors = append(rep.Errors, fmt.Sprintf("%s: %v", what, err))
		return nil
	}
	if c.part("fanout") {
		if err := note("fan-out", runFanout(ctx, c, ps, b, dir, clip, rep)); err != nil {
			return err
		}
	}
	if c.part("latency") || c.part("ttff") {
		if c.has("peer") {
			if err := note("peer latency/ttff", runPeerTopology(ctx, c, ps, b, dir, clip, avcc, rep, 1)); err != nil {
				return err
			}
		}
	}
	if c.part("latency") || c.part("ttff") || c.part("failover") {
		if c.has("nginx") {
			if err := note("nginx topology", runNginxTopology(ctx, c, ps, dir, clip, avcc, rep, 1)); err != nil {
				return err
			}
		}
	}
	// More rounds of the hop comparison, alternating which server goes first: the
	// goal is judged on their median, as a single 40 s run's p99 moves with the host.
	if c.part("latency") && c.has("peer") && c.has("nginx") {
		for round := 2; round <= c.LatRounds; round++ {
			peerRound := func() error {
				return note(fmt.Sprintf("peer latency round %d", round), runPeerTopology(ctx, c, ps, b, dir, clip, avcc, rep, round))
			}
			nginxRound := func() error {
				return note(fmt.Sprintf("nginx latency round %d", round), runNginxTopology(ctx, c, ps, dir, clip, avcc, rep, round))
			}
			first, second := peerRound, nginxRound
			if round%2 == 0 {
				first, second = nginxRound, peerRound
			}
			if err := first(); err != nil {
				return err
			}
			if err := second(); err != nil {
				return err
			}
		}
	}
	if c.part("failover") && c.has("peer") {
		if err := note("peer failover", runPeerFailover(ctx, c, ps, b, dir, avcc, rep)); err != nil {
			return err
		}
	}
	if c.part("streams") && c.has("peer") {
		if err := note("peer streams", runStreams(ctx, c, ps, b, dir, rep)); err != nil {
			return err
		}
	}
	rep.TotalRunSeconds = time.Since(began).Seconds()
	var md strings.Builder
	writeMarkdown(&md, c, rep)
	fmt.Println()
	fmt.Print(md.String())
	if c.Markdown != "" {
		if err := os.WriteFile(c.Markdown, []byte(md.String()), 0o644); err != nil {
			return err
		}
		logf("wrote %s", c.Markdown)
	}
	if c.JSON != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.JSON, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func slicesContains(v []string, s string) bool {
	for _, x := range v {
		if x == s {
			return true
		}
	}
	return false
}

func commandLine() string {
	if v := os.Getenv("PEERBENCH_COMMAND"); v != "" {
		return v
	}
	return strings.Join(append([]string{filepath.Base(os.Args[0])}, os.Args[1:]...), " ")
}

// machine describes the host: nproc, CPU model, kernel, memory.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown kernel"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
				mem = fmt.Sprintf(", %.1f GiB RAM", kb/1024/1024)
			}
		}
	}
	return fmt.Sprintf("nproc %d (%s), %s%s", runtimeNumCPU(), model, kernel, mem)
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
