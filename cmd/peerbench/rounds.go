package main

import (
	"context"
	"fmt"
	"slices"
)

// round is one alternation at the largest N with both servers up: peer RTMP, nginx RTMP
// and peer HTTP-FLV measured back to back. The order flips every round (peer RTMP first,
// then last), so a drift of the shared machine's speed over the run weighs on both servers
// alike; the series above run each server at a different time and cannot cancel it.
type round struct {
	Round    int        `json:"round"`
	PeerRTMP stepResult `json:"peer_rtmp"`
	PeerFLV  stepResult `json:"peer_http_flv"`
	Nginx    stepResult `json:"nginx_rtmp"`
	Merged   []merged   `json:"merged,omitempty"` // peer with each --merge-write window
	Err      string     `json:"error,omitempty"`
}

// merged is one round's steps of a peer node run with a --merge-write window.
type merged struct {
	Window string     `json:"window"`
	RTMP   stepResult `json:"rtmp"`
	FLV    stepResult `json:"http_flv"`
}

// runRounds measures c.Rounds alternations at n players; a failure ends them with its
// error recorded.
func runRounds(ctx context.Context, c *cli, ps *procs, b *bins, dir string, clip clipInfo, rep *report, n int) {
	fail := func(err error) {
		if ctx.Err() == nil {
			rep.Rounds = append(rep.Rounds, round{Err: err.Error()})
			logf("rounds failed: %v", err)
		}
	}
	peer, err := startPeerTarget(ctx, ps, b, dir, clip, "peer", n, "")
	if err != nil {
		fail(err)
		return
	}
	defer peer.stop()
	ng, err := startNginxTarget(ctx, c, ps, dir, clip)
	if err != nil {
		fail(err)
		return
	}
	defer ng.stop()
	var mts []*fanTarget
	for _, w := range c.mergeWindows() {
		t, err := startPeerTarget(ctx, ps, b, dir, clip, mergeServer(w), n, "", "--merge-write", w.String())
		if err != nil {
			fail(err)
			return
		}
		defer t.stop()
		mts = append(mts, t)
	}
	for i := range c.Rounds {
		r := round{Round: i + 1, Merged: make([]merged, len(mts))}
		type step struct {
			t     *fanTarget
			proto string
			into  *stepResult
		}
		steps := []step{{peer, "rtmp", &r.PeerRTMP}, {ng, "rtmp", &r.Nginx}, {peer, "http-flv", &r.PeerFLV}}
		for j, t := range mts {
			r.Merged[j].Window = c.mergeWindows()[j].String()
			steps = append(steps, step{t, "rtmp", &r.Merged[j].RTMP}, step{t, "http-flv", &r.Merged[j].FLV})
		}
		if i%2 == 1 {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			st, err := s.t.step(ctx, c, ps, b, dir, clip, rep, s.proto, n, fmt.Sprintf("round%d-%s-%s", i+1, s.t.name, s.proto))
			if err != nil {
				r.Err = err.Error()
				break
			}
			*s.into = st
		}
		rep.Rounds = append(rep.Rounds, r)
		if r.Err != "" || ctx.Err() != nil {
			return
		}
	}
}

// roundRatios are peer's players per CPU second over nginx's, per complete round, for
// peer's RTMP and HTTP-FLV players (nginx: RTMP).
func roundRatios(rs []round) (rtmp, flv []float64) {
	for _, r := range rs {
		pr, pf, ng := playersPerCPUSec(&r.PeerRTMP), playersPerCPUSec(&r.PeerFLV), playersPerCPUSec(&r.Nginx)
		if r.Err != "" || ng <= 0 || pr <= 0 || pf <= 0 {
			continue
		}
		rtmp, flv = append(rtmp, pr/ng), append(flv, pf/ng)
	}
	return rtmp, flv
}
