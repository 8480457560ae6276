package media

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// Stream is one live stream on this node: its publisher, the cached headers and GOP a
// new player starts from, its players and its packagers.
type Stream struct {
	App, Name string
	hub       *Hub
	cfg       streamConfig // the app's settings, fixed at creation
	log       *zap.Logger
	created   time.Time

	// wmu serializes the writes of the stream's publishers with each other and with the
	// packagers' teardown: a kicked publisher's write in flight ends before its
	// successor's first one starts, and a packager (single-writer) is never closed under
	// a write. Held for a whole Publisher.WriteAt; taken before mu, never inside it.
	wmu sync.Mutex

	mu        sync.Mutex
	dead      bool // dropped from the hub (idle, shutdown): Publish and Play retry on a fresh stream
	pub       *Publisher
	meta      *flv.Tag
	videoSeq  *flv.Tag
	audioSeq  *flv.Tag
	gop       gopCache
	hasVideo  bool  // video was seen: the GOP cache and skipping players wait for keyframes
	hasAudio  bool  // audio was seen (the FLV header's flags)
	firstTime int64 // media time of the first tag stored
	// The latest two keyframes' times and how many were cached (holdsKeyframe).
	lastKey, prevKey int64
	keys             int
	lastControl      *flv.Tag // the latest in-band control tag (a packager's segment in progress)
	control          *flv.Tag // a control tag to send with the next tag (under wmu)
	players          map[*Player]struct{}
	links            int        // players that are links
	held             []*flv.Tag // tags queued to the viewers with the next tag that wakes them (fanOutLocked)
	lastTime         int64
	hasTime          bool
	lastRound        int64 // media time of the last fan-out that woke players (MergeWrite)
	pace             pacer // under wmu
	// vacantSince is when the publisher left (or the stream appeared without one); a
	// stream vacant for the hub's IdleTimeout is dropped with its waiting players. Until
	// then its packagers' state (an HLS window and numbering) survives a publisher restart.
	vacantSince time.Time
	info        Info
	frames      uint64
	watched     atomic.Int64 // last request of a viewer holding no connection (unix ns; Hub.Watch)

	packagers []Packager // fixed at creation
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	rate      rateMeter
}

// Key is "app/name", the stream's identity in the cluster.
func (s *Stream) Key() string { return s.App + "/" + s.Name }

// Packagers are the stream's packagers, made by the hub's Config.Packagers when the
// stream was created; the slice must not be modified.
func (s *Stream) Packagers() []Packager { return s.packagers }

// Publishing reports whether a publisher is attached.
func (s *Stream) Publishing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub != nil
}

// write stores t in the caches and queues it to every player, then writes to the
// players it could claim (see fanOut). control marks one of the packagers' in-band
// control tags (Packager.IsControl). Called only from the publisher's goroutine, with
// that publisher's scratch.
func (s *Stream) write(t *flv.Tag, control, copied bool, fo *fanOut) {
	s.bytesIn.Add(uint64(len(t.Raw)))
	if control {
		// A copy's packagers follow the control tags its source made and pass them on to
		// the stream's own links, together with the tag they precede; an origin's
		// packagers make their own, and what the origin sends is dropped.
		if copied {
			s.holdControl(t, copied, fo)
		}
		return
	}
	for _, pk := range s.packagers {
		if c := pk.Before(t); c != nil {
			s.holdControl(c, copied, fo) // goes out with t, ahead of it
		}
	}
	s.send(t, copied, fo)
}

// holdControl keeps c to send ahead of the next tag; two in a row: the first goes alone.
func (s *Stream) holdControl(c *flv.Tag, copied bool, fo *fanOut) {
	if s.control != nil {
		s.send(nil, copied, fo)
	}
	s.control = c
}

// trackSettle is how much media a stream shows before a track it has not shown counts
// as absent: an encoder sends both sequence headers at once, then interleaves both tracks.
const trackSettle = 1000 // ms

// FLVFlags is the FLV file header's track flags (audio 0x04, video 0x01) for a player
// joining now, as SRS's guess_has_av: the tracks the stream has shown. A player told of a
// track that never comes waits for it (ffmpeg, VLC, mpegts.js decode nothing of a camera
// without a microphone announced as audio+video). Until the stream has shown a track, or
// both, for trackSettle, it announces both.
func (s *Stream) FLVFlags() byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	audio := s.hasAudio || s.audioSeq != nil
	video := s.hasVideo || s.videoSeq != nil
	switch {
	case audio && video, !audio && !video, s.lastTime-s.firstTime < trackSettle:
		return flv.FlagsAudio | flv.FlagsVideo
	case audio:
		return flv.FlagsAudio
	}
	return flv.FlagsVideo
}

// send writes the held control tag, if any, and t (if not nil) to the players in one
// round, then to the packagers: players do not wait for the packaging, and a link gets
// a control tag and the tag it precedes in one write, from this goroutine.
func (s *Stream) send(t *flv.Tag, copied bool, fo *fanOut) {
	c := s.control
	s.control = nil
	s.queue(c, t, copied, fo)
	if fo.woke {
		start := time.Now()
		fo.flush()
		if s.pace.observe(t.Time, time.Since(start)) {
			s.hub.warn.Warn("write-pacing", "merging writes to viewers: writing them took over half of real time",
				zap.String("stream", s.Key()), zap.Int64("window_ms", s.pace.window))
		}
		fo.woke = false
	} else {
		fo.flush()
	}
	for _, pk := range s.packagers {
		if c != nil && copied {
			pk.Write(c) // an origin's packager made its control tag itself
		}
		if t != nil {
			pk.Write(t)
		}
	}
}

// queue stores the control tag c and t (either may be nil) and queues them to the
// players. The lock is released by defer: a panic here, recovered by the publishing
// session, must not leave the stream locked (that would wedge the hub, the API and load
// gossip).
func (s *Stream) queue(c, t *flv.Tag, copied bool, fo *fanOut) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c != nil {
		// Links only; it stays in the GOP cache ahead of the keyframe it precedes.
		s.lastControl = c
		s.cacheGOP(c, true)
		s.fanOutLocked(c, true, fo)
	}
	if t != nil && s.storeLocked(t, copied) {
		s.fanOutLocked(t, false, fo)
	}
}

// isControl reports one of the packagers' in-band control tags.
func (s *Stream) isControl(typ uint8, data []byte) bool {
	if typ != flv.TypeScript {
		return false
	}
	for _, pk := range s.packagers {
		if pk.IsControl(data) {
			return true
		}
	}
	return false
}

// WatchedWithin reports a request of a viewer holding no connection (Hub.Watch) in the
// last d.
func (s *Stream) WatchedWithin(d time.Duration) bool {
	seen := s.watched.Load()
	return seen != 0 && time.Since(time.Unix(0, seen)) < d
}

// storeLocked updates the stream's caches with t; false means players need nothing.
func (s *Stream) storeLocked(t *flv.Tag, copied bool) bool {
	if t.Type == flv.TypeScript { // metadata, at time 0: no clock moves with it
		s.meta = t
		s.info.fromMetadata(t)
		return true
	}
	if !s.hasTime {
		s.firstTime = t.Time
	}
	s.lastTime, s.hasTime = t.Time, true
	if t.Type == flv.TypeAudio {
		s.hasAudio = true
	}
	if t.Type == flv.TypeVideo && !s.hasVideo {
		s.hasVideo = true
		s.gop.reset() // audio cached as an audio-only stream's: joiners now start at a keyframe
	}
	switch {
	case t.IsSequenceHeader():
		cached := &s.audioSeq
		if t.Type == flv.TypeVideo {
			cached = &s.videoSeq
		}
		if *cached != nil && bytes.Equal((*cached).Data(), t.Data()) {
			return false // a new upstream repeating the same config: players need nothing
		}
		if *cached != nil && !copied {
			s.discontinuity() // the codec configuration changed mid-stream
		}
		*cached = t
		if t.Type == flv.TypeVideo {
			s.info.fromVideoConfig(t)
		} else {
			s.info.fromAudioConfig(t)
		}
	default:
		s.info.noteCodec(t)
		s.cacheGOP(t, false)
	}
	if t.Type == flv.TypeVideo {
		s.frames++
	}
	return true
}

// discontinuity tells the packagers the origin's timeline or codec configuration
// changed. A copy's packagers learn of its source's discontinuities in its control tags.
func (s *Stream) discontinuity() {
	for _, pk := range s.packagers {
		pk.Discontinuity()
	}
}

// startTags is what a new player receives first: metadata, sequence headers, the GOP.
// A link also gets the latest control tag when the GOP does not start with it: a copy
// that joins or switches upstream mid-segment follows its source's packaging from there
// (an HLS follower keeps the numbering: its copy of that one segment starts later)
// instead of skipping a segment.
func (s *Stream) startTagsLocked() []*flv.Tag {
	gop := s.gop.tags()
	out := make([]*flv.Tag, 0, 4+len(gop))
	for _, t := range []*flv.Tag{s.meta, s.videoSeq, s.audioSeq} {
		if t != nil {
			out = append(out, t)
		}
	}
	// An audio-only stream's window may hold the control tag further in: a link's far
	// end then drops the audio before it, as the source's packager did.
	if s.lastControl != nil && !slices.Contains(gop, s.lastControl) {
		out = append(out, s.lastControl)
	}
	return append(out, gop...)
}

// subscribe adds p with the start tags; false if the stream was dropped from the hub.
func (s *Stream) subscribe(p *Player) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return false
	}
	s.releaseHeldLocked() // the start burst has them
	start := s.startTagsLocked()
	if !p.link {
		start = slices.DeleteFunc(start, func(t *flv.Tag) bool { return s.isControl(t.Type, t.Data()) })
	}
	p.push(start, s.hub.cfg.MaxOverflows, 0, false)
	s.players[p] = struct{}{}
	if p.link {
		s.links++
	}
	return true
}

func (s *Stream) unsubscribe(p *Player) {
	s.mu.Lock()
	if _, ok := s.players[p]; ok && p.link {
		s.links--
	}
	delete(s.players, p)
	s.mu.Unlock()
	p.close(ErrStreamClosed)
}

// release frees the stream of p if p still holds it, and lets every merged write out.
func (s *Stream) release(p *Publisher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub == p {
		s.pub = nil
		s.vacantSince = time.Now()
	}
	s.releaseHeldLocked()
	for pl := range s.players {
		pl.kick() // what a merged write still holds goes out now
	}
}

// shutdown ends a stream the hub dropped (marked dead under the hub's lock): its
// publisher is detached and told, every player closed, and then the packagers
// released, after any write in flight: closing HLS's muxer under a write crashed it.
func (s *Stream) shutdown(err error) {
	s.mu.Lock()
	players, pub := s.players, s.pub
	s.players, s.pub, s.links, s.held = map[*Player]struct{}{}, nil, 0, nil
	if pub != nil {
		pub.detached.Store(true)
	}
	s.mu.Unlock()
	if pub != nil {
		pub.releaseBudget()
		pub.kick(err)
	}
	for p := range players {
		p.close(err)
	}
	if len(s.packagers) > 0 {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		for _, pk := range s.packagers {
			pk.Close()
		}
	}
}

// HasOrigin reports a publisher that is an origin (Origin, Resume), not a copy: the hub
// holding it is where the stream's content enters, and the one to copy it from.
func (s *Stream) HasOrigin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub != nil && s.pub.Source != Copy
}

// Viewers counts the players that are not links; with idle > 0, requests of viewers
// holding no connection (Hub.Watch) in the last idle count as one.
func (s *Stream) Viewers(idle time.Duration) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	if idle > 0 && s.WatchedWithin(idle) {
		n++
	}
	for p := range s.players {
		if !p.link {
			n++
		}
	}
	return n
}
