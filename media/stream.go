package media

import (
	"bytes"
	"net/netip"
	"runtime"
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

	mu          sync.Mutex
	dead        bool // dropped from the hub (idle, shutdown): Publish and Play retry on a fresh stream
	pub         *Publisher
	meta        *flv.Tag
	videoSeq    *flv.Tag
	audioSeq    *flv.Tag
	gop         gopCache
	hasVideo    bool     // video was seen: the GOP cache and skipping players wait for keyframes
	hasAudio    bool     // audio was seen (the FLV header's flags)
	firstTime   int64    // media time of the first tag stored
	lastControl *flv.Tag // the latest in-band control tag (a packager's segment in progress)
	control     *flv.Tag // a control tag to send with the next tag (under wmu)
	players     map[*Player]struct{}
	lastTime    int64
	hasTime     bool
	lastRound   int64 // media time of the last fan-out that woke players (MergeWrite)
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
	fo.flush()
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

// fanOutLocked queues t to every player (a control tag: to every link). Players whose
// goroutine is idle and who have a Sink are claimed into fo instead of woken.
func (s *Stream) fanOutLocked(t *flv.Tag, control bool, fo *fanOut) {
	wakeAt := 0 // wake (or claim) the player now
	if t.Type == flv.TypeAudio && s.videoSeq != nil {
		wakeAt = lazyWakeTags
	}
	wakeViewerAt := wakeAt // links never wait for a merged write
	if s.mergingLocked(t) {
		wakeViewerAt = mergeWakeTags
	}
	for p := range s.players {
		w := wakeViewerAt
		if p.link {
			w = wakeAt
		} else if control {
			continue
		}
		dropped, claimed := p.push(t, s.hub.cfg.MaxOverflows, w, true)
		if dropped {
			s.hub.warn.Warn("player-skip", "player skipped to next keyframe: queue full",
				zap.String("stream", s.Key()), zap.String("peer", p.Remote), zap.String("kind", p.Kind))
		}
		if claimed {
			fo.claim(p)
		}
	}
}

// mergeWakeTags bounds how many tags a merged write gathers whatever their duration.
const mergeWakeTags = 128

// mergingLocked reports that t waits for the next merged write (MergeWrite): less than
// the window of media has passed since the last one. Video starts the writes (audio of a
// stream with video always waits for it); config tags never wait.
func (s *Stream) mergingLocked(t *flv.Tag) bool {
	window := s.cfg.mergeWrite.Milliseconds()
	switch {
	case window <= 0 || isConfig(t):
		return false
	case t.Type == flv.TypeAudio && s.videoSeq != nil:
		return true
	}
	if since := t.Time - s.lastRound; since >= 0 && since < window {
		return true
	}
	s.lastRound = t.Time
	return false
}

// fanOut is a publisher's scratch for writing to players from its own goroutine: one
// nonblocking write per player that keeps up costs no goroutine switch at all, which is
// most of what serving a player costs besides the kernel's work.
type fanOut struct {
	claimed []*Player // First links, other links, then viewers
	links   int       // links at the front of claimed
	firsts  int       // First links at the front of those
	batch   []*flv.Tag
	shards  []fanOut // helpers' scratch when the work is split
}

// claim adds p to the players this round writes. Links go to the front: every hub
// downstream waits for them, and written behind a large audience (in the map's random
// order) a hop would wait for up to a whole round of writes. First links go before the
// other links: in the map's order, half the frames woke a link whose far end had no
// viewers before one whose far end had, which then found the cores taken.
func (fo *fanOut) claim(p *Player) {
	fo.claimed = append(fo.claimed, p)
	if !p.link {
		return
	}
	last := len(fo.claimed) - 1
	fo.claimed[fo.links], fo.claimed[last] = fo.claimed[last], fo.claimed[fo.links]
	fo.links++
	if p.first {
		fo.claimed[fo.firsts], fo.claimed[fo.links-1] = fo.claimed[fo.links-1], fo.claimed[fo.firsts]
		fo.firsts++
	}
}

// fanOutShard is how many claimed players one goroutine writes to; more are split
// over goroutines so a large audience uses every core.
const fanOutShard = 256

// flush writes to the claimed players and forgets them: the links first, from this
// goroutine before any helper competes for a core, then the users.
func (fo *fanOut) flush() {
	all := fo.claimed
	if len(all) == 0 {
		return
	}
	if fo.links > 0 {
		fo.claimed = all[:fo.links]
		fo.writeClaimed()
	}
	users := all[fo.links:]
	n := len(users)
	parts := min((n+fanOutShard-1)/fanOutShard, runtime.GOMAXPROCS(0))
	if parts > 1 {
		if len(fo.shards) < parts-1 {
			fo.shards = make([]fanOut, parts-1)
		}
		var wg sync.WaitGroup
		for i := range parts - 1 {
			sh := &fo.shards[i]
			sh.claimed = users[(i+1)*n/parts : (i+2)*n/parts]
			wg.Go(sh.writeClaimed)
		}
		fo.claimed = users[:n/parts]
		fo.writeClaimed()
		wg.Wait()
	} else {
		fo.claimed = users
		fo.writeClaimed()
	}
	clear(all)
	fo.claimed, fo.links, fo.firsts = all[:0], 0, 0
}

func (fo *fanOut) writeClaimed() {
	var sent, n int
	for _, p := range fo.claimed {
		fo.batch, n = p.flushInline(fo.batch)
		sent += n
	}
	if len(fo.claimed) > 0 { // one update per round: the counter is shared by every shard
		fo.claimed[0].stream.bytesOut.Add(uint64(sent))
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
	for _, t := range s.startTagsLocked() {
		if p.link || !s.isControl(t.Type, t.Data()) {
			p.push(t, s.hub.cfg.MaxOverflows, 0, false)
		}
	}
	s.players[p] = struct{}{}
	return true
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

// timeline keeps a stream's time growing across publishers. A new origin whose clock
// starts behind the stream is shifted past it (players that stayed see time go on). A
// publisher that continues the stream (Resume, Copy: a copy after an upstream switch,
// an origin's relay re-pointed here) replays a little of what the stream already has,
// from its GOP cache: those tags are dropped and it resumes with the first tag after the
// stream's last one, which the players can decode since they have everything before it.
type timeline struct {
	prevLast  int64 // the stream's last time when the publisher attached
	prevHas   bool
	continues bool
	started   bool
	offset    int64
	catching  bool  // dropping what the stream already has
	catchUp   int64 // the stream's last time
	aligned   bool  // the first tag was found in the stream, at alignAt
	alignAt   int64
}

// maxReplay is the longest overlap a continuing publisher may replay; further back is
// another timeline.
const maxReplay = 60_000

func (tl *timeline) start(first int64) {
	tl.started = true
	if tl.aligned {
		tl.offset = tl.alignAt - first
		tl.catching, tl.catchUp = true, tl.prevLast
		return
	}
	if !tl.prevHas || first > tl.prevLast {
		return
	}
	if tl.continues && tl.prevLast-first < maxReplay {
		tl.catching, tl.catchUp = true, tl.prevLast
		return
	}
	tl.offset = tl.prevLast + 1 - first
}

// align places a resumed origin by content: its first tag is the stream's tag at
// stream time at (ok), so its clock is shifted onto the stream's; without a common tag
// it is not continuing after all, and gets a new timeline past the stream's end.
func (tl *timeline) align(at int64, ok bool) {
	if ok {
		tl.aligned, tl.alignAt = true, at
		return
	}
	tl.continues = false
}

// place returns the stream time of t (already offset), or false to drop it.
func (tl *timeline) place(t *flv.Tag) (int64, bool) {
	at := t.Time
	switch {
	case !tl.catching:
	case isConfig(t):
		at = max(at, tl.catchUp)
	case at <= tl.catchUp:
		return 0, false
	default:
		tl.catching = false
	}
	return at, true
}

// timeOf returns the stream time of a cached tag (GOP cache) with this type and body.
func (s *Stream) timeOf(typ uint8, data []byte) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gop := s.gop.tags()
	for i := len(gop) - 1; i >= 0; i-- {
		if t := gop[i]; t.Type == typ && bytes.Equal(t.Data(), data) {
			return t.Time, true
		}
	}
	return 0, false
}

// Close detaches the publisher; players stay subscribed and wait for the next one.
func (p *Publisher) Close() {
	p.stream.release(p)
	p.releaseBudget()
}

// release frees the stream of p if p still holds it, and lets every merged write out.
func (s *Stream) release(p *Publisher) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pub == p {
		s.pub = nil
		s.vacantSince = time.Now()
	}
	for pl := range s.players {
		pl.signal() // what a merged write still holds goes out now
	}
}

// shutdown ends a stream the hub dropped (marked dead under the hub's lock): its
// publisher is detached and told, every player closed, and then the packagers
// released, after any write in flight: closing HLS's muxer under a write crashed it.
func (s *Stream) shutdown(err error) {
	s.mu.Lock()
	players, pub := s.players, s.pub
	s.players, s.pub = map[*Player]struct{}{}, nil
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
