package console

import (
	"sync"
	"time"
)

// Event is one thing that happened to the cluster as this node saw it.
type Event struct {
	// Seq numbers the node's events from 1, so a page that polls sees which are new.
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"` // join leave fail leader no_leader stream_new master stream_end contact_lost contact_restored
	Node   string    `json:"node,omitempty"`
	Stream string    `json:"stream,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Events keeps the node's most recent events in a ring of fixed size: memory is
// bounded however busy the cluster is, and the oldest events are forgotten first.
type Events struct {
	mu   sync.Mutex
	ring []Event
	seq  uint64
}

// NewEvents keeps the last n events (n >= 1).
func NewEvents(n int) *Events { return &Events{ring: make([]Event, max(n, 1))} }

// Add records ev, stamping its sequence number and, when unset, its time.
func (e *Events) Add(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	e.mu.Lock()
	e.seq++
	ev.Seq = e.seq
	e.ring[int((e.seq-1)%uint64(len(e.ring)))] = ev
	e.mu.Unlock()
}

// List returns the kept events, oldest first.
func (e *Events) List() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := min(e.seq, uint64(len(e.ring)))
	out := make([]Event, 0, n)
	for s := e.seq - n + 1; s <= e.seq; s++ {
		out = append(out, e.ring[int((s-1)%uint64(len(e.ring)))])
	}
	return out
}
