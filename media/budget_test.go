package media

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestNodeStreamBudget: two hubs sharing a budget hold at most MaxStreams streams
// between them, refusing the next one with ErrTooManyStreams until one is dropped.
func TestNodeStreamBudget(t *testing.T) {
	b := &Budget{MaxStreams: 2}
	cfg := DefaultConfig()
	cfg.Budget = b
	main, relay := NewHub(cfg, zap.NewNop()), NewHub(cfg, zap.NewNop())
	p1, err := main.Publish("live", "a", "10.0.0.1:1", Origin)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := relay.Play("live", "b", PlayOptions{Kind: "test"}) // a waiting player's stream counts
	if err != nil {
		t.Fatal(err)
	}
	if _, err := main.Publish("live", "c", "10.0.0.1:2", Origin); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("third stream: %v", err)
	}
	if _, err := main.Play("live", "c", PlayOptions{Kind: "test"}); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("third stream for a player: %v", err)
	}
	if _, err := main.Publish("live", "a", "10.0.0.1:3", Origin); !errors.Is(err, ErrBusy) {
		t.Fatalf("an existing stream is not a new one: %v", err)
	}
	pl.Close()
	relay.maintain(time.Now().Add(time.Hour), time.Second)
	if _, err := main.Publish("live", "c", "10.0.0.1:2", Origin); err != nil {
		t.Fatalf("after a stream was dropped: %v", err)
	}
	p1.Close()
	main.closeAll()
	relay.closeAll()
	if n := b.Streams(); n != 0 {
		t.Fatalf("%d streams counted after closing both hubs", n)
	}
}

// TestPublishesPerIP: one client address publishes at most MaxPublishesPerIP streams at
// once; other addresses and cluster links are not affected, and a publish that ends
// (closed, or kicked and then closed) gives its place back once.
func TestPublishesPerIP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Budget = &Budget{MaxPublishesPerIP: 2}
	h := NewHub(cfg, zap.NewNop())
	a, _ := h.Publish("live", "a", "127.0.0.1:1000", Origin)
	b, _ := h.Publish("live", "b", "[::ffff:127.0.0.1]:1001", Origin)
	if a == nil || b == nil {
		t.Fatal("publishes under the limit refused")
	}
	if _, err := h.Publish("live", "c", "127.0.0.1:1002", Origin); !errors.Is(err, ErrTooManyPublishes) {
		t.Fatalf("third publish from one address: %v", err)
	}
	for i, remote := range []string{"127.0.0.2:1000", "node:n2", "relay:live/d"} {
		p, err := h.Publish("live", "other"+strconv.Itoa(i), remote, Origin)
		if err != nil {
			t.Fatalf("publish from %s: %v", remote, err)
		}
		p.Close()
	}
	h.Kick("live", "a", nil, errors.New("test"))
	a.Close() // the session's own Close after the kick gives nothing back twice
	c, err := h.Publish("live", "c", "127.0.0.1:1002", Origin)
	if err != nil {
		t.Fatalf("after a kick: %v", err)
	}
	if _, err := h.Publish("live", "d", "127.0.0.1:1003", Origin); !errors.Is(err, ErrTooManyPublishes) {
		t.Fatalf("kick and close gave back two places: %v", err)
	}
	b.Close()
	c.Close()
	h.closeAll()
}

// TestRefusedPublishLeavesNoStream: a publish refused for its address creates nothing,
// and a busy refusal gives the address's place back.
func TestRefusedPublishLeavesNoStream(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Budget = &Budget{MaxPublishesPerIP: 1}
	h := NewHub(cfg, zap.NewNop())
	defer h.closeAll()
	p, _ := h.Publish("live", "a", "10.0.0.1:1", Origin)
	defer p.Close()
	if _, err := h.Publish("live", "b", "10.0.0.1:2", Origin); !errors.Is(err, ErrTooManyPublishes) {
		t.Fatal(err)
	}
	if h.Lookup("live", "b") != nil || cfg.Budget.Streams() != 1 {
		t.Fatal("a refused publish left a stream")
	}
	if _, err := h.Publish("live", "a", "10.0.0.2:1", Origin); !errors.Is(err, ErrBusy) {
		t.Fatal(err)
	}
	if q, err := h.Publish("live", "c", "10.0.0.2:1", Origin); err != nil {
		t.Fatalf("the busy refusal kept the address's place: %v", err)
	} else {
		q.Close()
	}
}

// TestAdmitPublish: the check a router makes before placement agrees with Publish and
// takes nothing.
func TestAdmitPublish(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Budget = &Budget{MaxStreams: 2, MaxPublishesPerIP: 1}
	h := NewHub(cfg, zap.NewNop())
	defer h.closeAll()
	for range 3 {
		if err := h.AdmitPublish("live", "a", "10.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := h.Publish("live", "a", "10.0.0.1:1", Origin)
	defer p.Close()
	if err := h.AdmitPublish("live", "b", "10.0.0.1:2"); !errors.Is(err, ErrTooManyPublishes) {
		t.Fatalf("second publish of the address: %v", err)
	}
	if err := h.AdmitPublish("live", "b", "node:n2"); err != nil {
		t.Fatalf("a link: %v", err)
	}
	pl, _ := h.Play("live", "w", PlayOptions{Kind: "test"})
	defer pl.Close()
	if err := h.AdmitPublish("live", "c", "10.0.0.2:1"); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("a third stream: %v", err)
	}
	if err := h.AdmitPublish("live", "w", "10.0.0.2:1"); err != nil {
		t.Fatalf("the stream a player waits for: %v", err)
	}
}
