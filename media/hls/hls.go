// Package hls packages one live stream of FLV tags as HLS: MPEG-TS segments (H.264 and
// AAC only) and a sliding media playlist, kept in memory and optionally on disk.
//
// Segments are a deterministic function of the tags: no wall clock, no randomness. In a
// cluster the leader decides where segments start and announces each decision in-band
// with an onHLSCut script tag (see Cut); a Follow muxer fed the same tags and markers cuts
// exactly there and produces the same segment names, bytes and playlists.
package hls

import (
	"bytes"
	"os"
	"path/filepath"
	"peer/media/mpegts"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafov/m3u8"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/media/flv"
)

// Config tunes a Muxer. Zero values take the defaults.
type Config struct {
	Fragment time.Duration // target segment duration, default 2s (SRS hls_fragment)
	Window   int           // segments in the live playlist, default 6 (SRS hls_window)
	Dir      string        // optional: also write segments and playlist here, delete expired ones
	// PlaylistFile names the playlist in Dir, default "playlist.m3u8".
	PlaylistFile string
	// URIPrefix goes before each segment name in the playlist: "test/" makes
	// /live/test.m3u8 list /live/test/12.ts. Segment() still takes the bare name.
	URIPrefix string
	// Follow: never decide cuts; cut only at onHLSCut markers in the tag stream.
	Follow bool
	// OnCut receives, on a leader, the marker of every segment start. It is called from
	// WriteTag before the tag that starts the segment is muxed; forward the marker to
	// followers ahead of that tag.
	OnCut func(marker *flv.Tag)
	// OnSegment, when set, is told of each segment a leader publishes (SRS's on_hls): its
	// number, name (as in the playlist) and duration. Followers never call it.
	OnSegment func(seq uint64, name string, dur time.Duration)
	// MaxSegmentBytes caps the segment being written (0: SegmentCap(Fragment)). Past it a
	// leader cuts at the next frame and a follower drops the segment.
	MaxSegmentBytes int
}

// SegmentCap is the default byte cap of an open segment: 5 fragments (at least 10 s, a
// long GOP for a high-rate encoder) at 25 Mbit/s, twice what a 1080p60 contribution
// stream uses: 31 MB with 2 s fragments. Only a segment that sees no keyframe for that
// long reaches it; it bounds what a publisher sending no keyframes can make a node hold
// (before the cap, 600 MB of inter frames made one segment of 600 MB).
func SegmentCap(fragment time.Duration) int {
	span := max(5*fragment, 10*time.Second)
	return int(span.Seconds() * 25e6 / 8)
}

// MaxSegment is the longest segment: 10 fragments, and at least 30 s, which x264's
// default GOP (250 frames) reaches at 8.3 fps. A leader cuts a segment that long even
// without a keyframe, and segment durations (EXTINF, TARGETDURATION) are clamped to it,
// so timestamps that jump cannot inflate the playlist's target duration, which RFC 8216
// forbids changing later.
func MaxSegment(fragment time.Duration) time.Duration { return max(10*fragment, 30*time.Second) }

const (
	defaultFragment = 2 * time.Second
	defaultWindow   = 6
	defaultPlaylist = "playlist.m3u8"
	// keepExpired segments stay fetchable after leaving the playlist: a player may have
	// loaded the previous playlist just before.
	keepExpired = 3
	// audioFramesPerPES groups AAC frames (about 23 ms each) to save TS overhead.
	audioFramesPerPES = 4
)

// segment is a finished, immutable segment.
type segment struct {
	seq   uint64
	name  string
	data  []byte
	buf   *bytes.Buffer // data's buffer, reused once the segment expired unread
	durMS int64
	disc  bool
	dseq  uint64
	// readers holding data (Segment until release): while any does, buf is not reused.
	readers atomic.Int32
}

func (s *segment) release() { s.readers.Add(-1) }

// maxSpare is how many expired segments' buffers a muxer keeps for its next segments.
const maxSpare = 2

// openSegment is the segment being written.
type openSegment struct {
	seq      uint64
	startMS  int64
	lastMS   int64 // latest tag time written
	disc     bool
	dseq     uint64
	buf      *bytes.Buffer
	reserve  int  // capacity to give buf before the first write (Mux), not at the cut
	needKey  bool // drop video until a keyframe
	hasMedia bool // a frame went in (a segment without one has nothing to bound)
	audioRAI bool // mark the first audio PES as random access (audio carries the PCR)
}

// Track indexes for skipped-codec logging.
const (
	trackVideo = iota
	trackAudio
)

const noCodec = ^uint32(0)

// Muxer is an HLS packager for one stream. WriteTag, Discontinuity and Close must be
// called from one goroutine (the publisher's); Playlist and Segment are safe from any
// goroutine.
type Muxer struct {
	cfg        Config
	log        *zap.Logger
	fragmentMS int64
	maxMS      int64 // longest segment (MaxSegment)
	maxBytes   int   // cap of the open segment
	warn       *ratelog.Limiter

	// Writer side: touched only by the goroutine calling WriteTag.
	ts          *mpegts.Writer
	avc         *mpegts.AVCConfig
	aac         *mpegts.AACConfig
	skipped     [2]uint32 // codec last reported as skipped per track, or noCodec
	cur         *openSegment
	nextSeq     uint64 // leader: number of the next segment
	discPending bool   // leader: Discontinuity() called, cut at the next media tag
	discCount   uint64 // leader: discontinuities so far
	target      int64  // TARGETDURATION so far, seconds
	lastSize    int    // size of the last segment, to preallocate the next
	// Buffers of expired segments no reader held. A new segment takes one: memory that is
	// already mapped and sized, where a fresh one costs page faults and zeroing right
	// after the cut's keyframe went to the players, and garbage for the collector.
	spare       []*bytes.Buffer
	ended       []*segment // closed at a cut, published by Mux once the cut's tag is out
	annexB      []byte
	audio       []byte // ADTS frames waiting for their PES
	audioFrames int
	audioPTS    int64
	stopped     bool
	dirOnce     sync.Once // Dir is created (makeDir)
	// A sleeping follower (Sleep) packages nothing; it keeps the codec configuration, the
	// latest marker (lastCut) and the tags of the last wakeSegments segments and the one in
	// progress (held), which Wake packages at once.
	asleep    bool
	lastCut   Cut // the latest marker, awake or asleep
	hasCut    bool
	held      []*flv.Tag
	heldCuts  []int // the index in held of each marker held
	heldBytes int

	mu       sync.RWMutex
	pl       *m3u8.MediaPlaylist // not goroutine-safe: only used under mu
	win      []*segment          // segments listed in pl
	segs     []*segment          // fetchable: the window plus keepExpired
	playlist []byte
	closed   bool
}

// New returns a Muxer; log may be nil.
func New(cfg Config, log *zap.Logger) *Muxer {
	if cfg.Fragment <= 0 {
		cfg.Fragment = defaultFragment
	}
	if cfg.Window <= 0 {
		cfg.Window = defaultWindow
	}
	if cfg.PlaylistFile == "" {
		cfg.PlaylistFile = defaultPlaylist
	}
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.MaxSegmentBytes <= 0 {
		cfg.MaxSegmentBytes = SegmentCap(cfg.Fragment)
	}
	m := &Muxer{cfg: cfg, log: log, fragmentMS: cfg.Fragment.Milliseconds(), ts: mpegts.NewWriter(),
		maxBytes: cfg.MaxSegmentBytes, warn: ratelog.New(log, 0)}
	m.maxMS = MaxSegment(cfg.Fragment).Milliseconds()
	m.skipped = [2]uint32{noCodec, noCodec}
	return m
}

// makeDir creates Dir when the first segment is written to it, not in New: a stream
// that never publishes (players waiting, HLS requests for names nobody publishes)
// leaves no directory behind.
func (m *Muxer) makeDir() {
	m.dirOnce.Do(func() {
		if err := os.MkdirAll(m.cfg.Dir, 0o755); err != nil {
			m.log.Warn("hls: cannot create segment directory", zap.String("dir", m.cfg.Dir), zap.Error(err))
		}
	})
}

// WriteTag feeds the next tag of the stream. The tag is not modified; only a sleeping
// follower retains it (see Sleep).
func (m *Muxer) WriteTag(t *flv.Tag) {
	m.Cut(t)
	m.Mux(t)
}

// Cut makes a leader's cut decision at t: when t starts a segment, the current one is
// closed and OnCut announces the next. A caller that hands t to players between Cut and
// Mux keeps each marker ahead of the tag it cuts at, without making players wait for the
// packaging itself.
func (m *Muxer) Cut(t *flv.Tag) {
	if m.stopped || m.cfg.Follow {
		return
	}
	switch {
	case m.isVideoFrame(t):
		m.maybeCut(t, t.IsKeyframe())
	case m.isAudioFrame(t):
		m.maybeCut(t, false)
	}
}

// isVideoFrame: an H.264 frame the muxer can package.
func (m *Muxer) isVideoFrame(t *flv.Tag) bool {
	d := t.Data()
	return t.Type == flv.TypeVideo && len(d) >= 5 && d[0]&0x80 == 0 && t.VideoCodec() == flv.VideoH264 &&
		d[1] == 1 && m.avc != nil && len(t.Payload()) > 0
}

// isAudioFrame: an AAC frame the muxer can package.
func (m *Muxer) isAudioFrame(t *flv.Tag) bool {
	d := t.Data()
	return t.Type == flv.TypeAudio && t.AudioCodec() == flv.AudioAAC && len(d) >= 2 && d[1] != 0 && m.aac != nil
}

// Mux packages t into the current segment (after Cut, which it repeats harmlessly), and
// publishes a segment a cut closed.
func (m *Muxer) Mux(t *flv.Tag) {
	if m.stopped {
		return
	}
	if m.asleep {
		m.hold(t)
		return
	}
	defer m.publishEnded()
	if c := m.cur; c != nil && c.reserve > 0 {
		c.buf.Grow(c.reserve)
		c.reserve = 0
	}
	if c := m.cur; c != nil && m.cfg.Follow && c.buf.Len() >= m.maxBytes && t.Type != flv.TypeScript {
		// The leader cuts before its segment passes the cap, so this is not its segment.
		m.warn.Warn("hls-segment-cap", "hls: segment over its byte cap without a cut from the leader, dropped",
			zap.Uint64("seq", c.seq), zap.Int("bytes", c.buf.Len()), zap.Int("cap", m.maxBytes))
		m.dropSegment()
	}
	switch t.Type {
	case flv.TypeVideo:
		m.writeVideo(t)
	case flv.TypeAudio:
		m.writeAudio(t)
	case flv.TypeScript:
		if c, ok := ParseCutMarker(t); ok && m.cfg.Follow {
			m.followCut(c, t.Time)
		}
	}
}

// Discontinuity tells a leader the publisher restarted: the segment being written ends at
// the next audio or video tag and the next one starts with EXT-X-DISCONTINUITY. Followers
// take discontinuities from the leader's markers, so on them this does nothing.
func (m *Muxer) Discontinuity() {
	if !m.cfg.Follow && m.cur != nil {
		m.discPending = true
	}
}

// Playlist returns a copy of the media playlist; false until a segment is complete.
func (m *Muxer) Playlist() ([]byte, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.playlist == nil {
		return nil, false
	}
	return bytes.Clone(m.playlist), true
}

// Segment returns a segment by its playlist name, e.g. "12.ts", and release, to call
// when done with the bytes: until then its buffer is not reused for a later segment.
// The bytes are shared and must not be modified.
func (m *Muxer) Segment(name string) (data []byte, release func(), ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, s := range m.segs {
		if s.name == name {
			s.readers.Add(1)
			return s.data, s.release, true
		}
	}
	return nil, nil, false
}

// Close drops all segments and deletes the files written to Dir.
func (m *Muxer) Close() {
	m.stopped = true
	m.cur, m.spare = nil, nil
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	m.mu.Unlock()
	m.dropWindow()
}

// dropWindow forgets the playlist and every segment, and deletes their files.
func (m *Muxer) dropWindow() {
	m.mu.Lock()
	segs, closed := m.segs, m.closed
	m.segs, m.win, m.pl, m.playlist = nil, nil, nil, nil
	m.mu.Unlock()
	if m.cfg.Dir == "" {
		return
	}
	for _, s := range segs {
		m.removeFile(s.name)
	}
	m.removeFile(m.cfg.PlaylistFile)
	if closed {
		os.Remove(m.cfg.Dir) // the stream's own directory, once empty; others may share its parent
	}
}

func (m *Muxer) writeVideo(t *flv.Tag) {
	d := t.Data()
	if len(d) < 1 {
		return
	}
	if d[0]&0x80 != 0 { // Enhanced RTMP: a FourCC follows
		if len(d) >= 5 {
			m.skip(trackVideo, "video", uint32(d[1])<<24|uint32(d[2])<<16|uint32(d[3])<<8|uint32(d[4]),
				func() string { return "Enhanced RTMP " + strconv.Quote(string(d[1:5])) })
		}
		return
	}
	if codec := t.VideoCodec(); codec != flv.VideoH264 {
		m.skip(trackVideo, "video", uint32(codec), func() string { return codecName(videoCodecs, codec) })
		return
	}
	if len(d) < 5 {
		return
	}
	switch d[1] { // AVCPacketType
	case 0:
		c, err := mpegts.ParseAVCC(t.Payload())
		if err != nil {
			m.log.Warn("hls: bad AVC sequence header, video skipped until a valid one", zap.Error(err))
			return
		}
		if m.avc == nil || c.Width != m.avc.Width || c.Height != m.avc.Height {
			m.log.Info("hls: h264 video", zap.Int("width", c.Width), zap.Int("height", c.Height))
		}
		m.avc = c
		return
	}
	if !m.isVideoFrame(t) { // end of sequence, or no configuration yet
		return
	}
	key := t.IsKeyframe()
	m.maybeCut(t, key)
	c := m.cur
	if c == nil || !m.ts.Video() {
		return
	}
	if c.needKey {
		if !key {
			return
		}
		c.needKey = false
	}
	var err error
	if m.annexB, err = mpegts.AppendAnnexB(m.annexB[:0], m.avc, t.Payload()); err != nil {
		m.log.Debug("hls: malformed h264 frame dropped", zap.Int64("time", t.Time), zap.Error(err))
		return
	}
	pts := mpegts.Clock90(t.Time + int64(t.CompositionTime()))
	if err := m.ts.WritePES(mpegts.PIDVideo, pts, mpegts.Clock90(t.Time), key, m.annexB); err != nil {
		m.log.Warn("hls: mpeg-ts write failed", zap.Error(err))
		return
	}
	c.lastMS = max(c.lastMS, t.Time)
	c.hasMedia = true
}

func (m *Muxer) writeAudio(t *flv.Tag) {
	if codec := t.AudioCodec(); codec != flv.AudioAAC {
		m.skip(trackAudio, "audio", uint32(codec), func() string { return codecName(audioCodecs, codec) })
		return
	}
	d := t.Data()
	if len(d) < 2 {
		return
	}
	if d[1] == 0 { // AACPacketType: sequence header
		c, err := mpegts.ParseASC(t.Payload())
		if err != nil {
			m.log.Warn("hls: bad AAC sequence header, audio skipped until a valid one", zap.Error(err))
			return
		}
		if m.aac == nil || *c != *m.aac {
			m.log.Info("hls: aac audio", zap.Int("rate", c.SampleRate), zap.Uint8("channels", c.Channels))
		}
		m.aac = c
		return
	}
	if !m.isAudioFrame(t) {
		return
	}
	m.maybeCut(t, false)
	c := m.cur
	frame := t.Payload()
	if c == nil || !m.ts.Audio() || len(frame) == 0 || len(frame) > mpegts.MaxADTSFrame {
		return
	}
	if m.audioFrames == 0 {
		m.audioPTS = t.Time
	}
	m.audio = m.aac.AppendADTS(m.audio, frame)
	m.audioFrames++
	c.lastMS = max(c.lastMS, t.Time)
	c.hasMedia = true
	if m.audioFrames == audioFramesPerPES {
		m.flushAudio()
	}
}

func (m *Muxer) flushAudio() {
	if m.audioFrames == 0 {
		return
	}
	c := m.cur
	pts := mpegts.Clock90(m.audioPTS)
	if err := m.ts.WritePES(mpegts.PIDAudio, pts, pts, c.audioRAI, m.audio); err != nil {
		m.log.Warn("hls: mpeg-ts write failed", zap.Error(err))
	}
	c.audioRAI = false
	m.audio, m.audioFrames = m.audio[:0], 0
}

// skip logs once per track and codec that a track is left out of the HLS output.
func (m *Muxer) skip(track int, kind string, id uint32, name func() string) {
	if m.skipped[track] == id {
		return
	}
	m.skipped[track] = id
	m.log.Warn("hls: "+kind+" track not packaged", zap.String("codec", name()),
		zap.String("reason", "HLS output carries only H.264 video and AAC audio"))
}

// maybeCut is the leader's decision, made at each audio/video tag that would be muxed:
// start the first segment at a keyframe (or at audio when there is no video), cut at a
// keyframe once the segment is Fragment long (on time for audio-only streams) or when
// video appears, and cut right away after a discontinuity.
func (m *Muxer) maybeCut(t *flv.Tag, key bool) {
	if m.cfg.Follow {
		return
	}
	c := m.cur
	var cut, over bool
	switch {
	case c == nil:
		cut = key || (t.Type == flv.TypeAudio && m.avc == nil)
	case m.discPending:
		cut = true
	case c.hasMedia && (c.buf.Len() >= m.maxBytes || t.Time-c.startMS >= m.maxMS):
		// No keyframe for too long: cut anyway; the next segment drops video until one.
		cut, over = true, true
		m.warn.Warn("hls-segment-cap", "hls: segment cut at its cap without a keyframe; video dropped until the next one",
			zap.Uint64("seq", c.seq), zap.Int("bytes", c.buf.Len()), zap.Int64("ms", t.Time-c.startMS),
			zap.Int("cap_bytes", m.maxBytes), zap.Int64("cap_ms", m.maxMS))
	case m.avc != nil && !c.needKey:
		// Video that just appeared starts a segment at once: only then is it in the PMT.
		cut = key && (t.Time-c.startMS >= m.fragmentMS || !m.ts.Video())
	case m.avc != nil:
		// Waiting for a keyframe after a cut at the cap: cut on time once audio went in,
		// so the audio keeps flowing in segments of the usual length.
		cut = c.hasMedia && t.Time-c.startMS >= m.fragmentMS
	default:
		cut = t.Time-c.startMS >= m.fragmentMS
	}
	if !cut {
		return
	}
	disc := m.discPending
	m.discPending = false
	m.closeSegment(t.Time, disc)
	if over {
		m.lastSize = 0 // the next segment's buffer is not sized after a capped one
	}
	m.ts.SetStreams(m.avc != nil, m.aac != nil)
	next := Cut{Seq: m.nextSeq, Discontinuity: disc, DiscSeq: m.discCount, Target: m.target, TS: m.ts.State()}
	m.nextSeq++
	if disc {
		m.discCount++
	}
	m.openSegment(next, t.Time)
	if m.cfg.OnCut != nil {
		m.cfg.OnCut(CutMarker(next, t.Time))
	}
}

// dropSegment abandons the segment being written; nothing is packaged until the next cut.
func (m *Muxer) dropSegment() {
	m.flushAudio()
	m.ts.End()
	m.cur = nil
}

// maxTarget is the largest TARGETDURATION, in seconds: the longest segment.
func (m *Muxer) maxTarget() int64 { return (m.maxMS + 999) / 1000 }

// followCut applies a leader's marker.
func (m *Muxer) followCut(c Cut, timeMS int64) {
	if m.cur != nil && c.Seq <= m.cur.seq {
		m.log.Debug("hls: stale cut marker ignored", zap.Uint64("seq", c.Seq), zap.Uint64("current", m.cur.seq))
		return
	}
	m.lastCut, m.hasCut = c, true
	if m.cur != nil && c.Seq != m.cur.seq+1 {
		// A marker went missing: what we have would not match the leader's segment.
		m.log.Warn("hls: cut markers missing, segment dropped", zap.Uint64("seq", m.cur.seq), zap.Uint64("next", c.Seq))
		m.dropSegment()
	}
	// Before closing, so our playlist says what the leader's does; bounded as the
	// leader's own target is, whatever the marker says.
	m.target = max(m.target, min(c.Target, m.maxTarget()))
	m.closeSegment(timeMS, c.Discontinuity)
	m.ts.SetStreams(m.avc != nil, m.aac != nil)
	if !m.ts.Sync(c.TS) {
		m.log.Warn("hls: cannot continue the leader's MPEG-TS counters; segments will differ",
			zap.Uint64("seq", c.Seq), zap.Any("leader", c.TS), zap.Any("local", m.ts.State()))
	}
	m.openSegment(c, timeMS)
}

// openSegment starts the next segment. Its buffer gets its room at the first write (a
// leader's cut runs before the keyframe goes to the players, and a segment's worth of
// fresh memory costs page faults).
func (m *Muxer) openSegment(c Cut, startMS int64) {
	reserve := m.lastSize + m.lastSize/4
	var buf *bytes.Buffer
	if n := len(m.spare); n > 0 {
		buf, m.spare = m.spare[n-1], m.spare[:n-1]
		buf.Reset() // Mux's Grow(reserve) is free when it is large enough
	} else {
		buf = new(bytes.Buffer)
	}
	m.cur = &openSegment{
		seq: c.Seq, startMS: startMS, lastMS: startMS, disc: c.Discontinuity, dseq: c.DiscSeq,
		buf: buf, reserve: reserve, needKey: m.ts.Video(), audioRAI: !m.ts.Video(),
	}
	m.ts.Begin(buf)
}

// closeSegment finishes the current segment at endMS, the start of the next one, and
// leaves it for publishEnded. After a discontinuity endMS is on another timeline, so the
// segment ends at its last tag.
func (m *Muxer) closeSegment(endMS int64, disc bool) {
	c := m.cur
	if c == nil {
		return
	}
	m.flushAudio()
	m.ts.End()
	m.cur = nil
	if c.buf.Len() == 0 { // a follower that had no codec config yet
		return
	}
	if disc {
		endMS = c.lastMS
	}
	dur := min(max(endMS-c.startMS, 0), m.maxMS)
	// RFC 8216 4.3.3.1 bounds each EXTINF rounded to the nearest integer: rounding up
	// made a segment a frame over 2 s raise the target to 3 mid-stream.
	m.target = max(m.target, (dur+500)/1000, 1)
	m.lastSize = c.buf.Len()
	m.ended = append(m.ended, &segment{seq: c.seq, name: strconv.FormatUint(c.seq, 10) + ".ts", data: c.buf.Bytes(), buf: c.buf, durMS: dur, disc: c.disc, dseq: c.dseq})
}

// publishEnded publishes the segments closed since the last call.
func (m *Muxer) publishEnded() {
	for i, s := range m.ended {
		m.publish(s)
		m.ended[i] = nil
	}
	m.ended = m.ended[:0]
}

// publish adds a finished segment to the playlist and the store, then mirrors both to Dir.
func (m *Muxer) publish(s *segment) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	if n := len(m.win); n > 0 && m.win[n-1].seq+1 != s.seq {
		m.win, m.pl = nil, nil // a gap in numbering: start the playlist over
	}
	if m.pl == nil {
		m.pl, _ = m3u8.NewMediaPlaylist(uint(m.cfg.Window), uint(m.cfg.Window))
	}
	// Slide, not Append: Append past the window keeps listing the oldest segments.
	m.pl.Slide(m.cfg.URIPrefix+s.name, float64(s.durMS)/1000, "")
	if s.disc {
		_ = m.pl.SetDiscontinuity()
	}
	m.win = append(m.win, s)
	if len(m.win) > m.cfg.Window {
		m.win = append(m.win[:0], m.win[1:]...)
	}
	m.pl.SeqNo = m.win[0].seq
	// m3u8 does not advance EXT-X-DISCONTINUITY-SEQUENCE when a discontinuity slides out.
	m.pl.DiscontinuitySeq = m.win[0].dseq
	// The leader's running maximum (carried in markers), not m3u8's, so followers agree.
	m.pl.TargetDuration = float64(m.target)
	// SetDiscontinuity and field writes leave m3u8's cached text in place.
	m.pl.ResetCache()
	// Encode returns m3u8's internal buffer, overwritten by the next change.
	m.playlist = bytes.Clone(m.pl.Encode().Bytes())
	playlist := m.playlist

	m.segs = append(m.segs, s)
	var expired []*segment
	if n := len(m.segs) - m.cfg.Window - keepExpired; n > 0 {
		expired = append(expired, m.segs[:n]...)
		m.segs = append(m.segs[:0], m.segs[n:]...)
	}
	// No Segment call can find an expired segment any more (it looks under mu): one that
	// nobody holds now never will be, and its buffer can carry a later segment.
	for _, e := range expired {
		if e.readers.Load() == 0 && len(m.spare) < maxSpare {
			m.spare = append(m.spare, e.buf)
		}
		e.data, e.buf = nil, nil
	}
	m.mu.Unlock()

	if m.cfg.OnSegment != nil && !m.cfg.Follow {
		m.cfg.OnSegment(s.seq, m.cfg.URIPrefix+s.name, time.Duration(s.durMS)*time.Millisecond)
	}
	if m.cfg.Dir == "" {
		return
	}
	m.makeDir()
	m.writeFile(s.name, s.data)
	m.writeFile(m.cfg.PlaylistFile, playlist)
	for _, e := range expired {
		m.removeFile(e.name)
	}
}

// writeFile replaces a file in Dir atomically so HTTP servers never see half of it.
func (m *Muxer) writeFile(name string, data []byte) {
	f, err := os.CreateTemp(m.cfg.Dir, "."+name+".*")
	if err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(0o644) // CreateTemp makes 0600; a web server may run as another user
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(m.cfg.Dir, name))
		}
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}
	if err != nil {
		m.log.Warn("hls: write failed", zap.String("file", name), zap.Error(err))
	}
}

func (m *Muxer) removeFile(name string) {
	if err := os.Remove(filepath.Join(m.cfg.Dir, name)); err != nil && !os.IsNotExist(err) {
		m.log.Warn("hls: remove failed", zap.String("file", name), zap.Error(err))
	}
}
