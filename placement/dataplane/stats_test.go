package dataplane

import "testing"

// TestLinkGauges: a living link is connecting until it comes up, each coming up counts
// a connect, and an ended link leaves the gauges.
func TestLinkGauges(t *testing.T) {
	var r Router
	end := r.gauges.pull.run()
	want := func(what string, up, connecting int64, connects uint64) {
		t.Helper()
		got := r.LinkStats()[2]
		if got != (LinkStats{Kind: LinkPull, Up: up, Connecting: connecting, Connects: connects}) {
			t.Fatalf("%s: %+v", what, got)
		}
	}
	want("started", 0, 1, 0)
	down := r.gauges.pull.connected()
	want("up", 1, 0, 1)
	down()
	want("down, retrying", 0, 1, 1)
	r.gauges.pull.connected()()
	end()
	want("ended", 0, 0, 2)
	if s := r.LinkStats(); s[0].Kind != LinkRelay || s[1].Kind != LinkForward {
		t.Fatalf("kinds %+v", s)
	}
}
