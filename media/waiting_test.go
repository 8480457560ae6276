package media

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
)

// unplacedHub is a hub whose cluster places nothing but "live/placed".
func unplacedHub(t *testing.T, maxWaiting int) *Hub {
	t.Helper()
	cfg := packagedConfig()
	cfg.Placed = func(app, name string) bool { return app+"/"+name == "live/placed" }
	cfg.MaxWaiting = maxWaiting
	h := NewHub(cfg, zap.NewNop())
	t.Cleanup(h.closeAll)
	return h
}

// Requests of viewers holding no connection (HLS) for streams nobody publishes create
// nothing; for a placed or published stream they are noted.
func TestWatchOfUnknownStreamsHoldsNoState(t *testing.T) {
	h := unplacedHub(t, 4)
	for i := range 1000 {
		if _, err := h.Watch("live", "nobody"+string(rune('a'+i%26))); !errors.Is(err, ErrNoStream) {
			t.Fatalf("Watch of an unknown stream: %v", err)
		}
	}
	if n := len(h.Streams()); n != 0 {
		t.Fatalf("%d streams after requests for unknown ones", n)
	}
	s, err := h.Watch("live", "placed")
	if err != nil || !s.WatchedWithin(time.Minute) || s.Viewers(time.Minute) != 1 || s.Viewers(0) != 0 {
		t.Fatalf("Watch of a placed stream (this node becomes an edge): %v", err)
	}
	pub, err := h.Publish("live", "here", "test", Origin)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := h.Watch("live", "here"); err != nil {
		t.Fatalf("Watch of a stream published here: %v", err)
	}
}

// At most MaxWaiting players wait for streams nobody publishes; players of placed or
// published streams and cluster links are not counted against it.
func TestWaitingPlayersAreCapped(t *testing.T) {
	h := unplacedHub(t, 3)
	var waiting []*Player
	for i := range 3 {
		p, err := h.Play("live", "soon"+string(rune('a'+i)), PlayOptions{Kind: "rtmp-play"})
		if err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, p)
	}
	if _, err := h.Play("live", "one-too-many", PlayOptions{Kind: "flv-play"}); !errors.Is(err, ErrTooManyWaiting) {
		t.Fatalf("player past the cap: %v", err)
	}
	if n := len(h.Streams()); n != 3 {
		t.Fatalf("%d streams, want the 3 waited for", n)
	}
	for _, o := range []PlayOptions{{Kind: "flv-play"}, {Kind: "link-pull", First: true}} {
		p, err := h.Play("live", "placed", o)
		if err != nil {
			t.Fatalf("%s of a placed stream refused: %v", o.Kind, err)
		}
		defer p.Close()
	}
	waiting[0].Close()
	p, err := h.Play("live", "now-there-is-room", PlayOptions{Kind: "flv-play"})
	if err != nil {
		t.Fatalf("a freed waiting slot was not reusable: %v", err)
	}
	p.Close()
	for _, p := range waiting[1:] {
		p.Close()
	}
}
