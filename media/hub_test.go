package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/media/flv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	avcSeq   = []byte{0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe0, 0}
	keyframe = []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65}
	interFr  = []byte{0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41}
	aacFrame = []byte{0xaf, 1, 0x21, 0x10}
)

func testHub(t testing.TB, queue int) *Hub {
	cfg := packagedConfig()
	cfg.QueueTags = queue
	return NewHub(cfg, zap.NewNop())
}

func TestValidateName(t *testing.T) {
	for _, bad := range []string{"", "..", "a/../b", "a/b", string(make([]byte, 257)), "x\x00", "a?b"} {
		if ValidateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"live", "test", "cam-1_hd.main", "ライブ"} {
		if err := ValidateName(good); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
}

func TestSecondPublisherRefused(t *testing.T) {
	h := testHub(t, 16)
	p1, err := h.Publish("live", "a", "x", Origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish("live", "a", "y", Origin); !errors.Is(err, ErrBusy) {
		t.Fatalf("second publisher: %v", err)
	}
	p1.Close()
	if _, err := h.Publish("live", "a", "y", Origin); err != nil {
		t.Fatalf("publisher after the first left: %v", err)
	}
}

// TestStartFromGOP checks a late player starts with the sequence header and the latest
// keyframe, sharing the publisher's bytes.
func TestStartFromGOP(t *testing.T) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	pub.Write(flv.TypeVideo, 40, interFr)
	pub.Write(flv.TypeVideo, 80, keyframe)
	pub.Write(flv.TypeAudio, 90, aacFrame)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	got, err := pl.Next(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !got[0].IsSequenceHeader() || !got[1].IsKeyframe() || got[1].Time != 80 || got[2].Type != flv.TypeAudio {
		t.Fatalf("start tags: %v", describe(got))
	}
	pub.Write(flv.TypeVideo, 120, interFr)
	pl2, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p2"})
	defer pl2.Close()
	a, _ := pl.Next(context.Background(), nil)
	b, _ := pl2.Next(context.Background(), nil)
	if &a[0].Raw[0] != &b[len(b)-1].Raw[0] {
		t.Fatal("players got different copies of one tag")
	}
}

// TestSlowPlayerSkipsThenDrops: a player that never reads is skipped to the next
// keyframe when its queue fills, then disconnected; the publisher never blocks and a
// reading player gets everything.
func TestSlowPlayerSkipsThenDrops(t *testing.T) {
	h := testHub(t, 8)
	pub, _ := h.Publish("live", "a", "x", Origin)
	slow, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "slow"})
	defer slow.Close()
	fast, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "fast"})
	defer fast.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	received := make(chan int)
	go func() {
		n := 0
		var buf []*flv.Tag
		for {
			var err error
			buf, err = fast.Next(ctx, buf[:0])
			n += len(buf)
			if err != nil {
				received <- n
				return
			}
		}
	}()
	pub.Write(flv.TypeVideo, 0, avcSeq)
	sent := 1
	start := time.Now()
	for i := range 200 {
		frame := interFr
		if i%10 == 0 {
			frame = keyframe
		}
		pub.Write(flv.TypeVideo, uint32(i*40), frame)
		sent++
		if i%8 == 0 {
			time.Sleep(time.Millisecond) // let the fast reader keep up
		}
	}
	// A publisher blocked by the slow player would not get here (the test's timeout).
	t.Logf("200 frames published in %v past a slow player", time.Since(start))
	if _, err := slow.Next(context.Background(), nil); !errors.Is(err, ErrTooSlow) {
		t.Fatalf("slow player: %v, want ErrTooSlow", err)
	}
	if _, players := h.Drops(); players != 1 {
		t.Fatalf("Drops counts %d players closed, want 1", players)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	if n := <-received; n != sent {
		t.Fatalf("fast player got %d of %d tags", n, sent)
	}
}

func TestSkipResumesAtKeyframe(t *testing.T) {
	h := testHub(t, 4)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	pub.Write(flv.TypeVideo, 0, keyframe)
	for i := 1; i <= 6; i++ { // overflows once, drops the backlog
		pub.Write(flv.TypeVideo, uint32(i*40), interFr)
	}
	pub.Write(flv.TypeVideo, 400, keyframe)
	pub.Write(flv.TypeVideo, 440, interFr)
	got, err := pl.Next(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].IsKeyframe() || got[0].Time != 400 {
		t.Fatalf("after overflow: %v", describe(got))
	}
	// Every tag before the second keyframe was dropped: the backlog and the skipped tail.
	if tags, players := h.Drops(); tags != 7 || players != 0 {
		t.Fatalf("Drops = %d tags, %d players; want 7, 0", tags, players)
	}
}

// TestPublisherRestartKeepsTimeGrowing: players that stay across publishers see time go
// on, and 32-bit wraps are unwrapped.
func TestPublisherRestartKeepsTimeGrowing(t *testing.T) {
	pl, pub2 := restartedAt5s(t)
	defer pl.Close()
	pub2.Write(flv.TypeVideo, 0xffffff00, keyframe) // 49.7 days in
	pub2.Write(flv.TypeVideo, 0xffffff80, interFr)
	pub2.Write(flv.TypeVideo, 0xfffffff0, interFr)
	pub2.Write(flv.TypeVideo, 30, interFr) // wrapped
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 5 {
		t.Fatalf("got %v", describe(got))
	}
	for i := 1; i < len(got); i++ {
		if got[i].Time <= got[i-1].Time {
			t.Fatalf("time went back: %v", describe(got))
		}
	}
	if got[4].Time < 1<<32 {
		t.Fatalf("wrap not unwrapped: %v", describe(got))
	}
}

// restartedAt5s: a player stays while a publisher sends a keyframe at 5 s and leaves;
// it returns the player and the second user publisher of the stream.
func restartedAt5s(t *testing.T) (*Player, *Publisher) {
	h := testHub(t, 64)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 5000, keyframe)
	pub.Close()
	pub2, err := h.Publish("live", "a", "y", Origin)
	if err != nil {
		t.Fatal(err)
	}
	return pl, pub2
}

func describe(tags []*flv.Tag) []string {
	var out []string
	for _, t := range tags {
		kind := map[uint8]string{8: "audio", 9: "video", 18: "data"}[t.Type]
		if t.IsKeyframe() {
			kind += "/key"
		}
		if t.IsSequenceHeader() {
			kind += "/seq"
		}
		out = append(out, kind+"@"+time.Duration(t.Time*int64(time.Millisecond)).String())
	}
	return out
}

// BenchmarkFanOut measures the publisher's cost per message with 1000 players: the
// payload is serialized once and shared, so allocations do not grow with players.
func BenchmarkFanOut(b *testing.B) {
	for _, players := range []int{1, 1000} {
		b.Run(map[int]string{1: "players=1", 1000: "players=1000"}[players], func(b *testing.B) {
			h := testHub(b, 1<<16)
			pub, _ := h.Publish("live", "a", "x", Origin)
			var ps []*Player
			for range players {
				p, _ := h.Play("live", "a", PlayOptions{Kind: "bench", Remote: "p"})
				ps = append(ps, p)
			}
			payload := make([]byte, 10000)
			copy(payload, interFr)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				pub.Write(flv.TypeVideo, uint32(i), payload)
				if i%48 == 47 { // players drain before their rings grow past the size they shrink back from
					b.StopTimer()
					for _, p := range ps {
						p.Next(context.Background(), nil)
					}
					b.StartTimer()
				}
			}
			b.StopTimer()
			for _, p := range ps {
				p.Close()
			}
		})
	}
}

// TestConfigTagsDoNotRebase: a relay re-pointed to a new master sends the old metadata
// and sequence headers (stamped at the stream's start) before new frames; they must not
// shift the timeline.
func TestConfigTagsDoNotRebase(t *testing.T) {
	pl, pub2 := restartedAt5s(t)
	defer pl.Close()
	pub2.Write(flv.TypeVideo, 0, avcSeq)
	pub2.Write(flv.TypeVideo, 5040, keyframe)
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 3 || got[1].Time != 5000 || got[2].Time != 5040 {
		t.Fatalf("got %v", describe(got))
	}
}

// TestQueueGrowsInOrder: a player's ring starts small and grows, keeping order, up to
// its limit.
func TestQueueGrowsInOrder(t *testing.T) {
	h := testHub(t, 300)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	pub.Write(flv.TypeVideo, 0, keyframe)
	for i := 1; i < 250; i++ {
		pub.Write(flv.TypeVideo, uint32(i), interFr)
	}
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 250 {
		t.Fatalf("got %d tags, want 250", len(got))
	}
	for i, tag := range got {
		if tag.Time != int64(i) {
			t.Fatalf("tag %d has time %d", i, tag.Time)
		}
	}
}

// TestKickFreesTheStreamAtOnce: a kicked publisher's stream takes its next publisher
// immediately, and late writes of the kicked one are dropped.
func TestKickFreesTheStreamAtOnce(t *testing.T) {
	h := testHub(t, 64)
	old, _ := h.Publish("live", "a", "node:n1", Copy)
	kicked := make(chan error, 1)
	old.OnKick(func(err error) { kicked <- err })
	if h.Kick("live", "a", func(p *Publisher) bool { return p.Source != Copy }, nil) {
		t.Fatal("kicked a feed with a user-only match")
	}
	if !h.Kick("live", "a", nil, ErrStreamClosed) {
		t.Fatal("no kick")
	}
	if err := <-kicked; err != ErrStreamClosed {
		t.Fatalf("kick reason %v", err)
	}
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	next, err := h.Publish("live", "a", "node:n2", Copy)
	if err != nil {
		t.Fatalf("stream still busy after a kick: %v", err)
	}
	old.Write(flv.TypeVideo, 40, keyframe)
	next.Write(flv.TypeVideo, 80, keyframe)
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 1 || got[0].Time != 80 {
		t.Fatalf("got %v", describe(got))
	}
}

// TestContinuingPublisherResumesAfterLastTag: a feed or a re-pointed relay replays its
// GOP; what the stream already has is dropped and the first later tag goes out even if
// it is not a keyframe (players hold the frames it refers to). A new user publisher
// with an older clock is shifted instead.
func TestContinuingPublisherResumesAfterLastTag(t *testing.T) {
	for _, src := range []Source{Copy, Resume} {
		h := testHub(t, 64)
		pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
		old, _ := h.Publish("live", "a", "x", Origin)
		old.Write(flv.TypeVideo, 1000, keyframe)
		old.Write(flv.TypeVideo, 1040, interFr)
		old.Close()
		next, _ := h.Publish("live", "a", "y", src)
		next.Write(flv.TypeVideo, 1000, keyframe) // replayed GOP
		next.Write(flv.TypeVideo, 1040, interFr)
		next.Write(flv.TypeVideo, 1080, interFr) // new
		got, _ := pl.Next(context.Background(), nil)
		if len(got) != 3 || got[2].Time != 1080 || got[2].IsKeyframe() {
			t.Fatalf("source %d: got %v", src, describe(got))
		}
		pl.Close()
	}
}

// TestLinkGetsLatestControlTag: a link joining mid-segment gets the latest control tag
// (an HLS segment's marker) ahead of the GOP; a viewer never sees control tags.
func TestLinkGetsLatestControlTag(t *testing.T) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "a", "node:n1", Copy)
	marker := ctlTag(0)
	pub.WriteAt(flv.TypeScript, 0, marker.Data())
	pub.Write(flv.TypeVideo, 0, keyframe)
	pub.Write(flv.TypeVideo, 40, interFr)
	pub.Write(flv.TypeVideo, 80, keyframe) // a new GOP inside segment 5
	link, _ := h.Play("live", "a", PlayOptions{Kind: "link", Remote: "n2", Link: true})
	defer link.Close()
	user, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer user.Close()
	got, _ := link.Next(context.Background(), nil)
	if len(got) != 2 || !isCtl(got[0]) || got[1].Time != 80 {
		t.Fatalf("link got %v", describe(got))
	}
	if got, _ := user.Next(context.Background(), nil); len(got) != 1 || isCtl(got[0]) {
		t.Fatalf("user got %v", describe(got))
	}
}

// frame returns a distinct inter or key frame body, so content can be matched.
func frame(key bool, n byte) []byte {
	b := append([]byte(nil), interFr...)
	if key {
		b = append([]byte(nil), keyframe...)
	}
	return append(b, n)
}

// A relay re-pointed to a new master replays its copy on the publisher's own clock. When
// the old master had shifted that publisher's time (the stream was older than the
// publish), the new master must place the replay by content: matching by time would
// drop everything until the publisher's clock caught up with the stream's (the chaos
// harness saw live/s3 stall for 20-30 s after a partition of its master).
func TestRepointedRelayAlignsByContent(t *testing.T) {
	h := testHub(t, 64)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	early, _ := h.Publish("live", "a", "first publisher", Origin)
	early.Write(flv.TypeVideo, 0, avcSeq)
	early.Write(flv.TypeVideo, 50_000, frame(true, 0))
	early.Close()
	// The user publishes again, clock from 1000: the stream shifts it past 50 000.
	user, _ := h.Publish("live", "a", "user", Origin)
	user.Write(flv.TypeVideo, 1000, frame(true, 1))
	user.Write(flv.TypeVideo, 1040, frame(false, 2))
	user.Close()
	drain := func() []*flv.Tag {
		got, _, _ := nextWithin(pl, time.Second)
		return got
	}
	before := drain()
	if len(before) == 0 {
		t.Fatal("nothing played")
	}
	last := before[len(before)-1].Time
	if last <= 50_000 {
		t.Fatalf("the second publish was not shifted: %v", describe(before))
	}
	relay, _ := h.Publish("live", "a", "relay", Resume)
	relay.Write(flv.TypeVideo, 0, avcSeq)
	relay.Write(flv.TypeVideo, 1000, frame(true, 1))  // replayed
	relay.Write(flv.TypeVideo, 1040, frame(false, 2)) // replayed
	relay.Write(flv.TypeVideo, 1080, frame(false, 3)) // new
	got := drain()
	if len(got) != 1 || got[0].Time != last+40 || got[0].Data()[len(got[0].Data())-1] != 3 {
		t.Fatalf("after re-pointing: got %v, want only the new frame at %d", describe(got), last+40)
	}
	// Without a common tag the relay starts a new timeline past the stream's end.
	relay.Close()
	other, _ := h.Publish("live", "a", "relay2", Resume)
	other.Write(flv.TypeVideo, 7000, frame(true, 9))
	got = drain()
	if len(got) != 1 || got[0].Time <= last+40 {
		t.Fatalf("unmatched relay: got %v", describe(got))
	}
}

// TestCopySwitchKeepsNewTimelinesKeyframe: an edge's copy switches upstream after a
// change of master. The new master's timeline (its replica had a little less than the
// edge: a new publisher's first keyframe was placed just after the replica's last tag)
// starts with a keyframe at or before the edge's last time. The catch-up drops only what
// the stream holds: that keyframe is not in its GOP cache, so it and what follows go out.
// Before, the keyframe and the frames up to the edge's last time were dropped and the
// players got inter frames of the new timeline without its keyframe (a corrupt picture
// until the next one). A replay of what the stream holds is still dropped. The new
// timeline goes on after the edge's last time: at the source's time, the players that
// stayed saw time go back.
func TestCopySwitchKeepsNewTimelinesKeyframe(t *testing.T) {
	h := testHub(t, 64)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	old, _ := h.Publish("live", "a", "node:n1", Copy)
	old.Write(flv.TypeVideo, 0, avcSeq)
	old.Write(flv.TypeVideo, 1000, frame(true, 1))
	old.Write(flv.TypeVideo, 1040, frame(false, 2))
	old.Write(flv.TypeVideo, 1080, frame(false, 3)) // the replica never got this one
	old.Close()
	if got, _, _ := nextWithin(pl, time.Second); len(got) == 0 || got[len(got)-1].Time != 1080 {
		t.Fatalf("before the switch: %v", describe(got))
	}
	next, _ := h.Publish("live", "a", "node:n2", Copy)
	next.Write(flv.TypeVideo, 0, avcSeq)
	next.Write(flv.TypeVideo, 1000, frame(true, 1))  // the new master's GOP cache: the old timeline
	next.Write(flv.TypeVideo, 1040, frame(false, 2)) // (held: dropped)
	next.Write(flv.TypeVideo, 1041, frame(true, 7))  // a new publisher's keyframe, after the replica's last tag
	next.Write(flv.TypeVideo, 1081, frame(false, 8))
	next.Write(flv.TypeVideo, 1121, frame(false, 9))
	got, _, _ := nextWithin(pl, time.Second)
	var bodies []byte
	for _, tg := range got {
		bodies = append(bodies, tg.Data()[len(tg.Data())-1])
	}
	if string(bodies) != "\x07\x08\x09" || !got[0].IsKeyframe() || got[0].Time <= 1080 {
		t.Fatalf("after the switch: got %v, want the new keyframe (at 1041 on its clock) and its frames after 1080", describe(got))
	}
	next.Close()

	// The same when the edge already has a keyframe the replica never got: the new
	// timeline's keyframe lands in the GOP before the edge's latest.
	old, _ = h.Publish("live", "a", "node:n2", Copy)
	old.Write(flv.TypeVideo, 1161, frame(true, 10))
	old.Write(flv.TypeVideo, 1201, frame(false, 11))
	old.Write(flv.TypeVideo, 1241, frame(true, 12)) // the replica never got this one
	old.Close()
	nextWithin(pl, time.Second)
	next, _ = h.Publish("live", "a", "node:n3", Copy)
	next.Write(flv.TypeVideo, 1161, frame(true, 10)) // held: dropped
	next.Write(flv.TypeVideo, 1202, frame(true, 13)) // new timeline
	next.Write(flv.TypeVideo, 1242, frame(false, 14))
	got, _, _ = nextWithin(pl, time.Second)
	if len(got) != 2 || got[0].Time <= 1241 || got[1].Time-got[0].Time != 40 || !got[0].IsKeyframe() {
		t.Fatalf("after the second switch: got %v, want the new keyframe (at 1202 on its clock) after 1241, and its frame", describe(got))
	}
	next.Close()
}

// TestCopyNewTimelineNeverGoesBack: after a majority loss a stream re-published on a
// degraded survivor is adopted by placement, and an edge's copy switches to it: its
// timeline started 1.6 s behind what the edge's players already had. The player that
// stayed sees every tag at or after the last one it got, with the frames' spacing kept
// (chaos majority-loss: video time went back 1.6 s at two edges).
func TestCopyNewTimelineNeverGoesBack(t *testing.T) {
	h := testHub(t, 64)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	old, _ := h.Publish("live", "a", "node:n1", Copy)
	old.Write(flv.TypeVideo, 0, avcSeq)
	for i := 0; i < 50; i++ {
		old.Write(flv.TypeVideo, uint32(10_000+40*i), frame(i == 0 || i == 25, byte(i)))
	}
	old.Close()
	got, _, _ := nextWithin(pl, time.Second)
	last := got[len(got)-1].Time // 11960
	next, _ := h.Publish("live", "a", "node:n2", Copy)
	next.Write(flv.TypeVideo, 10_000, avcSeq)
	for i := 0; i < 10; i++ {
		next.Write(flv.TypeVideo, uint32(10_360+40*i), frame(i == 0, byte(100+i))) // 1.6 s behind
		next.Write(flv.TypeAudio, uint32(10_370+40*i), []byte{0xaf, 0x01, byte(i)})
	}
	got, _, _ = nextWithin(pl, time.Second)
	var video []*flv.Tag
	for _, tg := range got {
		if tg.Time < last {
			t.Fatalf("time went back from %d: %v", last, describe(got))
		}
		if tg.Type == flv.TypeVideo && !isConfig(tg) {
			video = append(video, tg)
		}
	}
	if len(video) != 10 || !video[0].IsKeyframe() || video[9].Time-video[0].Time != 360 {
		t.Fatalf("after the switch: got %v, want the new timeline's 10 frames from its keyframe, 40 ms apart", describe(got))
	}
	next.Close()
}
