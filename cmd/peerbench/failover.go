package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// playerStall is what one surviving player saw around a SIGKILL at time kill.
type playerStall struct {
	Proto       string  `json:"protocol"`
	StallMs     float64 `json:"stall_ms"` // longest wall gap between frames advancing the sequence
	Recovered   bool    `json:"recovered"`
	FirstNewMs  float64 `json:"first_new_frame_after_kill_ms"`
	Lost        int     `json:"frames_lost"` // sequence numbers never received in the window
	Disconnects int     `json:"disconnects_after_kill"`
	DisconnAtMs float64 `json:"first_disconnect_after_kill_ms,omitempty"`
	DisconnErr  string  `json:"first_disconnect_error,omitempty"`
	FramesAfter int     `json:"frames_after_kill"`
}

type failoverRun struct {
	Case      string        `json:"case"`
	Run       int           `json:"run"`
	Master    string        `json:"master"`
	Ingress   string        `json:"ingress"`
	Watcher   string        `json:"watcher"`
	Players   []playerStall `json:"players"`
	PubReconn float64       `json:"publisher_reconnect_ms,omitempty"` // kill -> publish accepted elsewhere
	PubNote   string        `json:"publisher,omitempty"`
	Err       string        `json:"error,omitempty"`
}

// stallOf analyses a player's frames around kill, observing until kill+obs.
func stallOf(proto string, p *synthPlayer, kill time.Time, obs time.Duration) playerStall {
	frames, disc, _ := p.snapshot()
	s := playerStall{Proto: proto}
	end := kill.Add(obs)
	from := kill.Add(-time.Second)
	var maxSeq uint32
	var last time.Time
	seen := map[uint32]bool{}
	var lo, hi uint32
	for _, f := range frames {
		if f.At.After(end) {
			break
		}
		if f.Seq <= maxSeq { // duplicate (GOP cache after a reconnect)
			continue
		}
		maxSeq = f.Seq
		if f.At.Before(from) {
			last = f.At
			continue
		}
		if lo == 0 {
			lo = f.Seq
		}
		hi = f.Seq
		seen[f.Seq] = true
		if !last.IsZero() {
			if g := f.At.Sub(last); float64(g)/1e6 > s.StallMs {
				s.StallMs = float64(g) / 1e6
			}
		}
		last = f.At
		if f.At.After(kill) {
			s.FramesAfter++
			if !s.Recovered && f.Sent.After(kill) {
				s.Recovered = true
				s.FirstNewMs = float64(f.At.Sub(kill)) / 1e6
			}
		}
	}
	if !s.Recovered {
		// No fresh frame within the window: the stall lasts at least until its end.
		if g := end.Sub(last); float64(g)/1e6 > s.StallMs {
			s.StallMs = float64(g) / 1e6
		}
	}
	if lo > 0 {
		s.Lost = int(hi-lo+1) - len(seen)
	}
	for _, d := range disc {
		if d.At.After(kill) && d.At.Before(end) {
			if s.Disconnects == 0 {
				s.DisconnAtMs = float64(d.At.Sub(kill)) / 1e6
				s.DisconnErr = d.Err
			}
			s.Disconnects++
		}
	}
	return s
}

// peerFailoverRun starts a fresh 3-node cluster, plays the synthetic stream at a node
// that is neither the master nor the publisher's ingress, SIGKILLs the master and
// observes for c.FailoverObserve.
//
// relayed: n3 runs with --max-streams 1 and already masters live/filler, so live/fo
// published at n3 is mastered elsewhere and relayed. Otherwise the publisher's own node
// n1 is the master; after the kill the publisher reconnects through n2.
func peerFailoverRun(ctx context.Context, c *cli, ps *procs, b *bins, dir string, relayed bool, run int, avcc []byte) (failoverRun, error) {
	fr := failoverRun{Case: "publisher-node-is-master", Run: run}
	if relayed {
		fr.Case = "relayed-publisher"
	}
	rdir := filepath.Join(dir, fmt.Sprintf("failover-%s-%d", fr.Case, run))
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return fr, err
	}
	nodes, err := startPeerCluster(ctx, ps, b.peer, rdir, 3, func(i int) []string {
		if relayed && i == 2 {
			return []string{"--max-streams", "1"}
		}
		return nil
	})
	defer func() {
		for _, n := range nodes {
			n.p.stop(6 * time.Second)
		}
	}()
	if err != nil {
		return fr, err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n1 := nodes[0] // the publisher's ingress
	if relayed {
		n1 = nodes[2]
	}
	fr.Ingress = n1.nodeName
	var pub *synthPublisher
	if relayed {
		filler := startSynthPublisher(pctx, []string{n1.rtmp}, "live", "filler", avcc)
		_ = filler
		if err := waitFor(ctx, 15*time.Second, "live/filler mastered at the ingress "+n1.nodeName, func() bool {
			a, ok := assignment(n1, "live/filler")
			return ok && a.Master == n1.nodeName
		}); err != nil {
			return fr, err
		}
		pub = startSynthPublisher(pctx, []string{n1.rtmp}, "live", "fo", avcc)
	} else {
		pub = startSynthPublisher(pctx, []string{n1.rtmp, nodes[1].rtmp}, "live", "fo", avcc)
	}
	var master *peerNode
	if err := waitFor(ctx, 15*time.Second, "live/fo placed with replicas", func() bool {
		a, ok := assignment(n1, "live/fo")
		if !ok || a.Master == "" || len(a.Replicas) == 0 {
			return false
		}
		master = byName(nodes, a.Master)
		return master != nil
	}); err != nil {
		return fr, err
	}
	fr.Master = master.nodeName
	if relayed && master == n1 {
		return fr, fmt.Errorf("live/fo mastered at the ingress %s despite --max-streams 1", n1.nodeName)
	}
	if !relayed && master != n1 {
		conns, errs := pub.events()
		return fr, fmt.Errorf("live/fo published at n1 but mastered at %s (publisher connects %v, errors %v)", master.nodeName, conns, errs)
	}
	var watcher *peerNode
	for _, n := range nodes {
		if n != master && n != n1 && (relayed || n == nodes[2]) {
			watcher = n
			break
		}
	}
	if watcher == nil {
		return fr, fmt.Errorf("no watcher node")
	}
	fr.Watcher = watcher.nodeName
	rt := startSynthPlayer(pctx, "rtmp", watcher.rtmp, "live", "fo", true, 15*time.Second)
	fl := startSynthPlayer(pctx, "http-flv", watcher.http, "live", "fo", true, 15*time.Second)
	if err := sleep(ctx, 4*time.Second); err != nil {
		return fr, err
	}
	if f, _, _ := rt.snapshot(); len(f) == 0 {
		return fr, fmt.Errorf("the watcher %s got no frames before the kill", watcher.nodeName)
	}
	kill := time.Now()
	master.kill()
	logf("  %s run %d: SIGKILLed master %s (ingress %s, watcher %s)", fr.Case, run, master.nodeName, n1.nodeName, watcher.nodeName)
	if err := sleepUntil(ctx, kill.Add(c.FailoverObserve)); err != nil {
		return fr, err
	}
	fr.Players = []playerStall{stallOf("rtmp", rt, kill, c.FailoverObserve), stallOf("http-flv", fl, kill, c.FailoverObserve)}
	conns, errs := pub.events()
	nerr := 0
	for _, e := range errs {
		if e.At.After(kill) {
			nerr++
		}
	}
	for _, e := range conns {
		if e.At.After(kill) {
			fr.PubReconn = float64(e.At.Sub(kill)) / 1e6
			fr.PubNote = fmt.Sprintf("reconnected via %s", e.Addr)
			break
		}
	}
	if fr.PubNote == "" {
		if nerr == 0 {
			fr.PubNote = "publisher connection never broke"
		} else {
			fr.PubNote = fmt.Sprintf("publisher failed %d times, not reconnected", nerr)
		}
	}
	for _, p := range fr.Players {
		logf("    %s player: stall %.0f ms, recovered %v (first new frame +%.0f ms), %d lost, %d disconnects", p.Proto, p.StallMs, p.Recovered, p.FirstNewMs, p.Lost, p.Disconnects)
	}
	logf("    publisher: %s", fr.PubNote)
	return fr, nil
}

func runPeerFailover(ctx context.Context, c *cli, ps *procs, b *bins, dir string, avcc []byte, rep *report) error {
	for _, relayed := range []bool{true, false} {
		for run := 1; run <= c.FailoverRuns; run++ {
			fr, err := peerFailoverRun(ctx, c, ps, b, dir, relayed, run, avcc)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fr.Err = err.Error()
				logf("  %s run %d failed: %v", fr.Case, run, err)
			}
			rep.PeerFailover = append(rep.PeerFailover, fr)
		}
	}
	return nil
}

// nginxFailover: synthetic publisher at the origin (falling back to the replica, which
// the origin pushes to), RTMP player at the edge (which pulls from the origin only);
// SIGKILL the origin and watch the edge player.
func nginxFailover(ctx context.Context, c *cli, origin, replica, edge *nginxInst, avcc []byte) (failoverRun, error) {
	fr := failoverRun{Case: "origin-kill", Run: 1, Master: "origin", Ingress: "origin", Watcher: "edge"}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pub := startSynthPublisher(pctx, []string{origin.rtmp, replica.rtmp}, "lat", "fo", avcc)
	if err := waitFor(ctx, 10*time.Second, "the publisher at the nginx origin", pub.isConnected); err != nil {
		return fr, err
	}
	pl := startSynthPlayer(pctx, "rtmp", edge.rtmp, "lat", "fo", true, 15*time.Second)
	if err := sleep(ctx, 4*time.Second); err != nil {
		return fr, err
	}
	if f, _, _ := pl.snapshot(); len(f) == 0 {
		return fr, fmt.Errorf("the edge player got no frames before the kill")
	}
	kill := time.Now()
	origin.kill()
	logf("  nginx: SIGKILLed the origin (master and worker); watching the edge player for %v", c.FailoverObserve)
	if err := sleepUntil(ctx, kill.Add(c.FailoverObserve)); err != nil {
		return fr, err
	}
	fr.Players = []playerStall{stallOf("rtmp", pl, kill, c.FailoverObserve)}
	conns, _ := pub.events()
	for _, e := range conns {
		if e.At.After(kill) {
			fr.PubReconn = float64(e.At.Sub(kill)) / 1e6
			fr.PubNote = "publisher reconnected to the replica; the edge does not pull from it"
			break
		}
	}
	p := fr.Players[0]
	logf("    edge player: stall %.0f ms, recovered %v, %d disconnects (first +%.0f ms: %s), %d frames after kill",
		p.StallMs, p.Recovered, p.Disconnects, p.DisconnAtMs, p.DisconnErr, p.FramesAfter)
	return fr, nil
}

func stallStats(runs []failoverRun, cs string) (p50, mx float64, n, recovered, disconnects int, pubReconn []float64) {
	var v []float64
	for _, r := range runs {
		if r.Case != cs || r.Err != "" {
			continue
		}
		for _, p := range r.Players {
			v = append(v, p.StallMs)
			n++
			if p.Recovered {
				recovered++
			}
			disconnects += p.Disconnects
		}
		if r.PubReconn > 0 {
			pubReconn = append(pubReconn, r.PubReconn)
		}
	}
	if len(v) == 0 {
		return 0, 0, 0, 0, 0, nil
	}
	slices.Sort(v)
	return pctl(v, 50), v[len(v)-1], n, recovered, disconnects, pubReconn
}
