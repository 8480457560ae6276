package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"peer/media/flv"
	"peer/media/rtmp"
)

// The streams part (issue 19, "many streams"): --streams low-rate synthetic streams
// published round-robin over a --streams-nodes cluster, a player of each on another
// node; placement convergence, Raft entries per stream lifecycle, the leader's CPU and
// the cluster's cost per stream.

// streamsShape: 5 fps, a keyframe every 2 s, (3000 + 9*1300) * 8 / 2 s ~ 59 kbit/s, so
// a thousand streams and their players fit on 2 cores with the servers.
var streamsShape = synthShape{fps: 5, gop: 10, keySize: 3000, interSize: 1300}

const (
	streamsShardSize = 50  // publish connections one ticker goroutine drives
	streamsPubRate   = 100 // publishes started per second: no burst of 1000 handshakes
	streamsPlayRate  = 200 // players started per second
)

func streamName(i int) string { return fmt.Sprintf("s%04d", i) }

// manyPublisher publishes n synthetic streams live/s0000.. over addrs (stream i to
// addrs[i%len(addrs)]), a ticker goroutine per shard of streamsShardSize connections.
type manyPublisher struct {
	shards    []*pubShard
	dialErrs  atomic.Int64
	writeErrs atomic.Int64
	connected atomic.Int64
	first     time.Time // the first dial
	rampEnd   atomic.Int64
	lastErr   atomic.Value // string
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

type pubShard struct {
	mu     sync.Mutex
	conns  []*pubConn
	closed bool
}

type pubConn struct {
	c     *rtmp.Client
	start time.Time
	frame int
	seq   uint32
}

func startManyPublishers(ctx context.Context, addrs []string, n int, avcc []byte) *manyPublisher {
	ctx, cancel := context.WithCancel(ctx)
	m := &manyPublisher{cancel: cancel, first: time.Now()}
	for range (n + streamsShardSize - 1) / streamsShardSize {
		m.shards = append(m.shards, &pubShard{})
	}
	interval := time.Second / time.Duration(streamsShape.fps)
	for si, sh := range m.shards {
		m.wg.Add(1)
		// Shards tick at evenly spread phases, so the frames do not all leave at once.
		go m.tick(ctx, sh, interval, interval*time.Duration(si)/time.Duration(len(m.shards)))
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for i := range n {
			if sleepUntil(ctx, m.first.Add(time.Second*time.Duration(i)/streamsPubRate)) != nil {
				return
			}
			m.wg.Add(1)
			go m.dial(ctx, addrs[i%len(addrs)], i)
		}
		m.rampEnd.Store(time.Now().UnixNano())
	}()
	return m
}

// dial publishes stream i (three tries) and hands the connection to its shard.
func (m *manyPublisher) dial(ctx context.Context, addr string, i int) {
	defer m.wg.Done()
	for attempt := 0; attempt < 3 && ctx.Err() == nil; attempt++ {
		c, err := rtmp.DialPublish(ctx, addr, "live", streamName(i), 5*time.Second)
		if err == nil {
			pc := &pubConn{c: c, start: time.Now()}
			_, err = c.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, 0, streamsAVCC)})
			if err == nil {
				sh := m.shards[i/streamsShardSize]
				sh.mu.Lock()
				if !sh.closed {
					sh.conns = append(sh.conns, pc)
					m.connected.Add(1)
					sh.mu.Unlock()
					return
				}
				sh.mu.Unlock()
			}
			c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		m.dialErrs.Add(1)
		m.lastErr.Store(fmt.Sprintf("dial %s live/%s: %v", addr, streamName(i), err))
		sleep(ctx, 500*time.Millisecond)
	}
}

// tick writes a frame to every connection of sh each interval; a connection whose
// write fails is dropped and counted.
func (m *manyPublisher) tick(ctx context.Context, sh *pubShard, interval, phase time.Duration) {
	defer m.wg.Done()
	defer func() {
		sh.mu.Lock()
		sh.closed = true
		for _, pc := range sh.conns {
			pc.c.Close()
		}
		sh.conns = nil
		sh.mu.Unlock()
	}()
	// A blocked write must not outlive ctx: closing the connections ends it.
	stop := context.AfterFunc(ctx, func() {
		sh.mu.Lock()
		for _, pc := range sh.conns {
			pc.c.Close()
		}
		sh.mu.Unlock()
	})
	defer stop()
	if sleep(ctx, phase) != nil {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sh.mu.Lock()
		conns := append([]*pubConn(nil), sh.conns...)
		sh.mu.Unlock()
		var failed []*pubConn
		for _, pc := range conns {
			now := time.Now()
			pc.seq++
			data := streamsShape.frame(pc.frame, pc.seq, now)
			pc.frame++
			if _, err := pc.c.WriteTags([]*flv.Tag{flv.NewTag(flv.TypeVideo, now.Sub(pc.start).Milliseconds(), data)}); err != nil {
				if ctx.Err() != nil {
					return
				}
				m.writeErrs.Add(1)
				m.lastErr.Store("write: " + err.Error())
				failed = append(failed, pc)
			}
		}
		if len(failed) > 0 {
			sh.mu.Lock()
			sh.conns = slices.DeleteFunc(sh.conns, func(c *pubConn) bool { return slices.Contains(failed, c) })
			sh.mu.Unlock()
			for _, pc := range failed {
				pc.c.Close()
				m.connected.Add(-1)
			}
		}
	}
}

// stop ends every publish and waits for the goroutines.
func (m *manyPublisher) stop() {
	m.cancel()
	m.wg.Wait()
}

func (m *manyPublisher) err() string {
	s, _ := m.lastErr.Load().(string)
	return s
}

// streamsAVCC is the sequence header every stream starts with (defaultAVCC: the part
// needs no clip, so no ffmpeg).
var streamsAVCC = defaultAVCC

// playerNode picks stream i's player node among k: round-robin over the nodes other than
// its publisher's (i%k).
func playerNode(i, k int) int {
	if k < 2 {
		return 0
	}
	return (i%k + 1 + (i/k)%(k-1)) % k
}

// streamsWindow is one measured window: each node's CPU and RSS, the leader's, the sum.
type streamsWindow struct {
	Seconds       float64      `json:"seconds"`
	Nodes         []nodeFigure `json:"nodes"`
	ClusterCPUPct float64      `json:"cluster_cpu_percent"` // 100 = one core busy
	ClusterRSSKiB float64      `json:"cluster_rss_kib"`
	LeaderCPUPct  float64      `json:"leader_cpu_percent"`
	LeaderRSSKiB  float64      `json:"leader_rss_kib"`
	HostCPUPct    float64      `json:"host_cpu_busy_percent"` // all cores busy = 100
}

type nodeFigure struct {
	Name   string  `json:"name"`
	CPUPct float64 `json:"cpu_percent"`
	RSSKiB float64 `json:"rss_kib_median"`
}

// streamsResult is the streams part's figures.
type streamsResult struct {
	Streams int    `json:"streams"`
	Nodes   int    `json:"nodes"`
	Leader  string `json:"leader"`
	// LeaderAtEnd differs from Leader when the cluster elected another during the run.
	LeaderAtEnd string  `json:"leader_at_end"`
	Published   int64   `json:"publishers_connected"`
	PubDialErrs int64   `json:"publisher_dial_errors"`
	PubWriteErr int64   `json:"publisher_write_errors"`
	PubLastErr  string  `json:"publisher_last_error,omitempty"`
	RampSec     float64 `json:"publish_ramp_seconds"`
	// ConvergeSec: from the first publish until every node's view gave every stream a
	// master; Placed is the fewest streams with a master any node saw at the end of
	// the wait.
	ConvergeSec float64 `json:"placement_converged_seconds"`
	Converged   bool    `json:"placement_converged"`
	Placed      int     `json:"streams_placed_min_over_nodes"`

	Players          int     `json:"players"`
	PlayersReceiving int     `json:"players_receiving"`              // got frames before the live window
	PlayersInWindow  int     `json:"players_receiving_whole_window"` // got frames during the live window
	PlayerMbps       float64 `json:"players_mbit_per_second"`
	PlayerDisconnect int     `json:"player_disconnects"`

	Baseline streamsWindow `json:"baseline_window"` // the cluster, no streams
	Idle     streamsWindow `json:"idle_window"`     // streams published, no players
	Live     streamsWindow `json:"live_window"`     // streams published, a player each

	// Index: the leader's peer_raft_last_index before the ramp, after convergence,
	// after the live window and after the streams left the view.
	Index               raftIndexes `json:"raft_last_index"`
	BaselineEntries     uint64      `json:"raft_entries_in_baseline_window"`
	EntriesPerLifecycle float64     `json:"raft_entries_per_stream_lifecycle"`
	LeftSec             float64     `json:"streams_left_view_seconds"`
	Err                 string      `json:"error,omitempty"`
}

type raftIndexes struct {
	Before uint64 `json:"before"`
	Placed uint64 `json:"placed"`
	Live   uint64 `json:"live"`
	After  uint64 `json:"after"`
}

// cpuMsPerStreamSec turns a cluster CPU% difference over n streams into CPU ms per
// stream-second (1% of a core = 10 ms/s).
func cpuMsPerStreamSec(pct float64, n int) float64 {
	if n <= 0 {
		return 0
	}
	return pct * 10 / float64(n)
}

func runStreams(ctx context.Context, c *cli, ps *procs, b *bins, dir string, rep *report) error {
	n, k := c.Streams, c.StreamsNodes
	res := &streamsResult{Streams: n, Nodes: k}
	rep.Streams = res
	err := streamsRun(ctx, c, ps, b, dir, res)
	if err != nil {
		res.Err = err.Error()
	}
	return err
}

func streamsRun(ctx context.Context, c *cli, ps *procs, b *bins, dir string, res *streamsResult) error {
	n, k := res.Streams, res.Nodes
	logf("streams: starting a %d-node cluster", k)
	dir = filepath.Join(dir, "streams")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	limits := []string{"--max-connections", fmt.Sprint(4*n + 100), "--max-node-streams", "0", "--max-publishes-per-ip", "0"}
	nodes, err := startPeerCluster(ctx, ps, b.peer, dir, k, func(int) []string { return limits })
	defer func() {
		for i := len(nodes) - 1; i >= 0; i-- {
			nodes[i].p.stop(6 * time.Second)
		}
	}()
	if err != nil {
		return err
	}
	v, err := clusterView(nodes[0])
	if err != nil {
		return err
	}
	res.Leader = v.Leader
	leader := byName(nodes, v.Leader)
	if leader == nil {
		return fmt.Errorf("leader %q is no node of the cluster", v.Leader)
	}
	lastIndex := func() (uint64, error) {
		x, err := metric(leader.base(), "peer_raft_last_index")
		return uint64(x), err
	}
	if err := sleep(ctx, 2*time.Second); err != nil { // the joins' entries settle
		return err
	}
	i0, err := lastIndex()
	if err != nil {
		return err
	}
	logf("streams: leader %s, raft last index %d; baseline window %v", leader.name(), i0, c.StreamsWindow)
	if res.Baseline, err = measureStreams(ctx, nodes, leader, c.StreamsWindow); err != nil {
		return err
	}
	if res.Index.Before, err = lastIndex(); err != nil {
		return err
	}
	res.BaselineEntries = res.Index.Before - i0

	// Publish, ramped.
	addrs := make([]string, k)
	for i, nd := range nodes {
		addrs[i] = nd.rtmp
	}
	logf("streams: publishing %d streams at %d/s over %d nodes", n, streamsPubRate, k)
	pub := startManyPublishers(ctx, addrs, n, streamsAVCC)
	stopped := false
	defer func() {
		if !stopped {
			pub.stop()
		}
	}()
	names := make(map[string]bool, n)
	for i := range n {
		names["live/"+streamName(i)] = true
	}
	werr := waitForEvery(ctx, time.Duration(n/streamsPubRate)*time.Second+60*time.Second, time.Second, "every stream placed on every node", func() bool {
		res.Placed = placedMin(nodes, names)
		return res.Placed == n
	})
	res.ConvergeSec = time.Since(pub.first).Seconds()
	if e := pub.rampEnd.Load(); e > 0 {
		res.RampSec = time.Unix(0, e).Sub(pub.first).Seconds()
	}
	res.Published, res.PubDialErrs, res.PubWriteErr, res.PubLastErr = pub.connected.Load(), pub.dialErrs.Load(), pub.writeErrs.Load(), pub.err()
	if werr != nil {
		if ctx.Err() != nil {
			return werr
		}
		return fmt.Errorf("placement did not converge: %d/%d streams placed on every node, %d publishers connected (%d dial errors, last: %s): %w",
			res.Placed, n, res.Published, res.PubDialErrs, res.PubLastErr, werr)
	}
	res.Converged = true
	logf("streams: placement converged %.1f s after the first publish (ramp %.1f s), %d publishers connected", res.ConvergeSec, res.RampSec, res.Published)
	if res.Index.Placed, err = lastIndex(); err != nil {
		return err
	}

	// Idle: streams published, no players (before the players: an edge keeps pulling
	// for 30 s after its last player left, so a window after them would include that).
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	logf("streams: idle window %v (streams published, no players)", c.StreamsWindow)
	if res.Idle, err = measureStreams(ctx, nodes, leader, c.StreamsWindow); err != nil {
		return err
	}

	// Players: one per stream on another node than its publisher's, RTMP and HTTP-FLV
	// alternating.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	players := make([]*synthPlayer, 0, n)
	logf("streams: starting %d players at %d/s", n, streamsPlayRate)
	t0 := time.Now()
	for i := range n {
		if err := sleepUntil(ctx, t0.Add(time.Second*time.Duration(i)/streamsPlayRate)); err != nil {
			return err
		}
		nd := nodes[playerNode(i, k)]
		if i%2 == 0 {
			players = append(players, startSynthPlayer(pctx, "rtmp", nd.rtmp, "live", streamName(i), true, 10*time.Second))
		} else {
			players = append(players, startSynthPlayer(pctx, "http-flv", nd.http, "live", streamName(i), true, 10*time.Second))
		}
	}
	res.Players = len(players)
	receiving := func() int {
		r := 0
		for _, p := range players {
			if f, _ := p.received(); f > 0 {
				r++
			}
		}
		return r
	}
	werr = waitForEvery(ctx, 30*time.Second, 500*time.Millisecond, "99% of the players to receive media", func() bool {
		res.PlayersReceiving = receiving()
		return res.PlayersReceiving*100 >= 99*n
	})
	logf("streams: %d/%d players receiving", res.PlayersReceiving, n)
	if werr != nil && ctx.Err() != nil {
		return werr
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	logf("streams: live window %v (a player per stream)", c.StreamsWindow)
	f0 := make([]int, len(players))
	var b0 int64
	for i, p := range players {
		var by int64
		f0[i], by = p.received()
		b0 += by
	}
	if res.Live, err = measureStreams(ctx, nodes, leader, c.StreamsWindow); err != nil {
		return err
	}
	var b1 int64
	for i, p := range players {
		f, by := p.received()
		b1 += by
		if f > f0[i] {
			res.PlayersInWindow++
		}
	}
	res.PlayerMbps = float64(b1-b0) * 8 / 1e6 / res.Live.Seconds
	if res.Index.Live, err = lastIndex(); err != nil {
		return err
	}
	pcancel()
	for _, p := range players {
		<-p.done
		_, disc, _ := p.snapshot()
		res.PlayerDisconnect += len(disc)
	}

	// Unpublish, and wait until no node's view has the streams.
	logf("streams: stopping the publishers")
	pub.stop()
	stopped = true
	t1 := time.Now()
	werr = waitForEvery(ctx, 60*time.Second, time.Second, "the streams to leave every node's view", func() bool {
		return placedMax(nodes, names) == 0
	})
	res.LeftSec = time.Since(t1).Seconds()
	if werr != nil {
		return werr
	}
	// The last change's commit announcement (a barrier) comes a few ms after it.
	var last uint64
	waitForEvery(ctx, 10*time.Second, time.Second, "the raft log to settle", func() bool {
		x, err := lastIndex()
		settled := err == nil && x == last
		last = x
		return settled
	})
	res.Index.After = last
	res.EntriesPerLifecycle = float64(res.Index.After-res.Index.Before) / float64(n)
	if v, err := clusterView(leader); err == nil {
		res.LeaderAtEnd = v.Leader
	}
	logf("streams: raft entries %d -> %d (placed %d, live %d): %.2f per stream lifecycle; streams left the view in %.1f s",
		res.Index.Before, res.Index.After, res.Index.Placed, res.Index.Live, res.EntriesPerLifecycle, res.LeftSec)
	return nil
}

// placedMin is the fewest of names that any node's view gives a master (0 on an error).
func placedMin(nodes []*peerNode, names map[string]bool) int {
	least := -1
	for _, nd := range nodes {
		mastered, _, err := viewCount(nd, names)
		if err != nil {
			return 0
		}
		if least < 0 || mastered < least {
			least = mastered
		}
	}
	return max(least, 0)
}

// placedMax is the most of names any node's view still holds (len(names) on an error).
func placedMax(nodes []*peerNode, names map[string]bool) int {
	most := 0
	for _, nd := range nodes {
		_, held, err := viewCount(nd, names)
		if err != nil {
			return len(names)
		}
		most = max(most, held)
	}
	return most
}

// viewCount counts the streams of names in nd's cluster view: those with a master, and all.
func viewCount(nd *peerNode, names map[string]bool) (mastered, held int, err error) {
	v, err := clusterView(nd)
	if err != nil {
		return 0, 0, err
	}
	for _, a := range v.Streams {
		if names[a.Stream] {
			held++
			if a.Master != "" {
				mastered++
			}
		}
	}
	return mastered, held, nil
}

// measureStreams samples every node's CPU (utime+stime delta) and RSS (median of 1 s
// samples) over d.
func measureStreams(ctx context.Context, nodes []*peerNode, leader *peerNode, d time.Duration) (streamsWindow, error) {
	var w streamsWindow
	cpu0 := make([]float64, len(nodes))
	for i, nd := range nodes {
		v, err := cpuSeconds(nd.p.pid())
		if err != nil {
			return w, fmt.Errorf("%s: %w", nd.name(), err)
		}
		cpu0[i] = v
	}
	hb0, ht0 := hostCPU()
	start := time.Now()
	rss := make([][]float64, len(nodes))
	for t := start.Add(time.Second); !t.After(start.Add(d)); t = t.Add(time.Second) {
		if err := sleepUntil(ctx, t); err != nil {
			return w, err
		}
		for i, nd := range nodes {
			if v, err := rssKiB(nd.p.pid()); err == nil {
				rss[i] = append(rss[i], v)
			}
		}
	}
	if err := sleepUntil(ctx, start.Add(d)); err != nil {
		return w, err
	}
	w.Seconds = time.Since(start).Seconds()
	if hb1, ht1 := hostCPU(); ht1 > ht0 {
		w.HostCPUPct = 100 * (hb1 - hb0) / (ht1 - ht0)
	}
	for i, nd := range nodes {
		v, err := cpuSeconds(nd.p.pid())
		if err != nil {
			return w, fmt.Errorf("%s: %w", nd.name(), err)
		}
		f := nodeFigure{Name: nd.name(), CPUPct: 100 * (v - cpu0[i]) / w.Seconds, RSSKiB: pctl(rss[i], 50)}
		w.Nodes = append(w.Nodes, f)
		w.ClusterCPUPct += f.CPUPct
		w.ClusterRSSKiB += f.RSSKiB
		if nd == leader {
			w.LeaderCPUPct, w.LeaderRSSKiB = f.CPUPct, f.RSSKiB
		}
	}
	return w, nil
}

// streamsRows are the part's rows of the table (peer only: nginx has no cluster).
func streamsRows(r *streamsResult) []row {
	if r == nil {
		return nil
	}
	n := r.Streams
	what := fmt.Sprintf("%s streams on %d nodes", thousands(n), r.Nodes)
	var rows []row
	conv := fmt.Sprintf("%.1f (ramp %.1f s at %d/s; %d publishers connected)", r.ConvergeSec, r.RampSec, streamsPubRate, r.Published)
	if !r.Converged {
		conv = fmt.Sprintf("not converged: %d/%d placed on every node after %.0f s", r.Placed, n, r.ConvergeSec)
	}
	rows = append(rows, row{what + ": placement converged (s from the first publish until every node's view has every stream's master)", conv, "-", "–"})
	if r.Index.After > 0 {
		// The goal is the stream's own lifecycle: its placement and its release. A player
		// on a node that carries no copy joins the stream's edge set, an entry of the
		// player's node, reported beside it.
		// Judged as TestEntriesPerStreamLifecycle is: two entries a stream, plus the
		// barrier that announces each run of changes and the member records a run may
		// carry, a few entries whatever the number of streams.
		own := r.Index.Placed - r.Index.Before + r.Index.After - r.Index.Live
		lifecycle := float64(own) / float64(n)
		ok := "PASS"
		if own > uint64(2*n+streamsRunEntries) {
			ok = "FAIL"
		}
		rows = append(rows, row{"raft entries per stream lifecycle (publish, unpublish)",
			fmt.Sprintf("%.2f (%d to place, %d to unpublish, barriers and member records included; %d in the baseline window)",
				lifecycle, r.Index.Placed-r.Index.Before, r.Index.After-r.Index.Live, r.BaselineEntries),
			"-", fmt.Sprintf("goal <= 2 (%d entries for %d streams, %d allowed for the runs' announcements): %s", own, n, streamsRunEntries, ok)})
		rows = append(rows, row{"raft entries for the players (edge joins: a player on a node without a copy)",
			fmt.Sprintf("%d for %d players, %.2f per stream; everything from ramp to unpublish %.2f per stream",
				r.Index.Live-r.Index.Placed, r.Players, float64(r.Index.Live-r.Index.Placed)/float64(n), r.EntriesPerLifecycle),
			"-", "–"})
	}
	if r.Live.Seconds > 0 {
		rows = append(rows, row{"leader CPU % (streams live, players on; 100 = one core)",
			fmt.Sprintf("%.1f (%s; idle with streams %.1f, no streams %.1f)", r.Live.LeaderCPUPct, r.Leader, r.Idle.LeaderCPUPct, r.Baseline.LeaderCPUPct), "-", "–"})
		rows = append(rows, row{"cluster CPU per live stream with a player (ms/s)",
			fmt.Sprintf("%.3f (cluster %.0f%% - %.0f%% with no streams, / %d; the player alone %.3f)", cpuMsPerStreamSec(r.Live.ClusterCPUPct-r.Baseline.ClusterCPUPct, n),
				r.Live.ClusterCPUPct, r.Baseline.ClusterCPUPct, n, cpuMsPerStreamSec(r.Live.ClusterCPUPct-r.Idle.ClusterCPUPct, r.PlayersInWindow)), "-", "–"})
	}
	if r.Idle.Seconds > 0 {
		rows = append(rows, row{"cluster idle cost per stream (published, no players): CPU ms/s, RSS KiB",
			fmt.Sprintf("%.3f ms/s, %.1f KiB (cluster %.0f%% / %.0f MiB vs %.0f%% / %.0f MiB with no streams)",
				cpuMsPerStreamSec(r.Idle.ClusterCPUPct-r.Baseline.ClusterCPUPct, n), (r.Idle.ClusterRSSKiB-r.Baseline.ClusterRSSKiB)/float64(n),
				r.Idle.ClusterCPUPct, r.Idle.ClusterRSSKiB/1024, r.Baseline.ClusterCPUPct, r.Baseline.ClusterRSSKiB/1024), "-", "–"})
	}
	if r.Players > 0 {
		rows = append(rows, row{"players receiving (one per stream, on another node than its publisher's; RTMP and HTTP-FLV alternating)",
			fmt.Sprintf("%d/%d before the window, %d through it, %.1f Mbit/s, %d disconnects", r.PlayersReceiving, r.Players, r.PlayersInWindow, r.PlayerMbps, r.PlayerDisconnect), "-", "–"})
	}
	return rows
}

// writeStreams writes the part's per-node windows.
func writeStreams(w io.Writer, r *streamsResult) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\n## Many streams\n\n")
	fmt.Fprintf(w, "%d synthetic streams (%d fps, ~59 kbit/s, an in-repo RTMP publisher) published round-robin over %d nodes, leader %s",
		r.Streams, streamsShape.fps, r.Nodes, r.Leader)
	if r.LeaderAtEnd != "" && r.LeaderAtEnd != r.Leader {
		fmt.Fprintf(w, " (%s at the end)", r.LeaderAtEnd)
	}
	fmt.Fprintf(w, "; raft last index %d before, %d placed, %d after the live window, %d after the streams left the view (%.1f s after the unpublish).\n\n",
		r.Index.Before, r.Index.Placed, r.Index.Live, r.Index.After, r.LeftSec)
	if r.Err != "" {
		fmt.Fprintf(w, "Error: %s\n\n", r.Err)
	}
	fmt.Fprintln(w, "| window | seconds | "+strings.Join(nodeNames(r), " | ")+" | cluster CPU % / RSS MiB | host CPU busy |")
	fmt.Fprintln(w, "|---|---|"+strings.Repeat("---|", len(nodeNames(r)))+"---|---|")
	for _, x := range []struct {
		name string
		w    *streamsWindow
	}{{"no streams", &r.Baseline}, {"streams, no players", &r.Idle}, {"streams and players", &r.Live}} {
		if x.w.Seconds == 0 {
			continue
		}
		cells := make([]string, 0, len(x.w.Nodes))
		for _, nf := range x.w.Nodes {
			cells = append(cells, fmt.Sprintf("%.1f%% / %.0f MiB", nf.CPUPct, nf.RSSKiB/1024))
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %.1f%% / %.0f | %.0f%% |\n", x.name, x.w.Seconds, strings.Join(cells, " | "), x.w.ClusterCPUPct, x.w.ClusterRSSKiB/1024, x.w.HostCPUPct)
	}
	fmt.Fprintf(w, "\nCPU: utime+stime of each node over the window (100%% = one core); RSS: median VmRSS of 1 s samples. "+
		"The idle window runs before the players: an edge keeps pulling for 30 s after its last player left. "+
		"Cost per stream = (window - no streams) / %d; raft entries per stream lifecycle = (the leader's peer_raft_last_index after the streams left the view - before the ramp) / %d, "+
		"announcement barriers and member records included.\n", r.Streams, r.Streams)
}

func nodeNames(r *streamsResult) []string {
	var out []string
	for _, w := range []streamsWindow{r.Baseline, r.Idle, r.Live} {
		if len(w.Nodes) > 0 {
			for _, nf := range w.Nodes {
				out = append(out, nf.Name+" CPU / RSS")
			}
			return out
		}
	}
	return out
}

// streamsRunEntries are the entries the streams part's runs of changes may add to two
// per stream: the ramp's and the unpublish's announcement barriers, member records.
const streamsRunEntries = 4

// thousands formats n with a comma every three digits.
func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
