package media

import (
	"time"

	"go.uber.org/zap"

	"peer/media/flv"
)

// gopCache is what a new player starts from after the metadata and sequence headers.
// It is bounded in bytes (Config.GOPMaxBytes), in media time and in tags (so that a
// joiner's queue takes it whole with room for the live tags behind it):
//   - A stream with video keeps the tags since its latest keyframe (and the control tag
//     right before it, see Packager). A GOP that outgrows a bound is dropped, with a log line, and the
//     cache waits for the next keyframe: the joiner then starts at that keyframe.
//   - An audio-only stream has no keyframes, but every AAC (or MP3) frame decodes on its
//     own after the sequence header, so it keeps a sliding window of its latest audio,
//     trimmed from the front. Before, it grew to the byte cap (16 MB, minutes of audio),
//     and a joiner got more than its queue holds, dropped it with the sequence header,
//     and waited for a keyframe that never came.
type gopCache struct {
	buf   []*flv.Tag // tags[head:] are cached; the front is reused once half is free
	head  int
	bytes int
}

// tags are the cached tags, oldest first.
func (g *gopCache) tags() []*flv.Tag { return g.buf[g.head:] }

func (g *gopCache) reset() {
	clear(g.buf)
	g.buf, g.head, g.bytes = g.buf[:0], 0, 0
}

func (g *gopCache) push(t *flv.Tag) {
	if g.head > 0 && g.head >= len(g.buf)/2 && len(g.buf) == cap(g.buf) {
		n := copy(g.buf, g.buf[g.head:])
		clear(g.buf[n:])
		g.buf, g.head = g.buf[:n], 0
	}
	g.buf = append(g.buf, t)
	g.bytes += len(t.Raw)
}

func (g *gopCache) popFront() {
	g.bytes -= len(g.buf[g.head].Raw)
	g.buf[g.head] = nil
	g.head++
	if g.head == len(g.buf) {
		g.buf, g.head = g.buf[:0], 0
	}
}

// audioCacheSpan is how much recent audio an audio-only stream keeps for joiners (at
// most GOPMaxTime): about a video stream's GOP, a short start burst.
const audioCacheSpan = 2 * time.Second

// cacheGOP adds t, a control tag or not, to the GOP cache (see gopCache).
func (s *Stream) cacheGOP(t *flv.Tag, control bool) {
	g := &s.gop
	switch {
	case t.IsKeyframe():
		s.prevKey, s.lastKey, s.keys = s.lastKey, t.Time, s.keys+1
		// A control tag right before the keyframe stays: it starts the new GOP.
		var c0 *flv.Tag
		if c := g.tags(); len(c) > 0 && c[len(c)-1] == s.lastControl {
			c0 = c[len(c)-1]
		}
		g.reset()
		if c0 != nil {
			g.push(c0)
		}
	case control:
	case len(g.tags()) == 0 && s.hasVideo:
		return // video stream: wait for a keyframe before caching anything
	}
	g.push(t)
	maxBytes := s.hub.cfg.GOPMaxBytes
	maxTags := s.cfg.queueTags - s.cfg.queueTags/4
	if !s.hasVideo {
		span := min(audioCacheSpan, s.cfg.gopMaxTime).Milliseconds()
		for c := g.tags(); len(c) > 1 && (g.bytes > maxBytes || len(c) > maxTags || t.Time-c[0].Time > span); c = g.tags() {
			g.popFront()
		}
		return
	}
	c := g.tags()
	if g.bytes > maxBytes || len(c) > maxTags || t.Time-c[0].Time > s.cfg.gopMaxTime.Milliseconds() {
		s.hub.warn.Warn("gop-cache", "GOP cache over its bound: dropped, joiners start at the next keyframe",
			zap.String("stream", s.Key()), zap.Int("bytes", g.bytes), zap.Int("tags", len(c)),
			zap.Int64("ms", t.Time-c[0].Time))
		g.reset()
	}
}
