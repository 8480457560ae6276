package hls

import (
	"bytes"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// SegmentCap is the default byte cap of an open segment: 5 fragments (at least 10 s, a
// long GOP for a high-rate encoder) at 25 Mbit/s, twice what a 1080p60 contribution
// stream uses: 31 MB with 2 s fragments. Only a segment that sees no keyframe for that
// long reaches it; it bounds what a publisher sending no keyframes can make a node hold
// (before the cap, 600 MB of inter frames made one segment of 600 MB).
func SegmentCap(fragment time.Duration) int {
	span := max(5*fragment, 10*time.Second)
	return int(span.Seconds() * 25e6 / 8)
}

// The playlist's TARGETDURATION (RFC 8216 4.3.3.1: the longest EXTINF, rounded to the
// nearest second, and it must not change) is fixed when its first segment closes: that
// segment's duration, which runs from a keyframe to the first keyframe a fragment later
// and so measures the stream's GOP, rounded to the nearest second and held between the
// fragment (rounded, at least 1 s) and twice that. Twice the fragment is what keeps a
// long GOP from making latency absurd: hls.js and Safari start three target durations
// from the end, so x264's default GOP of 10 s as the target would start players 30 s
// behind. A segment that reaches its target without a keyframe is cut at the next frame
// anyway (forceSlack) and the next one continues the video mid-GOP, as nginx-rtmp's
// hls_max_fragment does; a follower learns the target and each such cut from the
// leader's markers, and a promoted follower keeps it. EXTINF is clamped to the longest
// duration that rounds to the target, so a hole in the timestamps (a failover) cannot
// break the bound either.

// targetBounds returns the shortest and longest target for a fragment, in seconds.
func targetBounds(fragmentMS int64) (lo, hi int64) {
	lo = max((fragmentMS+500)/1000, 1)
	return lo, 2 * lo
}

// forceSlack is how far past its target a segment without a keyframe runs before it is
// cut anyway: a keyframe a little late (encoder jitter) still starts the next segment, and
// a frame interval under 100 ms keeps the segment's EXTINF rounding to the target.
const forceSlack = 400

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
	midGOP   bool // started without a keyframe (a forced cut), continuing the video
	hasMedia bool // a frame went in (a segment without one has nothing to bound)
	audioRAI bool // mark the first audio PES as random access (audio carries the PCR)
}

// maybeCut is the leader's decision, made at each audio/video tag that would be muxed:
// start the first segment at a keyframe (or at audio when there is no video), cut at a
// keyframe once the segment is Fragment long (on time for audio-only streams) or when
// video appears, cut right away after a discontinuity, and cut at any frame once the
// segment would outlast the target.
func (m *Muxer) maybeCut(t *flv.Tag, key bool) {
	if m.cfg.Follow {
		return
	}
	c := m.cur
	var cut, over, forced bool
	switch {
	case c == nil:
		cut = key || (t.Type == flv.TypeAudio && m.avc == nil)
	case m.discPending:
		cut = true
	case c.hasMedia && c.buf.Len() >= m.maxBytes:
		// No keyframe for too much data: cut anyway; the next segment drops video until one.
		cut, over = true, true
		m.warn.Warn("hls-segment-cap", "hls: segment cut at its byte cap without a keyframe; video dropped until the next one",
			zap.Uint64("seq", c.seq), zap.Int("bytes", c.buf.Len()), zap.Int64("ms", t.Time-c.startMS),
			zap.Int("cap_bytes", m.maxBytes))
	case m.avc != nil && !c.needKey:
		// Video that just appeared starts a segment at once: only then is it in the PMT.
		// A segment that started mid-GOP ends at its first keyframe after half a
		// fragment, so that keyframes start segments again (a player starting at one
		// drops the frames before its first keyframe).
		d := t.Time - c.startMS
		cut = key && (d >= m.fragmentMS || !m.ts.Video() || (c.midGOP && d >= m.fragmentMS/2))
	case m.avc != nil:
		// Waiting for a keyframe after a cut at the cap: cut on time once audio went in,
		// so the audio keeps flowing in segments of the usual length.
		cut = c.hasMedia && t.Time-c.startMS >= m.fragmentMS
	default:
		cut = t.Time-c.startMS >= m.fragmentMS
	}
	if !cut && c != nil && c.hasMedia && t.Time-c.startMS >= m.targetMS()+forceSlack {
		// The target is reached without a keyframe (a longer GOP, a hole): cut at this
		// frame; the next segment continues the video where this one stops.
		cut, forced = true, true
	}
	if !cut {
		return
	}
	// The next segment continues the video mid-GOP only after a forced cut of a segment
	// whose video was flowing, and while the video since the last keyframe stays under
	// the byte cap; otherwise it waits for a keyframe. Without that bound a stream that
	// never sends another keyframe filled the whole window with segments nobody can
	// start from: 6 x 11 MB, where the cap alone held 31 MB (TestKeyframelessInterFrames).
	cont := forced && !c.needKey && m.ts.Video() && m.keyless < m.maxBytes
	disc := m.discPending
	m.discPending = false
	m.closeSegment(t.Time, disc)
	if over {
		m.lastSize = 0 // the next segment's buffer is not sized after a capped one
	}
	m.ts.SetStreams(m.avc != nil, m.aac != nil)
	next := Cut{Seq: m.nextSeq, Discontinuity: disc, DiscSeq: m.discCount, Target: m.target, Cont: cont, TS: m.ts.State()}
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

// targetMS is the target in ms: the fixed one, or the longest allowed before it is fixed.
func (m *Muxer) targetMS() int64 {
	if m.target > 0 {
		return m.target * 1000
	}
	_, hi := targetBounds(m.fragmentMS)
	return hi * 1000
}

// adoptTarget takes a leader's target (a marker's, 0 when not yet fixed) while this
// muxer's playlist has none, bounded as the leader's own: once fixed it never changes.
func (m *Muxer) adoptTarget(target int64) {
	if m.target == 0 && target > 0 {
		lo, hi := targetBounds(m.fragmentMS)
		m.target = min(max(target, lo), hi)
	}
}

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
	// Before closing, so our playlist says what the leader's does.
	m.adoptTarget(c.Target)
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
		buf: buf, reserve: reserve, needKey: m.ts.Video() && !c.Cont, midGOP: c.Cont, audioRAI: !m.ts.Video(),
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
	dur := max(endMS-c.startMS, 0)
	if m.target == 0 {
		// The playlist's first segment fixes its target (see targetBounds). RFC 8216
		// 4.3.3.1 bounds each EXTINF rounded to the nearest integer: rounded up, a
		// segment a frame over 2 s made the target 3.
		lo, hi := targetBounds(m.fragmentMS)
		m.target = min(max((dur+500)/1000, lo), hi)
	}
	// The longest duration that rounds to the target: only a hole in the timestamps
	// (a forced cut comes at the first frame after it) makes a segment longer.
	dur = min(dur, m.target*1000+499)
	m.lastSize = c.buf.Len()
	m.ended = append(m.ended, &segment{seq: c.seq, name: strconv.FormatUint(c.seq, 10) + ".ts", data: c.buf.Bytes(), buf: c.buf, durMS: dur, disc: c.disc, dseq: c.dseq})
}
