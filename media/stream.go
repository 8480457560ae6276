package media

import (
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
	"peer/media/hls"
)

// Stream is one live stream on this node: its publisher, the cached headers and GOP a
// new player starts from, its players and its HLS packager.
type Stream struct {
	App, Name string
	hub       *Hub
	log       *zap.Logger
	created   time.Time

	mu        sync.Mutex
	pub       *Publisher
	published int // publishers so far; a second one starts an HLS discontinuity
	meta      *flv.Tag
	videoSeq  *flv.Tag
	audioSeq  *flv.Tag
	gop       []*flv.Tag
	gopBytes  int
	players   map[*Player]struct{}
	lastTime  int64
	hasTime   bool
	// vacantSince is when the publisher left (or the stream appeared without one); a
	// stream vacant for the hub's IdleTimeout is dropped with its waiting players. Until
	// then its HLS window and numbering survive a publisher restart.
	vacantSince time.Time
	info        Info
	frames      uint64

	hls      *hls.Muxer
	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64
	rate     rateMeter
}

// Key is "app/name", the stream's identity in the cluster.
func (s *Stream) Key() string { return s.App + "/" + s.Name }

// HLS returns the stream's packager.
func (s *Stream) HLS() *hls.Muxer { return s.hls }

// Publishing reports whether a publisher is attached.
func (s *Stream) Publishing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub != nil
}

// write stores t in the caches and queues it to every player. Called only from the
// publisher's goroutine.
func (s *Stream) write(t *flv.Tag) {
	s.bytesIn.Add(uint64(len(t.Raw)))
	s.mu.Lock()
	s.lastTime, s.hasTime = t.Time, true
	switch {
	case t.Type == flv.TypeScript:
		s.meta = t
		s.info.fromMetadata(t)
	case t.IsSequenceHeader() && t.Type == flv.TypeVideo:
		s.videoSeq = t
		s.info.fromVideoConfig(t)
	case t.IsSequenceHeader():
		s.audioSeq = t
		s.info.fromAudioConfig(t)
	default:
		s.info.noteCodec(t)
		s.cacheGOP(t)
	}
	if t.Type == flv.TypeVideo {
		s.frames++
	}
	for p := range s.players {
		if p.push(t, s.hub.cfg.MaxOverflows) {
			s.hub.log.Warn("player skipped to next keyframe: queue full",
				zap.String("stream", s.Key()), zap.String("peer", p.Remote), zap.String("kind", p.Kind))
		}
	}
	s.mu.Unlock()
	s.hls.WriteTag(t)
}

// cacheGOP keeps the tags since the latest keyframe, bounded in bytes: a stream whose
// GOP outgrows the bound is served from its next keyframe instead.
func (s *Stream) cacheGOP(t *flv.Tag) {
	if t.IsKeyframe() {
		clear(s.gop)
		s.gop, s.gopBytes = s.gop[:0], 0
	} else if len(s.gop) == 0 && s.videoSeq != nil {
		return // video stream: wait for a keyframe before caching anything
	}
	if s.gopBytes+len(t.Raw) > s.hub.cfg.GOPMaxBytes {
		clear(s.gop)
		s.gop, s.gopBytes = s.gop[:0], 0
		return
	}
	s.gop = append(s.gop, t)
	s.gopBytes += len(t.Raw)
}

// startTags is what a new player receives first: metadata, sequence headers, the GOP.
func (s *Stream) startTagsLocked() []*flv.Tag {
	out := make([]*flv.Tag, 0, 3+len(s.gop))
	for _, t := range []*flv.Tag{s.meta, s.videoSeq, s.audioSeq} {
		if t != nil {
			out = append(out, t)
		}
	}
	return append(out, s.gop...)
}

func (s *Stream) subscribe(p *Player) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.startTagsLocked() {
		p.push(t, s.hub.cfg.MaxOverflows)
	}
	s.players[p] = struct{}{}
}

func (s *Stream) unsubscribe(p *Player) {
	s.mu.Lock()
	delete(s.players, p)
	s.mu.Unlock()
	p.close(ErrStreamClosed)
}

// Publisher feeds a stream. One goroutine (the publishing connection's) calls Write.
type Publisher struct {
	ID     uint64
	Remote string
	stream *Stream
	clock  flv.Unwrapper
	// offset moves a new publisher's timestamps past the stream's last tag so players
	// that stayed connected see time keep growing.
	offset  int64
	started bool
}

// Stream is the stream being published.
func (p *Publisher) Stream() *Stream { return p.stream }

// Write publishes one RTMP media message (type 8, 9 or 18) with its 32-bit timestamp.
func (p *Publisher) Write(typ uint8, ts uint32, data []byte) {
	p.WriteAt(typ, p.clock.Extend(ts), data)
}

// WriteAt publishes a message whose time is already 64-bit.
func (p *Publisher) WriteAt(typ uint8, timeMS int64, data []byte) {
	if typ == flv.TypeScript {
		var ok bool
		if data, ok = metadataBody(data); !ok {
			return // not onMetaData: nothing a player needs
		}
	}
	s := p.stream
	if !p.started {
		p.started = true
		s.mu.Lock()
		if s.hasTime && timeMS <= s.lastTime {
			p.offset = s.lastTime + 1 - timeMS
		}
		s.mu.Unlock()
	}
	s.write(flv.NewTag(typ, timeMS+p.offset, data))
}

// Close detaches the publisher; players stay subscribed and wait for the next one.
func (p *Publisher) Close() {
	s := p.stream
	s.mu.Lock()
	if s.pub == p {
		s.pub = nil
		s.vacantSince = time.Now()
	}
	s.mu.Unlock()
}

// shutdown closes every player and releases the HLS packager.
func (s *Stream) shutdown(err error) {
	s.mu.Lock()
	players := s.players
	s.players = map[*Player]struct{}{}
	s.mu.Unlock()
	for p := range players {
		p.close(err)
	}
	s.hls.Close()
}
