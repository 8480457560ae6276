package dataplane

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"peer/media"
	"peer/media/flv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A relay delivering to this node's own hub must notice when the node is fenced off or
// the sink closed: local writes never fail by themselves, and a relay that keeps writing
// into a kicked publisher never re-points (chaos seed 7: a relayed publisher stayed
// connected, its stream dead, after its node was frozen).
func TestLocalSinkFailsOnceKickedOrClosed(t *testing.T) {
	tag := flv.NewTag(flv.TypeVideo, 0, []byte{0x17, 1, 0, 0, 0})
	for _, end := range []string{"kick", "close"} {
		h := media.NewHub(media.DefaultConfig(), zap.NewNop())
		pub, err := h.Publish("live", "a", "relay", media.Origin)
		if err != nil {
			t.Fatal(err)
		}
		finished := 0
		s := localSink{pub: pub, finish: func() { finished++ }, self: "n1", closed: new(atomic.Bool)}
		if _, err := s.write([]*flv.Tag{tag}); err != nil {
			t.Fatalf("write to a live local sink: %v", err)
		}
		if end == "kick" {
			h.Kick("live", "a", nil, errors.New("fenced"))
		} else {
			s.close()
			s.close()
		}
		if _, err := s.write([]*flv.Tag{tag}); !errors.Is(err, errLocalSinkGone) {
			t.Fatalf("write after %s: %v, want errLocalSinkGone", end, err)
		}
		if end == "close" && finished != 1 {
			t.Fatalf("finish ran %d times, want once", finished)
		}
	}
}

// fakeLink is a relaySink that records which path each tag took: inline, through
// TryWrite on the publisher's goroutine, or write, on the link's.
type fakeLink struct {
	mu              sync.Mutex
	inlined, queued int
}

func (f *fakeLink) write(tags []*flv.Tag) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued += len(tags)
	return 0, nil
}
func (f *fakeLink) close()             {}
func (f *fakeLink) node() string       { return "n2" }
func (f *fakeLink) inline() media.Sink { return f }
func (f *fakeLink) TryWrite(tags []*flv.Tag) (int, media.SinkResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inlined += len(tags)
	return 0, media.SinkDone, nil
}

func (f *fakeLink) counts() (inlined, queued int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inlined, f.queued
}

// A link to another node is written by the stream's fan-out, on the publisher's
// goroutine, while it keeps up: no goroutine is woken per frame, and the next node gets
// the frame before any local player.
func TestPumpWritesLinksInline(t *testing.T) {
	h := media.NewHub(media.DefaultConfig(), zap.NewNop())
	pub, err := h.Publish("live", "a", "test", media.Origin)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	player, err := h.Play("live", "a", media.PlayOptions{Kind: "link-forward", Link: true})
	if err != nil {
		t.Fatal(err)
	}
	defer player.Close()
	link := &fakeLink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pump(ctx, player, link) }()
	defer func() { cancel(); <-done }()

	// The start burst goes through the link's goroutine, which then hands the link to
	// the fan-out; on a loaded machine that takes a while, so frames are written until
	// one goes out inline (polled, bounded), and from then on every one must.
	pub.WriteAt(flv.TypeVideo, 0, []byte{0x17, 1, 0, 0, 0})
	at := int64(0)
	frame := func() {
		at += 40
		pub.WriteAt(flv.TypeVideo, at, []byte{0x27, 1, 0, 0, 0})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		in0, _ := link.counts()
		frame()
		if in, _ := link.counts(); in > in0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no frame was written inline")
		}
		time.Sleep(time.Millisecond)
	}
	in0, q0 := link.counts()
	for i := 1; i <= 10; i++ {
		frame()
		if in, q := link.counts(); in != in0+i || q != q0 {
			t.Fatalf("after frame %d: %d tags written inline, %d by the link's goroutine; want every frame inline", i, in-in0, q-q0)
		}
	}
}
