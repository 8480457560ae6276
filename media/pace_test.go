package media

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// The pacer keeps one write per frame at a light load, doubles its window while rounds
// take over half of the media time they cover, holds it once the load settles between
// its bounds, and gives it back when the load falls; clock jumps are not loads.
func TestPacerWindow(t *testing.T) {
	var pc pacer
	at := int64(0)
	// rounds runs n fan-outs of 25 fps video, each taking cost: one per frame, or one
	// per window of media once the pacer merges.
	rounds := func(n int, cost time.Duration) {
		for range n {
			at += max(40, pc.window)
			pc.observe(at, cost)
		}
	}
	for _, step := range []struct {
		cost time.Duration
		want int64
	}{
		{2 * time.Millisecond, 0},              // 5% of real time
		{30 * time.Millisecond, minPaceWindow}, // 75%, then 37% merged
		{90 * time.Millisecond, 320},           // settles under paceGrow: 28%
		{200 * time.Millisecond, maxPaceWindow},
		{time.Millisecond, 0},
	} {
		rounds(200, step.cost)
		if pc.window != step.want {
			t.Fatalf("rounds of %v: window %d ms, want %d", step.cost, pc.window, step.want)
		}
	}
	for _, jump := range []int64{5000, -5000} { // a publisher's clock jumps
		at += jump
		if pc.observe(at, 10*time.Second); pc.window != 0 {
			t.Fatalf("clock jump of %d ms moved the window to %d ms", jump, pc.window)
		}
	}
}

// slowSink takes a fixed wall time per write, as a node too busy for its audience does.
type slowSink struct {
	fakeSink
	delay time.Duration
}

func (s *slowSink) TryWrite(tags []*flv.Tag) (int, SinkResult, error) {
	time.Sleep(s.delay)
	return s.fakeSink.TryWrite(tags)
}

// A stream whose writes to its viewers take most of real time merges them (one write
// per frame would leave its players ever further behind), and every tag still reaches
// the viewer once, in order.
func TestSlowFanOutMergesWrites(t *testing.T) {
	h := NewHub(DefaultConfig(), zap.NewNop())
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	sink := &slowSink{delay: 30 * time.Millisecond} // each frame covers 40 ms
	pl := idlePlayer(t, h, PlayOptions{Kind: "test"}, sink)
	var want []int64
	const frames = 40
	for ms := uint32(40); ms <= 40*frames; ms += 40 {
		pub.Write(flv.TypeVideo, ms, interFr)
		want = append(want, int64(ms))
	}
	pub.Close()
	got := sink.times()
	held, _, err := nextWithin(pl, time.Second) // the tags of the window in progress
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range held {
		got = append(got, int64(tag.Time))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("viewer got %v", got)
	}
	sink.mu.Lock()
	calls := sink.calls
	sink.mu.Unlock()
	if calls >= frames {
		t.Fatalf("%d writes for %d frames: not merged", calls, frames)
	}
}
