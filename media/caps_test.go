package media

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"peer/media/flv"
)

var aacSeq = []byte{0xaf, 0, 0x12, 0x10}

// observedHub is testHub with its warnings recorded.
func observedHub(queue int) (*Hub, *observer.ObservedLogs) {
	core, logs := observer.New(zap.WarnLevel)
	cfg := DefaultConfig()
	cfg.QueueTags = queue
	return NewHub(cfg, zap.New(core)), logs
}

// TestAudioOnlyJoinerStarts: an audio-only stream keeps a short window of recent audio,
// so a player joining after minutes gets the sequence header and a start burst that fits
// its queue, then the live audio. Before, the cache grew to 16 MB: the joiner's queue
// overflowed, dropped the header, and the player waited for a keyframe forever.
func TestAudioOnlyJoinerStarts(t *testing.T) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "radio", "x", Origin)
	pub.Write(flv.TypeAudio, 0, aacSeq)
	ts := uint32(0)
	for range 10_000 { // about 4 minutes of AAC frames
		ts += 23
		pub.Write(flv.TypeAudio, ts, aacFrame)
	}
	pl, _ := h.Play("live", "radio", PlayOptions{Kind: "test", Remote: "late"})
	defer pl.Close()
	got, err := pl.Next(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || !got[0].IsSequenceHeader() || got[0].Type != flv.TypeAudio {
		t.Fatalf("start: %d tags, first %v", len(got), describe(got[:1]))
	}
	if span := got[len(got)-1].Time - got[1].Time; len(got) > 1+48 || span > audioCacheSpan.Milliseconds() {
		t.Fatalf("start burst of %d tags over %d ms", len(got), span)
	}
	pub.Write(flv.TypeAudio, ts+23, aacFrame)
	if got, _ := pl.Next(context.Background(), nil); len(got) != 1 || got[0].Time != int64(ts+23) {
		t.Fatalf("live audio after the start: %v", describe(got))
	}
}

// TestAudioOnlySkipResumesAtOnce: a player of an audio-only stream whose queue overflows
// resumes at the next audio frame, after the sequence header again.
func TestAudioOnlySkipResumesAtOnce(t *testing.T) {
	h := testHub(t, 8)
	pub, _ := h.Publish("live", "radio", "x", Origin)
	pub.Write(flv.TypeAudio, 0, aacSeq)
	pl, _ := h.Play("live", "radio", PlayOptions{Kind: "test", Remote: "slow"})
	defer pl.Close()
	for i := range 10 { // overflows once
		pub.Write(flv.TypeAudio, uint32(23*(i+1)), aacFrame)
	}
	got, err := pl.Next(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || !got[0].IsSequenceHeader() || got[1].Type != flv.TypeAudio || got[len(got)-1].Time != 230 {
		t.Fatalf("after overflow: %v", describe(got))
	}
}

// TestOverflowRequeuesSequenceHeader: a video player that overflows resumes at the next
// keyframe with the sequence header ahead of it (it went with the dropped backlog).
func TestOverflowRequeuesSequenceHeader(t *testing.T) {
	h := testHub(t, 4)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	for i := 1; i <= 6; i++ {
		pub.Write(flv.TypeVideo, uint32(i*40), interFr)
	}
	pub.Write(flv.TypeVideo, 400, keyframe)
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 2 || !got[0].IsSequenceHeader() || !got[1].IsKeyframe() || got[1].Time != 400 {
		t.Fatalf("after overflow: %v", describe(got))
	}
}

// TestGOPCacheBoundedByTime: a video stream with no keyframe for longer than GOPMaxTime
// drops its cache (logged once) and joiners start at the next keyframe.
func TestGOPCacheBoundedByTime(t *testing.T) {
	h, logs := observedHub(4096)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	for i := 1; i <= 1000; i++ { // 40 s of inter frames
		pub.Write(flv.TypeVideo, uint32(i*40), interFr)
	}
	s := h.Lookup("live", "a")
	s.mu.Lock()
	n := len(s.gop.tags())
	s.mu.Unlock()
	if max := int(h.cfg.GOPMaxTime / (40 * time.Millisecond)); n > max {
		t.Fatalf("GOP cache holds %d tags after 40 s without a keyframe, bound %d", n, max)
	}
	if c := logs.FilterMessageSnippet("GOP cache").Len(); c != 1 {
		t.Fatalf("%d GOP cache lines, want 1", c)
	}
	pub.Write(flv.TypeVideo, 40_040, keyframe)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 2 || !got[1].IsKeyframe() {
		t.Fatalf("joiner got %v", describe(got))
	}
}

// TestGOPCacheFitsTheQueue: the cache never holds more tags than a joiner's queue takes
// with room for live tags, so the start burst cannot overflow it.
func TestGOPCacheFitsTheQueue(t *testing.T) {
	h := testHub(t, 32)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, avcSeq)
	pub.Write(flv.TypeVideo, 0, keyframe)
	for i := 1; i <= 100; i++ {
		pub.Write(flv.TypeVideo, uint32(i*10), interFr)
	}
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	got, _ := pl.Next(context.Background(), nil)
	if len(got) > 32 || len(got) == 0 || !got[0].IsSequenceHeader() {
		t.Fatalf("joiner got %d tags: %v", len(got), describe(got[:1]))
	}
}

// TestTimestampJumpsRebased: a track that jumps forward or back by more than the bounds
// is rebased onto the stream's time, logged once (rate-limited); small steps back, as
// B-frames and audio/video skew make, pass.
func TestTimestampJumpsRebased(t *testing.T) {
	h, logs := observedHub(256)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeVideo, 0, keyframe)
	pub.Write(flv.TypeVideo, 40, interFr)
	pub.Write(flv.TypeVideo, 0x7fffffff, interFr) // forward: rebased to 80
	pub.Write(flv.TypeVideo, 0x7fffffff+40, interFr)
	pub.Write(flv.TypeVideo, 5, interFr)          // back: rebased to 160
	pub.Write(flv.TypeVideo, 0, interFr)          // 5 ms back: passes, 155
	pub.Write(flv.TypeVideo, 0xfffffff0, interFr) // a late tag from before the wrap: 16 ms back
	pub.Write(flv.TypeAudio, 200, aacFrame)       // after a wrap of the shared clock: rebased to video
	pub.Write(flv.TypeAudio, 223, aacFrame)
	got, _ := pl.Next(context.Background(), nil)
	want := []int64{0, 40, 80, 120, 160, 155, 139, 140, 163}
	if len(got) != len(want) {
		t.Fatalf("got %v", describe(got))
	}
	for i, w := range want {
		if got[i].Time != w {
			t.Fatalf("tag %d at %d, want %d: %v", i, got[i].Time, w, describe(got))
		}
	}
	if n := logs.FilterMessageSnippet("jumped").Len(); n != 1 {
		t.Fatalf("%d jump lines, want 1 (rate-limited)", n)
	}
}

// TestAbsurdPublisherDoesNotLeak: a publisher whose clock jumps to 0x7fffffff and back
// leaves the stream's time where its sane tags were, so the next publisher of the name
// continues from there (before, the stream's players and packager saw 24 days pass).
func TestAbsurdPublisherDoesNotLeak(t *testing.T) {
	h := testHub(t, 256)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	bad, _ := h.Publish("live", "a", "x", Origin)
	bad.Write(flv.TypeVideo, 0, avcSeq)
	bad.Write(flv.TypeVideo, 0, keyframe)
	bad.Write(flv.TypeVideo, 0x7fffffff, keyframe)
	bad.Write(flv.TypeVideo, 10, keyframe)
	bad.Close()
	next, _ := h.Publish("live", "a", "y", Origin)
	next.Write(flv.TypeVideo, 0, keyframe)
	next.Write(flv.TypeVideo, 40, interFr)
	got, _ := pl.Next(context.Background(), nil)
	for _, tag := range got {
		if tag.Time > 1000 {
			t.Fatalf("stream time went to %d: %v", tag.Time, describe(got))
		}
	}
	if len(got) != 6 || got[5].Time <= got[3].Time {
		t.Fatalf("got %v", describe(got))
	}
}

// TestVideoAppearsInAudioOnlyStream: once video appears, the audio window goes and
// joiners start at a keyframe, not at inter frames that follow the audio.
func TestVideoAppearsInAudioOnlyStream(t *testing.T) {
	h := testHub(t, 256)
	pub, _ := h.Publish("live", "a", "x", Origin)
	pub.Write(flv.TypeAudio, 0, aacSeq)
	for i := range 20 {
		pub.Write(flv.TypeAudio, uint32(23*i), aacFrame)
	}
	pub.Write(flv.TypeVideo, 460, avcSeq)
	pub.Write(flv.TypeVideo, 480, interFr)
	pl, _ := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
	defer pl.Close()
	got, _ := pl.Next(context.Background(), nil)
	if len(got) != 2 || !got[0].IsSequenceHeader() || !got[1].IsSequenceHeader() {
		t.Fatalf("joiner got %v", describe(got))
	}
}

// TestLinkJoinsAudioOnlyMidWindow: a cluster link joining an audio-only stream whose
// window holds the latest control tag gets it once, where it is, not ahead of older audio.
func TestLinkJoinsAudioOnlyMidWindow(t *testing.T) {
	h := testHub(t, 256)
	pub, _ := h.Publish("live", "a", "node:n1", Copy)
	pub.Write(flv.TypeAudio, 0, aacSeq)
	pub.Write(flv.TypeAudio, 0, aacFrame)
	pub.WriteAt(flv.TypeScript, 23, ctlTag(23).Data())
	pub.Write(flv.TypeAudio, 23, aacFrame)
	link, _ := h.Play("live", "a", PlayOptions{Kind: "link", Remote: "n2", Link: true})
	defer link.Close()
	got, _ := link.Next(context.Background(), nil)
	if len(got) != 4 || !got[0].IsSequenceHeader() || got[1].Time != 0 || !isCtl(got[2]) || got[3].Time != 23 {
		t.Fatalf("link got %v", describe(got))
	}
}
