package media

import (
	"context"
	"errors"
	"sync"

	"peer/media/flv"
	"peer/media/hls"
)

// ErrTooSlow closes a player that kept overflowing its queue.
var ErrTooSlow = errors.New("player too slow: queue overflowed repeatedly")

// ErrStreamClosed is returned to players when their node stops serving the stream.
var ErrStreamClosed = errors.New("stream closed")

// Player is one subscriber's bounded queue of shared tags. The publisher pushes without
// ever blocking; the player's own writer goroutine drains it.
type Player struct {
	ID       uint64
	Kind     string // "rtmp-play", "flv-play", "link-..."
	Remote   string
	internal bool
	stream   *Stream

	mu        sync.Mutex
	queue     []*flv.Tag // ring; grows on demand up to limit
	limit     int
	head      int
	size      int
	skipping  bool // dropped a backlog: wait for the next keyframe
	overflows int
	err       error
	wake      chan struct{}
	bytesOut  uint64
}

// initialQueue is a player's ring before it needs more: a player that keeps up holds a
// few tags at a time, so most never grow (memory per player is what a node's fan-out
// capacity is made of).
const initialQueue = 64

func newPlayer(s *Stream, o PlayOptions, capacity int) *Player {
	return &Player{Kind: o.Kind, Remote: o.Remote, internal: o.Internal, stream: s,
		queue: make([]*flv.Tag, min(initialQueue, capacity)), limit: capacity, wake: make(chan struct{}, 1)}
}

// lazyWakeTags: a player woken lazily still wakes once this many tags wait.
const lazyWakeTags = 8

// push queues t. When the queue is full the backlog is dropped and the player resumes
// at the next keyframe; after maxOverflows such skips the player is closed. With lazy,
// the player's writer is not woken for t alone: audio of a stream with video rides
// with the next video frame (at most one frame interval later), which saves every
// player about two thirds of its wake-ups and writes.
func (p *Player) push(t *flv.Tag, maxOverflows int, lazy bool) (dropped bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil || (!p.internal && hls.IsCutMarker(t)) {
		return false
	}
	if p.skipping {
		if !t.IsKeyframe() && !isConfig(t) {
			return false
		}
		if t.IsKeyframe() {
			p.skipping = false
		}
	}
	if p.size == len(p.queue) && len(p.queue) < p.limit {
		p.growLocked()
	}
	if p.size == len(p.queue) {
		p.overflows++
		p.clearLocked()
		if p.overflows > maxOverflows {
			p.err = ErrTooSlow
			p.signal()
			return true
		}
		p.skipping = !t.IsKeyframe()
		if p.skipping && !isConfig(t) {
			return true
		}
	}
	p.queue[(p.head+p.size)%len(p.queue)] = t
	p.size++
	if !lazy || p.size >= lazyWakeTags {
		p.signal()
	}
	return false
}

// isConfig: metadata, sequence headers and cut markers reach a skipping player too.
func isConfig(t *flv.Tag) bool { return t.Type == flv.TypeScript || t.IsSequenceHeader() }

// growLocked doubles the ring (up to the limit), unrolling it to start at 0.
func (p *Player) growLocked() {
	q := make([]*flv.Tag, min(2*len(p.queue), p.limit))
	for i := range p.size {
		q[i] = p.queue[(p.head+i)%len(p.queue)]
	}
	p.queue, p.head = q, 0
}

func (p *Player) clearLocked() {
	for i := range p.queue {
		p.queue[i] = nil
	}
	p.head, p.size = 0, 0
}

func (p *Player) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// close ends the player with err; queued tags are discarded.
func (p *Player) close(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
		p.clearLocked()
	}
	p.mu.Unlock()
	p.signal()
}

// Next appends every queued tag to buf and returns it, waiting while the queue is empty.
// It returns the reason when the player was closed or ctx ended.
func (p *Player) Next(ctx context.Context, buf []*flv.Tag) ([]*flv.Tag, error) {
	for {
		p.mu.Lock()
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return buf, err
		}
		for p.size > 0 {
			buf = append(buf, p.queue[p.head])
			p.queue[p.head] = nil
			p.head = (p.head + 1) % len(p.queue)
			p.size--
		}
		p.mu.Unlock()
		if len(buf) > 0 {
			return buf, nil
		}
		select {
		case <-p.wake:
		case <-ctx.Done():
			return buf, ctx.Err()
		}
	}
}

// Sent records bytes delivered to the player, for stats.
func (p *Player) Sent(n int) {
	p.mu.Lock()
	p.bytesOut += uint64(n)
	p.mu.Unlock()
	p.stream.bytesOut.Add(uint64(n))
}

// BytesOut is what Sent recorded.
func (p *Player) BytesOut() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.bytesOut
}

// Close unsubscribes the player.
func (p *Player) Close() { p.stream.unsubscribe(p) }
