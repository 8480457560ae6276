package media

import (
	"bytes"

	"peer/media/flv"
)

// timeline keeps a stream's time growing across publishers. A new origin whose clock
// starts behind the stream is shifted past it (players that stayed see time go on). A
// publisher that continues the stream (Resume, Copy: a copy after an upstream switch,
// an origin's relay re-pointed here) replays a little of what the stream already has,
// from its GOP cache: those tags are dropped and it resumes with the first tag after the
// stream's last one, which the players can decode since they have everything before it.
// A keyframe in the replay that the stream does not hold ends the catch-up: the source
// is on a new timeline (see Publisher.WriteAt).
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

// newTimeline ends the catch-up at a tag of stream time at that starts a new timeline
// (a keyframe the stream does not hold): at or before the stream's last tag, the
// source's clock is shifted to go on just after it, so that time never goes back for
// the players that stayed.
func (tl *timeline) newTimeline(at int64) {
	tl.catching = false
	if at <= tl.catchUp {
		tl.offset += tl.catchUp + 1 - at
	}
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

// holdsKeyframe reports whether the stream holds keyframe t, or cannot tell: t is in its
// GOP cache (same body); or it is in the GOP before, which the cache no longer has (a
// source a little behind the stream), and at that GOP's keyframe time (a source on the
// stream's clock); or it is older still, or the cache is empty.
func (s *Stream) holdsKeyframe(t *flv.Tag) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	gop := s.gop.tags()
	switch {
	case len(gop) == 0:
		return true
	case t.Time < gop[0].Time && s.keys >= 2 && t.Time >= s.prevKey:
		return t.Time == s.prevKey
	case t.Time < gop[0].Time:
		return true
	}
	for _, c := range gop {
		if c.Type == t.Type && bytes.Equal(c.Data(), t.Data()) {
			return true
		}
	}
	return false
}
