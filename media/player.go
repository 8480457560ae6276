package media

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"peer/media/flv"
)

// ErrTooSlow closes a player that kept overflowing its queue.
var ErrTooSlow = errors.New("player too slow: queue overflowed repeatedly")

// ErrStreamClosed is returned to players when their node stops serving the stream.
var ErrStreamClosed = errors.New("stream closed")

// A Sink writes a player's tags to its connection from the fan-out, without blocking.
type Sink interface {
	// TryWrite writes tags as far as the connection takes them now. It returns
	// SinkPending when it keeps a rest for the player's goroutine to write (blocking),
	// and SinkBusy, having written nothing, when another writer holds the connection.
	TryWrite(tags []*flv.Tag) (n int, r SinkResult, err error)
}

// SinkResult is how far a Sink's TryWrite got.
type SinkResult uint8

const (
	SinkDone    SinkResult = iota // everything went out
	SinkPending                   // part went out; the player's goroutine writes the rest
	SinkBusy                      // nothing went out: the connection is busy
)

// WriteResult is the SinkResult of a write that took everything (complete) or left a
// rest pending.
func WriteResult(complete bool) SinkResult {
	if complete {
		return SinkDone
	}
	return SinkPending
}

// Who writes a player's queue to its connection at the moment.
type writer uint8

const (
	writerNone      writer = iota // the player's goroutine waits; the fan-out may write
	writerFanOut                  // the fan-out is writing (Stream.flushInline)
	writerGoroutine               // the player's own goroutine is writing
)

// Player is one subscriber's bounded queue of shared tags. The publisher pushes without
// ever blocking. A player that keeps up is written straight from the fan-out, without a
// goroutine switch (Sink); otherwise, and always for a player without a Sink, a writer
// goroutine drains the queue: one started for the occasion and gone once the queue is
// empty (Serve), or the caller's own (Next).
type Player struct {
	ID     uint64
	Kind   string // "rtmp-play", "flv-play", "link-..."
	Remote string
	link   bool // PlayOptions.Link (or First)
	first  bool // PlayOptions.First
	stream *Stream

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
	sink      Sink
	writer    writer
	handoff   bool // the fan-out left its write to the goroutine: Next returns at once

	// Serve's: the blocking write, the end callback, and the state of its goroutine.
	write    func([]*flv.Tag) (int, error)
	done     func(error)
	draining bool // a drain goroutine runs (or is about to)
	ended    bool // done was called (or is being called)
}

// initialQueue is a player's ring before it needs more: a player that keeps up holds a
// few tags at a time, so most never grow (memory per player is what a node's fan-out
// capacity is made of).
const initialQueue = 16

func newPlayer(s *Stream, o PlayOptions, capacity int) *Player {
	return &Player{Kind: o.Kind, Remote: o.Remote, link: o.Link || o.First, first: o.First, stream: s,
		queue: make([]*flv.Tag, min(initialQueue, capacity)), limit: capacity, wake: make(chan struct{}, 1)}
}

// lazyWakeTags: a player not woken for audio still wakes once this many tags wait.
const lazyWakeTags = 8

// SetSink lets the fan-out write to the player's connection directly. The player's
// goroutine calls it once its connection is ready for media, and keeps calling Next.
func (p *Player) SetSink(s Sink) {
	p.mu.Lock()
	p.sink = s
	p.mu.Unlock()
}

// push queues tags. When the queue is full the backlog is dropped and the player
// resumes at the next keyframe; after maxOverflows such skips the player is closed.
// With wakeAt > 0 the player's writer is not woken for them until that many tags wait
// (the stream holds back most tags that need no wake-up: see Stream.held). With inline,
// a player whose goroutine is idle is not woken but claimed for the caller to write
// (flushInline). One call per player for a whole batch: taking each player's lock once
// per tag was a third of the fan-out's own CPU.
func (p *Player) push(tags []*flv.Tag, maxOverflows, wakeAt int, inline bool) (dropped, claimed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	queued := false
	for _, t := range tags {
		q, d := p.queueLocked(t, maxOverflows)
		queued, dropped = queued || q, dropped || d
		if p.err != nil {
			return dropped, false
		}
	}
	if !queued || p.size < wakeAt {
		return dropped, false
	}
	switch {
	case inline && p.sink != nil && p.writer == writerNone:
		p.writer = writerFanOut
		return dropped, true
	case p.writer == writerFanOut:
		return dropped, false // claimed earlier in this round: the fan-out takes t too
	}
	p.signal()
	return dropped, false
}

// queueLocked appends t to the queue, or skips it while the player waits for a
// keyframe; dropped reports a backlog dropped for t (which may have closed the player).
func (p *Player) queueLocked(t *flv.Tag, maxOverflows int) (queued, dropped bool) {
	if p.err != nil {
		return false, false
	}
	if p.skipping {
		resume := p.resumesAt(t)
		if !resume && !isConfig(t) {
			p.stream.hub.tagsDropped.Add(1)
			return false, false
		}
		if resume {
			p.skipping = false
		}
	}
	if p.size == len(p.queue) && len(p.queue) < p.limit {
		p.growLocked()
	}
	if p.size == len(p.queue) {
		dropped = true
		p.overflows++
		p.stream.hub.tagsDropped.Add(uint64(p.size))
		p.clearLocked()
		if p.overflows > maxOverflows {
			p.stream.hub.playersDropped.Add(1)
			p.err = ErrTooSlow
			p.signal()
			return false, true
		}
		p.requeueConfigLocked(t)
		p.skipping = !p.resumesAt(t)
		if p.skipping && !isConfig(t) {
			p.stream.hub.tagsDropped.Add(1)
			return false, true
		}
	}
	p.appendLocked(t)
	return true, dropped
}

// resumesAt reports a tag a skipping player can resume at: a keyframe, or any audio
// frame of a stream without video. The stream's lock is held (push).
func (p *Player) resumesAt(t *flv.Tag) bool {
	return t.IsKeyframe() || (t.Type == flv.TypeAudio && !p.stream.hasVideo)
}

// requeueConfigLocked queues the stream's metadata and sequence headers again after a
// backlog was dropped with them: what the player resumes at needs them to decode (an
// audio-only stream resumes at once, a player may be dropped before it got them). t,
// being pushed, is not queued twice. The stream's lock is held (push).
func (p *Player) requeueConfigLocked(t *flv.Tag) {
	s := p.stream
	for _, c := range [...]*flv.Tag{s.meta, s.videoSeq, s.audioSeq} {
		if c != nil && c != t && p.size+1 < len(p.queue) {
			p.appendLocked(c)
		}
	}
}

func (p *Player) appendLocked(t *flv.Tag) {
	p.queue[(p.head+p.size)%len(p.queue)] = t
	p.size++
}

// takeLocked moves every queued tag to buf. A ring the start burst (a whole GOP) grew
// goes back to its first size: kept, it would be a player's largest allocation.
func (p *Player) takeLocked(buf []*flv.Tag) []*flv.Tag {
	for p.size > 0 {
		buf = append(buf, p.queue[p.head])
		p.queue[p.head] = nil
		p.head = (p.head + 1) % len(p.queue)
		p.size--
	}
	if len(p.queue) > shrinkQueueOver {
		p.queue, p.head = make([]*flv.Tag, min(initialQueue, p.limit)), 0
	}
	return buf
}

// shrinkQueueOver is the ring size past which an emptied ring shrinks: a player's
// steady queue (a merged write's worth of tags) stays under it.
const shrinkQueueOver = 4 * initialQueue

// flushInline writes what a claimed player has queued through its Sink, on the
// fan-out's goroutine, and returns the bytes written (the caller counts them for the
// stream). A write the socket does not take whole, or any trouble, goes to the player's
// goroutine, which may block.
func (p *Player) flushInline(buf []*flv.Tag) ([]*flv.Tag, int) {
	p.mu.Lock()
	if p.writer != writerFanOut {
		p.mu.Unlock()
		return buf, 0
	}
	if p.err != nil {
		p.writer = writerNone
		p.signal() // closed while claimed: its writer ends it
		p.mu.Unlock()
		return buf, 0
	}
	buf = p.takeLocked(buf[:0])
	sink := p.sink
	p.mu.Unlock()
	n, res, err := sink.TryWrite(buf)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytesOut += uint64(n)
	switch {
	case err != nil:
		if p.err == nil {
			p.err = err
			p.clearLocked()
		}
		p.writer = writerNone
		p.signal()
	case res == SinkBusy && p.err == nil:
		// Nothing went out, and nothing was pushed meanwhile (the fan-out is here):
		// the tags go back as they were, for the goroutine.
		for _, t := range buf {
			p.appendLocked(t)
		}
		fallthrough
	case res != SinkDone || p.size > 0:
		p.writer, p.handoff = writerGoroutine, true
		p.signal()
	default:
		p.writer = writerNone
		if p.err != nil {
			p.signal() // closed while claimed: its writer ends it
		}
	}
	clear(buf)
	return buf, n
}

// isConfig: metadata, sequence headers and control tags reach a skipping player too.
func isConfig(t *flv.Tag) bool { return t.Type == flv.TypeScript || t.IsSequenceHeader() }

// isConfigData is isConfig on a message's type and body: an AVC or AAC sequence header.
func isConfigData(typ uint8, data []byte) bool {
	switch {
	case typ == flv.TypeScript:
		return true
	case len(data) < 2 || data[1] != 0:
		return false
	case typ == flv.TypeVideo:
		return data[0]&0x0f == flv.VideoH264
	case typ == flv.TypeAudio:
		return data[0]>>4 == flv.AudioAAC
	}
	return false
}

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

// signal wakes the player's writer: a Serve player's drain goroutine is started unless
// it runs already (it looks at the queue again before it ends) or there is nothing for
// it to do. p.mu is held.
func (p *Player) signal() {
	if p.write != nil {
		if !p.draining && !p.ended && p.writer != writerFanOut && (p.size > 0 || p.handoff || p.err != nil) {
			p.draining = true
			go p.drain()
		}
		return
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// kick is signal for callers without p.mu.
func (p *Player) kick() {
	p.mu.Lock()
	p.signal()
	p.mu.Unlock()
}

// close ends the player with err; queued tags are discarded.
func (p *Player) close(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
		p.clearLocked()
	}
	p.signal()
	p.mu.Unlock()
}

// Serve hands the player's writes to the fan-out through sink and, whenever the fan-out
// cannot write (the socket did not take a write whole, the connection is busy, the
// start burst, a merged write let out), to a goroutine started for it, which writes the
// queue with write (blocking, returning the bytes sent) until it is empty and ends. A
// player that keeps up thus holds no goroutine and no batch scratch. done is called
// once, from that goroutine, with the reason the player ended (a write failed, the
// stream closed it, End ended it), after the player is unsubscribed. Serve replaces
// SetSink and Next; it returns at once.
func (p *Player) Serve(sink Sink, write func([]*flv.Tag) (int, error), done func(error)) {
	p.mu.Lock()
	p.sink, p.write, p.done = sink, write, done
	p.signal() // the start burst waits
	p.mu.Unlock()
}

// End ends a Serve player for reason (its connection's session ended): done gets
// reason unless the player ended already. It needs no context per player: a context
// and a context.AfterFunc on it were a kilobyte of every player's memory.
func (p *Player) End(reason error) { p.close(reason) }

// batches are the drain goroutines' scratch: a player that keeps up needs none of its own.
var batches = sync.Pool{New: func() any { return new([]*flv.Tag) }}

// drain is a Serve player's writer goroutine: it writes the queue until it is empty, or
// hands the player back to the fan-out, or ends the player.
func (p *Player) drain() {
	defer func() {
		if r := recover(); r != nil {
			p.close(fmt.Errorf("panic writing to a player: %v", r))
			p.drain() // the player is closed: this ends it
		}
	}()
	bp := batches.Get().(*[]*flv.Tag)
	defer func() {
		if cap(*bp) > 64 { // a start burst: let its scratch go
			*bp = nil
		}
		batches.Put(bp)
	}()
	for {
		p.mu.Lock()
		switch {
		case p.ended:
			p.mu.Unlock()
			return
		case p.err != nil:
			err := p.err
			p.ended, p.draining = true, false
			p.mu.Unlock()
			p.Close()
			p.done(err)
			return
		case p.writer == writerFanOut:
			p.draining = false // the fan-out writes, and hands back what it cannot
			p.mu.Unlock()
			return
		}
		batch := p.takeLocked((*bp)[:0])
		*bp = batch
		if len(batch) == 0 && !p.handoff {
			p.writer, p.draining = writerNone, false
			p.mu.Unlock()
			return
		}
		p.writer, p.handoff = writerGoroutine, false
		p.mu.Unlock()
		n, err := p.write(batch)
		clear(batch)
		p.Sent(n)
		if err != nil {
			p.close(err)
		}
	}
}

// Next appends every queued tag to buf and returns it, waiting while the queue is empty
// (or the fan-out is writing). It returns the reason when the player was closed or ctx
// ended. For a player with a Sink, Next may return no tags: the fan-out handed a partial
// write over, which the caller must finish (its Sink keeps it) before anything else.
func (p *Player) Next(ctx context.Context, buf []*flv.Tag) ([]*flv.Tag, error) {
	for {
		p.mu.Lock()
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return buf, err
		}
		if p.writer != writerFanOut {
			buf = p.takeLocked(buf)
			if len(buf) > 0 || p.handoff {
				p.writer, p.handoff = writerGoroutine, false
				p.mu.Unlock()
				return buf, nil
			}
			p.writer = writerNone
		}
		p.mu.Unlock()
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

// Stream is the stream the player plays.
func (p *Player) Stream() *Stream { return p.stream }
