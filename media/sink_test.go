package media

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// fakeSink records what the fan-out wrote and answers with the scripted results.
type fakeSink struct {
	mu      sync.Mutex
	results []SinkResult // next answers; SinkDone once exhausted
	err     error
	written []int64 // tag times written
	calls   int
}

func (f *fakeSink) TryWrite(tags []*flv.Tag) (int, SinkResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return 0, SinkDone, f.err
	}
	r := SinkDone
	if len(f.results) > 0 {
		r, f.results = f.results[0], f.results[1:]
	}
	if r == SinkBusy {
		return 0, r, nil
	}
	for _, t := range tags {
		f.written = append(f.written, t.Time)
	}
	return len(tags), r, nil
}

func (f *fakeSink) times() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]int64(nil), f.written...)
}

// sinkPlayer returns a player whose goroutine took its start tags and is idle, and the
// publisher feeding it.
func sinkPlayer(t *testing.T, sink *fakeSink) (*Player, *Publisher) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	t.Cleanup(pl.Close)
	if got, err := pl.Next(context.Background(), nil); err != nil || len(got) != 2 {
		t.Fatalf("start tags: %v %v", describe(got), err)
	}
	pl.SetSink(sink)
	if _, ok, _ := nextWithin(pl, time.Millisecond); ok { // back to waiting, as after a write
		t.Fatal("unexpected batch")
	}
	return pl, pub
}

// idlePlayer joins live/a, takes its start tags and returns it idle with sink set: a
// player that keeps up, between two frames.
func idlePlayer(t testing.TB, h *Hub, opts PlayOptions, sink Sink) *Player {
	pl, _ := h.Play("live", "a", opts)
	t.Cleanup(pl.Close)
	pl.Next(context.Background(), nil)
	pl.SetSink(sink)
	nextWithin(pl, time.Millisecond) // back to idle
	return pl
}

// nextWithin is Next bounded in time: ok false when nothing came.
func nextWithin(pl *Player, d time.Duration) ([]*flv.Tag, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	got, err := pl.Next(ctx, nil)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, false, nil
	}
	return got, true, err
}

// A player whose goroutine is idle is written by the fan-out itself: audio rides with
// the next video frame, and the goroutine is never woken.
func TestFanOutWritesIdlePlayerInline(t *testing.T) {
	sink := &fakeSink{}
	pl, pub := sinkPlayer(t, sink)
	pub.Write(flv.TypeAudio, 10, aacFrame)
	if len(sink.times()) != 0 {
		t.Fatal("audio alone was written: it should wait for the next video frame")
	}
	pub.Write(flv.TypeVideo, 40, interFr)
	pub.Write(flv.TypeVideo, 80, interFr)
	if got := sink.times(); len(got) != 3 || got[0] != 10 || got[1] != 40 || got[2] != 80 {
		t.Fatalf("written inline: %v", got)
	}
	if got, ok, _ := nextWithin(pl, 20*time.Millisecond); ok {
		t.Fatalf("the goroutine was handed %v", describe(got))
	}
	if pl.BytesOut() != 3 {
		t.Fatalf("bytes out %d, want what the sink reported (3)", pl.BytesOut())
	}
}

// A partial write goes to the goroutine (it finishes the rest), and the fan-out does
// not write again until the goroutine went idle.
func TestPartialWriteHandsOverToGoroutine(t *testing.T) {
	sink := &fakeSink{results: []SinkResult{SinkPending}}
	pl, pub := sinkPlayer(t, sink)
	pub.Write(flv.TypeVideo, 40, interFr) // partly written
	pub.Write(flv.TypeVideo, 80, interFr) // the goroutine owns the connection: queued
	if got := sink.times(); len(got) != 1 || got[0] != 40 {
		t.Fatalf("written inline: %v", got)
	}
	got, ok, err := nextWithin(pl, time.Second)
	if !ok || err != nil || len(got) != 1 || got[0].Time != 80 {
		t.Fatalf("goroutine's batch after the handover: %v %v %v", describe(got), ok, err)
	}
	// Idle again: the fan-out writes.
	if _, ok, _ := nextWithin(pl, 20*time.Millisecond); ok {
		t.Fatal("unexpected batch")
	}
	pub.Write(flv.TypeVideo, 120, interFr)
	if got := sink.times(); len(got) != 2 || got[1] != 120 {
		t.Fatalf("written inline after the goroutine went idle: %v", got)
	}
}

// A busy connection returns the tags to the queue, in order, for the goroutine.
func TestBusySinkRequeuesInOrder(t *testing.T) {
	sink := &fakeSink{results: []SinkResult{SinkBusy}}
	pl, pub := sinkPlayer(t, sink)
	pub.Write(flv.TypeAudio, 10, aacFrame)
	pub.Write(flv.TypeVideo, 40, interFr) // busy: nothing written
	pub.Write(flv.TypeVideo, 80, interFr) // goroutine owns it now
	got, ok, err := nextWithin(pl, time.Second)
	if !ok || err != nil || len(describe(got)) != 3 || got[0].Time != 10 || got[1].Time != 40 || got[2].Time != 80 {
		t.Fatalf("goroutine's batch: %v %v %v", describe(got), ok, err)
	}
	if len(sink.times()) != 0 {
		t.Fatalf("a busy sink wrote %v", sink.times())
	}
}

// A failed write ends the player with the error.
func TestSinkErrorClosesPlayer(t *testing.T) {
	boom := errors.New("connection reset")
	sink := &fakeSink{err: boom}
	pl, pub := sinkPlayer(t, sink)
	pub.Write(flv.TypeVideo, 40, interFr)
	if _, ok, err := nextWithin(pl, time.Second); !ok || !errors.Is(err, boom) {
		t.Fatalf("Next after a failed write: %v %v", ok, err)
	}
	pub.Write(flv.TypeVideo, 80, interFr)
	if sink.calls != 1 {
		t.Fatalf("the fan-out kept writing to a failed player: %d calls", sink.calls)
	}
}

// Many idle players are written by several goroutines at once, each exactly once per
// frame.
func TestFanOutShards(t *testing.T) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	const n = 3*fanOutShard + 5
	sinks := make([]*fakeSink, n)
	for i := range sinks {
		sinks[i] = &fakeSink{}
		idlePlayer(t, h, PlayOptions{Kind: "test"}, sinks[i])
	}
	for i := range 3 {
		pub.Write(flv.TypeVideo, uint32(40*(i+1)), interFr)
	}
	for i, s := range sinks {
		if got := s.times(); len(got) != 3 || got[2] != 120 {
			t.Fatalf("player %d written %v", i, got)
		}
	}
}

// orderSink notes in a shared log which sink each write went to.
type orderSink struct {
	name string
	log  *[]string
	mu   *sync.Mutex
}

func (o orderSink) TryWrite(tags []*flv.Tag) (int, SinkResult, error) {
	o.mu.Lock()
	*o.log = append(*o.log, o.name)
	o.mu.Unlock()
	return len(tags), SinkDone, nil
}

// A cluster link is written before every user player, however many users there are and
// whenever it subscribed: the hop behind it should not wait for the audience. An edge's
// link goes before forwards to replicas.
func TestFanOutWritesLinksFirst(t *testing.T) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	var (
		mu  sync.Mutex
		log []string
	)
	join := func(name string, o PlayOptions) {
		idlePlayer(t, h, o, orderSink{name: name, log: &log, mu: &mu})
	}
	for range 2*fanOutShard + 3 { // enough users to split the writes over goroutines
		join("user", PlayOptions{Kind: "test"})
	}
	join("forward", PlayOptions{Kind: "link-forward", Link: true})
	join("edge", PlayOptions{Kind: "link-pull", First: true})
	join("forward", PlayOptions{Kind: "link-forward", Link: true})
	for i := range 5 {
		mu.Lock()
		log = log[:0]
		mu.Unlock()
		pub.Write(flv.TypeVideo, uint32(40*(i+1)), interFr)
		mu.Lock()
		if len(log) != 2*fanOutShard+6 || log[0] != "edge" || log[1] != "forward" || log[2] != "forward" {
			t.Fatalf("frame %d: %d writes, first to %v; want the edge, then the forwards", i, len(log), log[:3])
		}
		mu.Unlock()
	}
}

// discardSink takes every write whole, as a socket with room does.
type discardSink struct{}

func (discardSink) TryWrite(tags []*flv.Tag) (int, SinkResult, error) {
	return len(tags), SinkDone, nil
}

// BenchmarkFanOutInline measures a published tag written straight to 1000 players that
// keep up (the fan-out's claim and hand-back around each Sink call): the cost per player
// and that allocations do not grow with players. video is one frame per write; av is a
// 2 Mbit/s clip's mix (three audio tags to two video frames, audio riding with video),
// at one write per frame and with 350 ms merged writes; ns/player is per tag.
func BenchmarkFanOutInline(b *testing.B) {
	for _, bc := range []struct {
		name  string
		av    bool
		merge time.Duration
	}{{"video", false, 0}, {"av", true, 0}, {"av-merge-350ms", true, 350 * time.Millisecond}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := packagedConfig()
			cfg.QueueTags, cfg.MergeWrite = 1024, bc.merge
			h := NewHub(cfg, zap.NewNop())
			pub, _ := h.Publish("live", "a", "x", Origin)
			pub.Write(flv.TypeVideo, 0, avcSeq)
			const players = 1000
			for range players {
				p, _ := h.Play("live", "a", PlayOptions{Kind: "bench", Remote: "p"})
				defer p.Close()
				p.SetSink(discardSink{})
			}
			payload := make([]byte, 10000)
			copy(payload, interFr)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if bc.av && i%5 < 3 {
					pub.Write(flv.TypeAudio, uint32(i*14), aacFrame)
				} else {
					pub.Write(flv.TypeVideo, uint32(i*14), payload)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/players, "ns/player")
		})
	}
}

// mergingStream is a hub with 100 ms merged writes and a publisher that sent its
// sequence header and a keyframe at 0.
func mergingStream() (*Hub, *Publisher) {
	cfg := DefaultConfig()
	cfg.MergeWrite = 100 * time.Millisecond
	h := NewHub(cfg, zap.NewNop())
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	return h, pub
}

// writeAV publishes a tag every 20 ms from from to to (ms): video at multiples of 40,
// audio between.
func writeAV(pub *Publisher, from, to uint32) {
	for ms := from; ms <= to; ms += 20 {
		if ms%40 == 0 {
			pub.Write(flv.TypeVideo, ms, interFr)
		} else {
			pub.Write(flv.TypeAudio, ms, aacFrame)
		}
	}
}

// With MergeWrite a user player is written once per window of media (audio and video
// gathered), a cluster link still every frame, and what is held goes out when the
// publisher leaves.
func TestMergeWrite(t *testing.T) {
	h, pub := mergingStream()
	sinks := map[bool]*fakeSink{false: {}, true: {}}
	players := map[bool]*Player{}
	for _, internal := range []bool{false, true} {
		players[internal] = idlePlayer(t, h, PlayOptions{Kind: "test", Link: internal}, sinks[internal])
	}
	writeAV(pub, 20, 240)
	// Video at 40..240: the link got each frame as it came (audio riding along)...
	if got := sinks[true].times(); len(got) != 12 || sinks[true].calls != 6 {
		t.Fatalf("link: %d writes of %v", sinks[true].calls, got)
	}
	// ...the player a write when 100 ms had passed since the last (at 120 and 240).
	if got := sinks[false].times(); sinks[false].calls != 2 || got[len(got)-1] != 240 {
		t.Fatalf("player: %d writes of %v", sinks[false].calls, got)
	}
	pub.Write(flv.TypeAudio, 250, aacFrame)
	pub.Write(flv.TypeVideo, 280, interFr)
	pub.Close()
	got, ok, err := nextWithin(players[false], time.Second)
	if !ok || err != nil || len(got) != 2 || got[1].Time != 280 {
		t.Fatalf("held tags after the publisher left: %v %v %v", describe(got), ok, err)
	}
}

// Tags that wake no viewer are held by the stream, not queued to each viewer one by
// one; a viewer joining while some are held gets them in its start burst, and every
// viewer gets each tag once, in order.
func TestHeldTagsReachEachViewerOnce(t *testing.T) {
	h, pub := mergingStream()
	early := &fakeSink{}
	first := idlePlayer(t, h, PlayOptions{Kind: "test"}, early)
	writeAV(pub, 20, 60)
	first.mu.Lock()
	queued := first.size
	first.mu.Unlock()
	if queued != 0 || len(early.times()) != 0 {
		t.Fatalf("within the window: %d tags queued to the viewer, %v written", queued, early.times())
	}
	late, _ := h.Play("live", "a", PlayOptions{Kind: "test"})
	t.Cleanup(late.Close)
	start, err := late.Next(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	lateSink := &fakeSink{}
	late.SetSink(lateSink)
	nextWithin(late, time.Millisecond)
	writeAV(pub, 80, 240)
	want := func(from uint32) []int64 {
		var w []int64
		for ms := from; ms <= 240; ms += 20 {
			w = append(w, int64(ms))
		}
		return w
	}
	if got := early.times(); fmt.Sprint(got) != fmt.Sprint(want(20)) {
		t.Fatalf("first viewer got %v", got)
	}
	var lateGot []int64
	for _, tag := range start {
		if !tag.IsSequenceHeader() {
			lateGot = append(lateGot, tag.Time)
		}
	}
	lateGot = append(lateGot, lateSink.times()...)
	if fmt.Sprint(lateGot) != fmt.Sprint(append([]int64{0}, want(20)...)) {
		t.Fatalf("viewer joining mid-window got %v (start burst %v)", lateGot, describe(start))
	}
}

// callSink records each TryWrite call's tags.
type callSink struct {
	mu    sync.Mutex
	calls [][]*flv.Tag
}

func (c *callSink) TryWrite(tags []*flv.Tag) (int, SinkResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, append([]*flv.Tag(nil), tags...))
	return len(tags), SinkDone, nil
}

func (c *callSink) take() [][]*flv.Tag {
	c.mu.Lock()
	defer c.mu.Unlock()
	calls := c.calls
	c.calls = nil
	return calls
}

// At a packager's control tag a link gets it and the keyframe it precedes in one write
// from the publisher's goroutine, whether this hub's packager made it (an origin) or it
// came in the copy (a copy's packager follows): its own goroutine is never woken for it.
func TestControlGoesOutWithKeyframeInline(t *testing.T) {
	for _, src := range []Source{Origin, Copy} {
		h := testHub(t, 64)
		pub, _ := h.Publish("live", "a", "x", src)
		pub.Write(flv.TypeVideo, 0, avcSeq)
		pub.Write(flv.TypeVideo, 0, keyframe)
		sink := &callSink{}
		link := idlePlayer(t, h, PlayOptions{Kind: "link", Link: true}, sink)
		sink.take()
		pub.Write(flv.TypeVideo, 40, interFr)
		const at = 2040
		if src == Copy {
			pub.WriteAt(flv.TypeScript, at, ctlTag(at).Data())
		}
		pub.Write(flv.TypeVideo, at, keyframe)
		calls := sink.take()
		if len(calls) != 2 || len(calls[1]) != 2 || !isCtl(calls[1][0]) || !calls[1][1].IsKeyframe() {
			var got []string
			for _, c := range calls {
				got = append(got, fmt.Sprint(describe(c)))
			}
			t.Fatalf("source %d: writes %v; want the frame, then control tag and keyframe in one", src, got)
		}
		if len(link.wake) != 0 {
			t.Fatalf("source %d: the link's goroutine was woken", src)
		}
		// A copy's packager is written the control tag ahead of the keyframe; an origin's
		// made it and is not.
		w := pub.Stream().Packagers()[0].(*testPackager).written
		if n := len(w); n < 2 || isCtl(w[n-2]) != (src == Copy) || !w[n-1].IsKeyframe() {
			t.Fatalf("source %d: packager written %v", src, describe(w))
		}
	}
}
