package media

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// closedErr reports the error a player was closed with, nil while it is open.
func closedErr(p *Player) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// TestPublishPlayRaceIdleSweep: a Publish or Play racing the idle sweep never attaches
// to a stream the sweep has just removed. Before, a publisher could feed a stream no
// longer in the hub (invisible to players and the cluster), and a player could wait on
// one forever.
func TestPublishPlayRaceIdleSweep(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IdleTimeout = 0 // every vacant stream goes at each sweep
	h := NewHub(cfg, zap.NewNop())
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				h.maintain(time.Now().Add(time.Hour), time.Second)
			}
		}
	})
	var players []*Player
	for range 2000 {
		pub, err := h.Publish("live", "a", "x", Origin)
		if err != nil {
			t.Fatal(err)
		}
		if h.Lookup("live", "a") != pub.Stream() {
			t.Fatal("publisher attached to a stream the sweep removed")
		}
		pub.Close()
		pl, err := h.Play("live", "a", PlayOptions{Kind: "test", Remote: "p"})
		if err != nil {
			t.Fatal(err)
		}
		players = append(players, pl)
	}
	close(stop)
	wg.Wait()
	// A player is either closed by the sweep or subscribed to the stream the hub holds.
	for _, pl := range players {
		if closedErr(pl) == nil && h.Lookup("live", "a") != pl.stream {
			t.Fatal("player subscribed to a stream the sweep removed, never to be fed or closed")
		}
	}
	h.closeAll()
}

// TestKickedWriteDoesNotOverlapSuccessor: the writes of a kicked publisher still in
// flight do not overlap its successor's (go test -race reported it in the HLS muxer; here, in testPackager).
func TestKickedWriteDoesNotOverlapSuccessor(t *testing.T) {
	h := NewHub(packagedConfig(), zap.NewNop())
	defer h.closeAll()
	for round := range 20 {
		old, err := h.Publish("live", "a", "x", Origin)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() {
			old.Write(flv.TypeAudio, 0, aacSeq)
			for i := range 2000 {
				old.Write(flv.TypeAudio, uint32(i*23), aacFrame)
			}
		})
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		h.Kick("live", "a", nil, ErrKicked)
		next, err := h.Publish("live", "a", "x", Origin)
		if err != nil {
			t.Fatal(err)
		}
		next.Write(flv.TypeAudio, 0, aacSeq)
		for i := range 500 {
			next.Write(flv.TypeAudio, uint32(i*23), aacFrame)
		}
		wg.Wait()
		old.Close()
		next.Close()
	}
}

// TestShutdownWithLivePublishers: a node shut down while its publishers write (the
// hub's Run ends) releases the packagers after the writes in flight. Before, the HLS
// muxer was closed under a write and flushAudio dereferenced its nil segment.
func TestShutdownWithLivePublishers(t *testing.T) {
	h := NewHub(packagedConfig(), zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c", "d"} {
		pub, err := h.Publish("live", name, "x", Origin)
		if err != nil {
			t.Fatal(err)
		}
		kicked := make(chan struct{})
		pub.OnKick(func(error) { close(kicked) })
		wg.Go(func() {
			defer pub.Close()
			pub.Write(flv.TypeAudio, 0, aacSeq)
			for i := 0; ; i++ {
				select {
				case <-kicked: // the shutdown tells the publisher, as it closes a connection
					return
				case <-done:
					return
				default:
				}
				pub.Write(flv.TypeAudio, uint32(i*23), aacFrame)
			}
		})
	}
	time.Sleep(time.Millisecond)
	cancel()
	<-done
	wg.Wait()
}

// TestSendPanicReleasesStreamLock: a panic while the stream's lock is held (recovered by
// the publishing session) leaves the stream unlocked; before, the hub, the API and load
// gossip then blocked on it for good.
func TestSendPanicReleasesStreamLock(t *testing.T) {
	h := testHub(t, 64)
	pub, _ := h.Publish("live", "a", "x", Origin)
	s := pub.Stream()
	s.mu.Lock()
	s.players[nil] = struct{}{} // a broken player: the fan-out panics on it
	s.mu.Unlock()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		pub.Write(flv.TypeVideo, 0, keyframe)
	}()
	if !s.mu.TryLock() {
		t.Fatal("stream left locked by a panic")
	}
	delete(s.players, nil)
	s.mu.Unlock()
	if !s.wmu.TryLock() {
		t.Fatal("stream's write lock left locked by a panic")
	}
	s.wmu.Unlock()
	h.closeAll() // not deferred: after a failure it would block on the stream's lock
}
