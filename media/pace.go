package media

import "time"

// pacer merges a stream's writes to its viewers when writing one per video frame takes
// too much of the node's time. On loopback and fast links the kernel takes every write
// at once, so a node (or host) too busy for the audience does not slow its writes down:
// it falls behind the live edge, and every player with it. Past a load, each write of a
// round carries more frames instead: the players get the same tags, later by at most
// maxPaceWindow, in fewer system calls on both ends. A configured MergeWrite is the
// floor. Owned by the stream's writer (under wmu).
type pacer struct {
	window int64 // ms of media a merged write gathers now; 0: one write per video frame
	load   float64
	at     int64 // media time of the last round observed
	seen   bool
}

const (
	// maxPaceWindow is SRS's default merged write (mw_latency): the latency a player
	// gives up, at most, when the node is overloaded.
	maxPaceWindow = 350 // ms
	// minPaceWindow is the first step: about two frames of 25 fps video per write.
	minPaceWindow = 80 // ms
	// A round is a fan-out that woke the viewers; its load is the wall time it took
	// over the media time since the one before. The window doubles when the average
	// load passes paceGrow and halves under paceShrink, far enough apart that a halved
	// window, which about doubles the load, does not grow again.
	paceGrow   = 0.5
	paceShrink = 0.125
)

// observe accounts a round at media time at that took cost of wall time, and reports
// that the window grew.
func (pc *pacer) observe(at int64, cost time.Duration) (grew bool) {
	since := at - pc.at
	pc.at = at
	if !pc.seen || since <= 0 || since > time.Second.Milliseconds() {
		pc.seen = true // first round, or a clock jump: nothing to compare
		return false
	}
	load := float64(cost.Microseconds()) / float64(since*1000)
	pc.load += (load - pc.load) / 8
	switch {
	case pc.load > paceGrow && pc.window < maxPaceWindow:
		pc.window = min(max(2*pc.window, minPaceWindow), maxPaceWindow)
		pc.load /= 2 // what the doubled window is expected to bring
		return true
	case pc.load < paceShrink && pc.window > 0:
		if pc.window /= 2; pc.window < minPaceWindow {
			pc.window = 0
		}
		pc.load *= 2
	}
	return false
}
