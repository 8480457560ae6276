package media

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

// unplacedHub is a hub whose cluster places nothing but "live/placed".
func unplacedHub(t *testing.T, maxWaiting int, dir string) *Hub {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Placed = func(app, name string) bool { return app+"/"+name == "live/placed" }
	cfg.MaxWaiting = maxWaiting
	cfg.HLS.Dir = dir
	cfg.HLSIdle = 0
	h := NewHub(cfg, zap.NewNop())
	t.Cleanup(h.closeAll)
	return h
}

// HLS requests for streams nobody publishes create nothing, on disk neither.
func TestHLSForUnknownStreamsHoldsNoState(t *testing.T) {
	dir := t.TempDir()
	h := unplacedHub(t, 4, dir)
	for i := range 1000 {
		if _, err := h.WatchHLS("live", "nobody"+string(rune('a'+i%26))); !errors.Is(err, ErrNoStream) {
			t.Fatalf("WatchHLS of an unknown stream: %v", err)
		}
	}
	if n := len(h.Streams()); n != 0 {
		t.Fatalf("%d streams after HLS requests for unknown ones", n)
	}
	if _, err := h.WatchHLS("live", "placed"); err != nil {
		t.Fatalf("WatchHLS of a placed stream (this node becomes an edge): %v", err)
	}
	pub, err := h.Publish("live", "here", "test", User)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := h.WatchHLS("live", "here"); err != nil {
		t.Fatalf("WatchHLS of a stream published here: %v", err)
	}
	// Players waiting for an unknown stream get one; it leaves no directory.
	p, err := h.Play("live", "later", PlayOptions{Kind: "flv-play"})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	h.closeAll()
	entries, _ := os.ReadDir(filepath.Join(dir, "live"))
	for _, e := range entries {
		t.Errorf("left in --hls-dir: %s", e.Name())
	}
}

// At most MaxWaiting players wait for streams nobody publishes; players of placed or
// published streams and cluster links are not counted against it.
func TestWaitingPlayersAreCapped(t *testing.T) {
	h := unplacedHub(t, 3, "")
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
	for _, o := range []PlayOptions{{Kind: "flv-play"}, {Kind: "link-pull", Pull: true}} {
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
