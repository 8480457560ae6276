// Package hls packages live streams as HLS: MPEG-TS segments (H.264 and AAC only) and a
// sliding media playlist, kept in memory and optionally on disk.
//
// It is a reader of the media core: Packaging.New (stream.go) attaches a Muxer to each
// stream of a media.Hub as its media.Packager, and Watch and Of serve HTTP requests
// from it. muxer.go packages tags, segment.go decides and applies cuts, cut.go is the
// in-band cut marker, role.go a muxer's leader, follower and sleeping states,
// playlist.go and files.go what it serves and writes. The transport stream's bytes come
// from media/mpegts. It may import media, media/flv, media/mpegts and conf/ratelog;
// nothing of the cluster or the servers.
//
// Segments are a deterministic function of the tags: no wall clock, no randomness. In a
// cluster the leader decides where segments start and announces each decision in-band
// with an onHLSCut script tag (see Cut), a control tag to the media core; a Follow muxer
// fed the same tags and markers cuts exactly there and produces the same segment names,
// bytes and playlists.
package hls

import (
	"bytes"
	"strconv"
	"sync"
	"time"

	"github.com/grafov/m3u8"
	"go.uber.org/zap"

	"peer/conf/ratelog"
	"peer/media/flv"
	"peer/media/mpegts"
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
	maxBytes   int // cap of the open segment
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
	target      int64  // the playlist's TARGETDURATION in seconds, fixed at its first segment (0: not yet)
	lastSize    int    // size of the last segment, to preallocate the next
	keyless     int    // video bytes written since the last keyframe, across segments
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
	m.skipped = [2]uint32{noCodec, noCodec}
	return m
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
	if key {
		m.keyless = 0
	} else {
		m.keyless += len(m.annexB)
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
