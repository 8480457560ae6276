package hls

import (
	"bytes"
	"math"
	"peer/media/mpegts"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"peer/media/flv"
)

// keyframeless returns an ffmpeg stream's configuration and first keyframe, then only
// copies of its inter frames (and its audio) for the given media duration.
func keyframeless(tb testing.TB, ms int64) []*flv.Tag {
	tags := makeFLV(tb, "aac")
	var out []*flv.Tag
	var inter, audio *flv.Tag
	for _, t := range tags {
		switch {
		case t.IsSequenceHeader():
			out = append(out, t)
		case t.IsKeyframe() && len(out) == 2:
			out = append(out, t)
		case t.Type == flv.TypeVideo && !t.IsKeyframe() && inter == nil && len(out) == 3:
			inter = t
		case t.Type == flv.TypeAudio && audio == nil && !t.IsSequenceHeader():
			audio = t
		}
	}
	if len(out) != 3 || inter == nil || audio == nil {
		tb.Fatalf("test stream lacks configuration, keyframe, inter frame or audio")
	}
	start := out[2].Time
	for at := int64(40); at < ms; at += 40 {
		out = append(out, flv.NewTag(flv.TypeVideo, start+at, inter.Data()))
		out = append(out, flv.NewTag(flv.TypeAudio, start+at, audio.Data()))
	}
	return out
}

// TestSegmentCapWithoutKeyframes: a publisher that sends one keyframe and then only
// inter frames cannot grow the open segment past its cap: the leader cuts there, says so
// (once, rate-limited), and from then on packages the audio in segments of the usual
// length until a keyframe comes. (The cap is small here: the target cuts a segment
// without keyframes after 2.4 s.)
func TestSegmentCapWithoutKeyframes(t *testing.T) {
	const capBytes = 16 << 10
	core, logs := observer.New(zap.WarnLevel)
	m := New(Config{Fragment: time.Second, Window: 30, MaxSegmentBytes: capBytes}, zap.New(core))
	defer m.Close()
	feed(m, keyframeless(t, 60_000))
	pl := decode(t, playlist(t, m))
	if pl.Count() < 20 {
		t.Fatalf("%d segments from 60 s: the stream stopped being packaged", pl.Count())
	}
	for _, s := range pl.Segments[:pl.Count()] {
		b, release, ok := m.Segment(s.URI)
		if !ok {
			t.Fatalf("%s listed but not served", s.URI)
		}
		if len(b) > capBytes+64<<10 {
			t.Fatalf("%s is %d bytes, cap %d", s.URI, len(b), capBytes)
		}
		if s.Duration > 30 {
			t.Fatalf("%s lasts %v s", s.URI, s.Duration)
		}
		release()
	}
	if pl.TargetDuration > 30 {
		t.Fatalf("TARGETDURATION %v", pl.TargetDuration)
	}
	if n := logs.FilterMessageSnippet("cap").Len(); n != 1 {
		t.Fatalf("%d cap lines logged, want 1 (rate-limited)", n)
	}
}

// TestSegmentCutAtTarget: without a keyframe (and without audio to cut at) a segment
// still ends at its target, TARGETDURATION stays at twice the fragment (8 s here, not the
// 40 s segments of the old duration cap), every EXTINF rounds to it, and the segments
// after a forced cut continue the video instead of dropping it until a keyframe.
func TestSegmentCutAtTarget(t *testing.T) {
	m := New(Config{Fragment: 4 * time.Second, Window: 5}, nil)
	defer m.Close()
	feed(m, without(keyframeless(t, 60_000), flv.TypeAudio))
	p := playlist(t, m)
	pl := decode(t, p)
	if !bytes.Contains(p, []byte("#EXT-X-TARGETDURATION:8\n")) || pl.Count() != 5 {
		t.Fatalf("want 5 segments and TARGETDURATION 8:\n%s", p)
	}
	for _, s := range pl.Segments[:pl.Count()] {
		b, release, ok := m.Segment(s.URI)
		if !ok {
			t.Fatalf("%s listed but not served", s.URI)
		}
		if math.Round(s.Duration) > 8 || s.Duration < 8 {
			t.Fatalf("%s lasts %v s, target 8:\n%s", s.URI, s.Duration, p)
		}
		if len(b) < 20<<10 {
			t.Fatalf("%s is %d bytes: its video was dropped", s.URI, len(b))
		}
		release()
	}
}

// TestFollowerDropsSegmentOverCap: a follower whose segment outgrows the cap without a
// marker drops it instead of growing.
func TestFollowerDropsSegmentOverCap(t *testing.T) {
	const capBytes = 128 << 10
	tags := keyframeless(t, 20_000)
	f := New(Config{Fragment: time.Second, Follow: true, MaxSegmentBytes: capBytes}, nil)
	defer f.Close()
	feed(f, tags[:2])
	f.WriteTag(CutMarker(Cut{Seq: 0, TS: mpegts.NoState}, tags[2].Time))
	feed(f, tags[2:])
	if f.cur != nil && f.cur.buf.Len() > capBytes+64<<10 {
		t.Fatalf("follower's open segment is %d bytes, cap %d", f.cur.buf.Len(), capBytes)
	}
	if f.cur != nil {
		t.Fatal("the follower kept the segment past its cap")
	}
}

// TestTargetDurationBounded: timestamps that jump inside a publish (the media layer
// rebases them, this is the packager's own bound) or a marker claiming a huge target
// cannot push TARGETDURATION past twice the fragment.
func TestTargetDurationBounded(t *testing.T) {
	tags := makeFLV(t, "aac")
	jumped := append(append([]*flv.Tag{}, tags[:len(tags)/2]...), shifted(tags[len(tags)/2:], 0x7fffffff)...)
	m := New(Config{Fragment: time.Second, Window: 10}, nil)
	defer m.Close()
	feed(m, jumped)
	p := playlist(t, m)
	if !bytes.Contains(p, []byte("#EXT-X-TARGETDURATION:1\n")) {
		t.Fatalf("TARGETDURATION changed by a jump, want 1:\n%s", p)
	}

	f := New(Config{Fragment: time.Second, Follow: true}, nil)
	defer f.Close()
	var seq uint64
	for _, tag := range tags {
		if tag.IsKeyframe() {
			f.WriteTag(CutMarker(Cut{Seq: seq, Target: 22947778, TS: mpegts.NoState}, tag.Time))
			seq++
		}
		f.WriteTag(tag)
	}
	p = playlist(t, f)
	if !bytes.Contains(p, []byte("#EXT-X-TARGETDURATION:2\n")) {
		t.Fatalf("follower's target not clamped to 2:\n%s", p)
	}
}

// TestTargetDurationRoundsToNearest: segments a frame longer than the fragment (a GOP of
// 1.02 s, segments of 2.04 s) keep TARGETDURATION at 2 for the playlist's life, as RFC
// 8216 4.3.3.1 rounds EXTINF to the nearest integer. Before, the target was rounded up
// and went 2 -> 3 mid-stream, which the RFC forbids.
func TestTargetDurationRoundsToNearest(t *testing.T) {
	m := New(Config{Window: 3}, nil)
	defer m.Close()
	var last []byte
	for _, tag := range makeFLV(t, "aac") {
		m.WriteTag(flv.NewTag(tag.Type, tag.Time*102/100, tag.Data()))
		p, ok := m.Playlist()
		if !ok || bytes.Equal(p, last) {
			continue
		}
		last = p
		// The text, not m3u8's TargetDuration, which the decoder recomputes from EXTINF.
		if !bytes.Contains(p, []byte("#EXT-X-TARGETDURATION:2\n")) {
			t.Fatalf("TARGETDURATION changed, want 2 throughout:\n%s", p)
		}
		for _, s := range decode(t, p).Segments {
			if s != nil && math.Round(s.Duration) > 2 {
				t.Fatalf("EXTINF %v over TARGETDURATION 2", s.Duration)
			}
		}
	}
	if last == nil {
		t.Fatal("no playlist")
	}
}
