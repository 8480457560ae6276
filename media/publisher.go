package media

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"peer/media/flv"
)

// Publisher feeds a stream. One goroutine (the publishing connection's) calls Write.
type Publisher struct {
	ID     uint64
	Remote string
	// Source is what the publisher is to the stream (Hub.Publish): it decides how its
	// time is placed and whether the packagers follow its control tags.
	Source Source
	stream *Stream
	clock  flv.Unwrapper
	tracks [2]trackClock // audio, video: a user's publisher only (see trackClock)
	tl     timeline
	fo     fanOut

	kickMu   sync.Mutex
	onKick   func(error)
	detached atomic.Bool // kicked: its writes are dropped

	ip       netip.Addr // the client address counted in the hub's Budget, if any
	released atomic.Bool
}

// releaseBudget gives the publisher's per-address count back, once (Kick, then Close).
func (p *Publisher) releaseBudget() {
	if !p.released.Swap(true) {
		p.stream.hub.cfg.Budget.removePublish(p.ip)
	}
}

// Stream is the stream being published.
func (p *Publisher) Stream() *Stream { return p.stream }

// Kicked reports that the node took the stream from this publisher (Hub.Kick): its
// writes are dropped from then on.
func (p *Publisher) Kicked() bool { return p.detached.Load() }

// OnKick sets what to do when the node loses the stream (fencing): typically close the
// publishing connection.
func (p *Publisher) OnKick(f func(error)) {
	p.kickMu.Lock()
	p.onKick = f
	p.kickMu.Unlock()
}

func (p *Publisher) kick(reason error) {
	p.kickMu.Lock()
	f := p.onKick
	p.kickMu.Unlock()
	if f != nil {
		f(reason)
	}
}

// Write publishes one RTMP media message (type 8, 9 or 18) with its 32-bit timestamp.
func (p *Publisher) Write(typ uint8, ts uint32, data []byte) {
	p.WriteAt(typ, p.clock.Extend(ts), data)
}

// WriteAt publishes a message whose time is already 64-bit.
func (p *Publisher) WriteAt(typ uint8, timeMS int64, data []byte) {
	s := p.stream
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if p.detached.Load() { // checked under wmu: a kick cannot overlap this write with the next publisher's
		return
	}
	control := s.isControl(typ, data)
	copied := p.Source == Copy
	if typ == flv.TypeScript && !control {
		var ok bool
		if data, ok = metadataBody(data); !ok {
			return // not onMetaData: nothing a player needs
		}
		// Metadata goes out at time 0, wherever the stream's timeline is: ffmpeg's FLV
		// demuxer takes an onMetaData at any other time for a data packet, so after a
		// publisher restart (metadata at the stream's time, 942335) ffprobe listed an
		// extra data stream and `ffmpeg -t 5 -c copy` never stopped. It moves no clock.
		s.write(flv.NewTag(typ, 0, data), false, copied, &p.fo)
		return
	}
	if !copied && (typ == flv.TypeAudio || typ == flv.TypeVideo) && !isConfigData(typ, data) {
		timeMS = p.rebase(typ, timeMS)
	}
	t := flv.NewTag(typ, timeMS+p.tl.offset, data)
	if !p.tl.started {
		if isConfig(t) {
			// Metadata and sequence headers carry the publisher's start time, however
			// long ago that was: they neither start the timeline nor move time back.
			if p.tl.prevHas && t.Time < p.tl.prevLast {
				t = flv.NewTag(typ, p.tl.prevLast, data)
			}
			s.write(t, control, copied, &p.fo)
			return
		}
		if p.tl.continues && p.Source == Resume {
			// A resumed origin replays what it had on its own clock, which is not the
			// stream's when the stream's earlier hub shifted that publisher's time: find
			// where its first tag is in the stream, or start a new timeline.
			at, ok := s.timeOf(typ, data)
			p.tl.align(at, ok)
		}
		p.tl.start(timeMS)
		if (p.tl.offset != 0 || (p.tl.prevHas && !p.tl.continues)) && !copied {
			// A new timeline: the publisher restarted. A new origin always starts one,
			// whether its clock is behind the stream (shifted) or ahead: a packager's
			// segment in progress must not last until its first tag.
			s.discontinuity()
		}
		t = flv.NewTag(typ, timeMS+p.tl.offset, data)
	}
	at, ok := p.tl.place(t)
	if !ok && t.IsKeyframe() && !s.holdsKeyframe(t) {
		// A keyframe the stream does not hold, within the span its GOP cache covers:
		// the source is on a new timeline (a new master's, whose first keyframe was
		// placed after its replica's last tag, a little before the edge's; a stream
		// re-published on a degraded survivor and adopted after the heal, 1.6 s behind).
		// Dropping it by time, as the catch-up did, left the players inter frames
		// without their keyframe; it goes out, the catch-up ends, and the new timeline
		// is shifted to start just after the stream's last tag: at the source's time it
		// went back for the players that stayed (chaos majority-loss: video time back
		// 1.6 s at two edges).
		p.tl.newTimeline(t.Time)
		at, ok = timeMS+p.tl.offset, true
	}
	if !ok {
		return
	}
	if at != t.Time { // a config tag during catch-up, clamped: rare
		t = flv.NewTag(typ, at, data)
	}
	s.write(t, control, copied, &p.fo)
}

// Bounds on the step between consecutive tags of one track of a user's publisher;
// beyond them the publisher's clock is taken to have jumped and the track is rebased.
const (
	maxForwardStep  = 10_000 // ms: no live encoder sends nothing on a track for 10 s
	maxBackwardStep = 1_000  // ms: beyond B-frame reordering or audio/video skew
	maxRebasedStep  = 100    // ms: the longest usual frame interval, used after a jump
)

// trackClock keeps one track of a user's publisher continuous: a timestamp that jumps
// forward by more than maxForwardStep or back by more than maxBackwardStep (an encoder
// restarted without reconnecting, a broken or hostile client sending 0x7fffffff) is
// placed one frame interval after the track's previous tag, and the track's later tags
// keep that shift. A track's first tag is held to the other track's latest tag. Before,
// a jump reached the stream's players and its HLS packager, whose segment lasted until
// the jump (TARGETDURATION:22947778). Copies are their source's timeline and are never
// rebased; their catch-up replays go back on purpose.
type trackClock struct {
	shift int64
	last  int64
	step  int64 // the latest step forward, at most maxRebasedStep
	has   bool
}

// rebase returns the time of a tag of the publisher's track typ on the rebased clock.
func (p *Publisher) rebase(typ uint8, ms int64) int64 {
	c, other := &p.tracks[0], &p.tracks[1]
	if typ == flv.TypeVideo {
		c, other = other, c
	}
	// A track's first tag is measured against the other track's latest one.
	ref := c
	if !c.has {
		ref = other
	}
	at := ms + c.shift
	if ref.has {
		switch d := at - ref.last; {
		case d > maxForwardStep || d < -maxBackwardStep:
			to := ref.last + max(c.step, 1)
			p.stream.hub.warn.Warn("timestamp-jump", "publisher's timestamps jumped: track rebased",
				zap.String("stream", p.stream.Key()), zap.String("peer", p.Remote),
				zap.Bool("video", typ == flv.TypeVideo), zap.Int64("from", ref.last), zap.Int64("to", at))
			c.shift += to - at
			at = to
		case d > 0 && ref == c:
			c.step = min(d, maxRebasedStep)
		}
	}
	c.last, c.has = at, true
	return at
}

// Close detaches the publisher; players stay subscribed and wait for the next one.
func (p *Publisher) Close() {
	p.stream.release(p)
	p.releaseBudget()
}
